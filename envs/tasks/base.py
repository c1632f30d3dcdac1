"""The Task base class and the scene sampler that tasks share.

A task owns its scene sampling (`sample`), phrasings (`TEMPLATES`), scripted oracle (`plan`), success check
(`success`) and step limit (`MAX_STEPS`). Goals are named dataclasses holding `Ref`s: a referring expression
("the small red block left of the blue bowl") together with the object id it denotes in the scene.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla import VLAError
from vla.envs import vocab
from vla.envs.splits import Split
from vla.envs.world import ObjectSpec, World


class PlacementError(VLAError):
    """Sampling could not fit the scene on the table (the env resamples)."""


X_RANGE = (0.35, 0.65)
Y_RANGE = (-0.25, 0.25)


@dataclass
class Ref:
    """A referring expression and the object (1-based id) it denotes."""

    color: str
    shape: str
    size: str | None = None
    relation: str | None = None  # "left of" | "right of"
    landmark: Ref | None = None
    oid: int = 0

    def text(self) -> str:
        words = ["the"] + ([self.size] if self.size else []) + [self.color, self.shape]
        if self.relation and self.landmark:
            words += [self.relation, self.landmark.text()]
        return " ".join(words)


class Sampler:
    """Adds objects to a scene at free random poses, with colours allowed by the split."""

    def __init__(self, rng: np.random.Generator, split: Split, task: str):
        self.rng, self.split, self.task = rng, split, task
        self.specs: list[ObjectSpec] = []
        self.keepout: list[tuple[float, float, float, float]] = []  # (x0, x1, y0, y1) kept free, e.g. push paths

    def color(self, shape: str, combo: bool = False) -> str:
        """A colour for a new named object: allowed by the split, and not worn by another object of its shape."""
        worn = {o.color for o in self.specs if o.shape == shape}
        options = [c for c in self.split.named_colors if c not in worn
                   and (not combo or self.split.allows_combo(self.task, c, shape))]
        if not options:
            raise PlacementError(f"no colour allowed for a {shape} in split {self.split.name!r} of task {self.task!r}.")
        return str(self.rng.choice(options))

    def named(self, shape: str, combo: bool = False, grounding: bool = True, **where) -> Ref:
        """Add a named object with random attributes; sometimes one that needs its size or a relation to pick out."""
        ref = Ref(self.color(shape, combo), shape, None)
        mode = str(self.rng.choice(["plain", "size", "relation"], p=[0.6, 0.2, 0.2])) if grounding else "plain"
        if mode == "size" and shape == "block":
            ref.size = self.size(shape)
        elif mode == "relation":
            ref.relation = str(self.rng.choice(["left of", "right of"]))
            ref.landmark = Ref(self.color("bowl"), "bowl")
        return self.realize(ref, **where)

    def realize(self, ref: Ref, **where) -> Ref:
        """Add objects so that `ref` denotes exactly one of them (with twins when it names a size or a relation)."""
        size = ref.size or self.size(ref.shape)
        if ref.relation and ref.landmark:
            return self._relational(ref, size)
        ref.oid = self.add(ref.color, ref.shape, size, **where)
        if ref.size:
            self.add(ref.color, ref.shape, "large" if size == "small" else "small")
        return ref

    def _relational(self, ref: Ref, size: str | None) -> Ref:
        """A landmark bowl with a twin of the target on each side; the target is on the named side."""
        lm = ref.landmark
        lm.size = None
        yb = float(self.rng.uniform(-0.06, 0.06))
        lm.oid = self.add(lm.color, "bowl", None, y_range=(yb, yb))
        bowl_x = self.specs[lm.oid - 1].x
        left, right = (-0.28, yb - 0.12), (yb + 0.12, 0.28)
        near = (bowl_x - 0.09, bowl_x + 0.09)
        target_side, twin_side = (left, right) if ref.relation == "left of" else (right, left)
        ref.oid = self.add(ref.color, ref.shape, size, x_range=near, y_range=target_side)
        self.add(ref.color, ref.shape, size, x_range=near, y_range=twin_side)
        return ref

    def all_of(self, color: str, shape: str, count: tuple[int, int]) -> list[int]:
        """Add between count[0] and count[1] objects of one colour and shape (random sizes); return their ids."""
        n = int(self.rng.integers(count[0], count[1] + 1))
        return [self.add(color, shape, self.size(shape)) for _ in range(n)]

    def size(self, shape: str) -> str | None:
        return str(self.rng.choice(vocab.SIZES)) if shape == "block" else None

    def add(self, color: str, shape: str, size: str | None = None, x_range=X_RANGE, y_range=Y_RANGE) -> int:
        """Place a new object without overlap (and outside keep-out boxes) and return its id."""
        spec = ObjectSpec(color, shape, size)
        for _ in range(200):
            spec.x, spec.y = float(self.rng.uniform(*x_range)), float(self.rng.uniform(*y_range))
            spec.yaw = float(self.rng.uniform(-np.pi / 4, np.pi / 4)) if shape == "block" else 0.0
            if self.free(spec):
                self.specs.append(spec)
                return len(self.specs)
        raise PlacementError("could not place all objects on the table; use fewer objects.")

    def free(self, spec: ObjectSpec) -> bool:
        r = spec.footprint()
        if any(x0 - r < spec.x < x1 + r and y0 - r < spec.y < y1 + r for x0, x1, y0, y1 in self.keepout):
            return False
        return all(np.hypot(spec.x - o.x, spec.y - o.y) > spec.footprint() + o.footprint() + 0.015
                   for o in self.specs)

    def distractors(self, count: int) -> None:
        """Add objects that cannot be confused with a named one: their (colour, shape) pair is new to the scene."""
        taken = {(o.color, o.shape) for o in self.specs}
        for _ in range(count):
            for _ in range(20):
                shape = str(self.rng.choice(vocab.SHAPES, p=[0.5, 0.3, 0.2]))
                color = str(self.rng.choice(self.split.distractor_colors))
                if (color, shape) not in taken:
                    break
            else:
                continue
            try:
                self.add(color, shape, self.size(shape))
            except PlacementError:
                return
            taken.add((color, shape))

    def ref(self, oid: int, exact: bool = False) -> Ref:
        """A ref to an existing object (with its size when `exact`)."""
        s = self.specs[oid - 1]
        return Ref(s.color, s.shape, s.size if exact else None, oid=oid)


@dataclass
class Goal:
    """Base of the per-task goal dataclasses."""

    def refs(self) -> list[Ref]:
        return [v for v in self.__dict__.values() if isinstance(v, Ref)]


@dataclass
class Waypoint:
    """An oracle target: grasp-point position, gripper yaw, gripper closed, and control steps to hold."""

    pos: np.ndarray
    yaw: float
    close: bool
    hold: int = 0
    tol: float = 0.004
    speed: float = 0.05  # metres per control step


class Task:
    """Base task; subclasses set NAME, ENV_ID, TEMPLATES, MAX_STEPS and implement the four hooks."""

    NAME = ""
    ENV_ID = ""
    TEMPLATES: list[str] = []
    MAX_STEPS = 100

    def sample(self, sampler: Sampler) -> Goal:
        """Add the task's objects to the sampler's scene and return the goal."""
        raise NotImplementedError

    def slots(self, goal: Goal) -> dict[str, str]:
        """Template slot values for a goal."""
        raise NotImplementedError

    def success(self, world: World, goal: Goal) -> bool:
        raise NotImplementedError

    def plan(self, world: World, goal: Goal) -> list[Waypoint]:
        """Oracle waypoints from privileged state; re-planned when a plan ends without success."""
        raise NotImplementedError

    def goal_from_slots(self, slots: dict[str, Ref | str], sampler: Sampler) -> Goal:
        """Build the goal (adding objects to the scene) from refs parsed out of an instruction."""
        raise NotImplementedError

    def instruction(self, goal: Goal, template: int) -> str:
        return self.TEMPLATES[template].format(**self.slots(goal))

    def refs(self, goal: Goal) -> list[Ref]:
        """Every referring expression of the goal."""
        return goal.refs()

    def reference_kind(self, goal: Goal) -> str:
        """How the instruction singles out its objects: "relation" (by its side of a landmark bowl, beside a
        same-looking twin), "size" (beside a twin of the other size) or "plain" (colour and shape suffice)."""
        refs = self.refs(goal)
        if any(r.relation for r in refs):
            return "relation"
        return "size" if any(r.size for r in refs) else "plain"

    def primary(self, goal: Goal) -> Ref:
        """The object the task acts on; its (task, colour, shape) decides the combo split."""
        return goal.refs()[0]

    def progress(self, world: World, goal: Goal) -> None:
        """Hook for tasks that latch sub-goals over time (chained commands)."""
