"""Push: slide a named object, without lifting it, to a side of the table or next to another named object."""
from __future__ import annotations

from dataclasses import dataclass

from vla.envs import oracle, vocab
from vla.envs.tasks.base import Goal, Ref, Sampler, Task

SIDE_LINE = 0.18  # the object's centre must pass |y| > SIDE_LINE on the named side
PUSH_TO = 0.22
NEXT_GAP = 0.035  # "next to": the footprints are at most this far apart


@dataclass
class PushGoal(Goal):
    target: Ref
    side: str | None = None  # "left" | "right", or None when pushing next to `landmark`
    landmark: Ref | None = None


class Push(Task):
    NAME, ENV_ID, MAX_STEPS = "push", "vla/Push-v0", 60
    TEMPLATES = ["push {obj} {dest}", "slide {obj} {dest}", "shove {obj} {dest}", "nudge {obj} over {dest}",
                 "without lifting it, move {obj} {dest}", "keep {obj} on the table and push it {dest}"]

    def sample(self, sampler: Sampler) -> PushGoal:
        shape = str(sampler.rng.choice(["block", "cylinder"], p=[0.7, 0.3]))
        target = sampler.named(shape, combo=True, grounding=False, x_range=(0.4, 0.6), y_range=(-0.07, 0.07))
        side = str(sampler.rng.choice(list(vocab.SIDES)))
        if sampler.rng.random() < 0.5:
            return self._reserve(PushGoal(target, side), sampler)
        spec = sampler.specs[target.oid - 1]
        where = self._beside(spec.x, vocab.SIDES[side][1])
        landmark = sampler.named(str(sampler.rng.choice(vocab.SHAPES)), grounding=False, **where)
        return self._reserve(PushGoal(target, None, landmark), sampler)

    def goal_from_slots(self, slots, sampler: Sampler) -> PushGoal:
        target = sampler.realize(slots["obj"], x_range=(0.4, 0.6), y_range=(-0.07, 0.07))
        if "landmark" not in slots:
            return self._reserve(PushGoal(target, slots["side"]), sampler)
        x = sampler.specs[target.oid - 1].x
        landmark = sampler.realize(slots["landmark"], **self._beside(x, 1 if sampler.rng.random() < 0.5 else -1))
        return self._reserve(PushGoal(target, None, landmark), sampler)

    @staticmethod
    def _beside(x: float, sign: int) -> dict:
        y = (0.2, 0.25) if sign > 0 else (-0.25, -0.2)
        return {"x_range": (x - 0.01, x + 0.01), "y_range": y}

    @staticmethod
    def _reserve(goal: PushGoal, sampler: Sampler) -> PushGoal:
        """Keep the push path free of other objects."""
        spec = sampler.specs[goal.target.oid - 1]
        if goal.landmark is not None:
            y_end = sampler.specs[goal.landmark.oid - 1].y
            y_end -= (spec.footprint() + sampler.specs[goal.landmark.oid - 1].footprint()) * (1 if y_end > 0 else -1)
        else:
            y_end = 0.35 * vocab.SIDES[goal.side][1]
        sampler.keepout.append((spec.x - 0.05, spec.x + 0.05, min(spec.y - 0.08, y_end), max(spec.y + 0.08, y_end)))
        return goal

    def slots(self, goal: PushGoal) -> dict[str, str]:
        dest = f"next to {goal.landmark.text()}" if goal.landmark else f"to the {goal.side} side of the table"
        return {"obj": goal.target.text(), "dest": dest}

    def success(self, world, goal: PushGoal) -> bool:
        oid = goal.target.oid
        pos = world.position(oid)
        on_table = pos[2] < world.spec(oid).height() / 2 + 0.01
        if goal.landmark is not None:
            other = world.position(goal.landmark.oid)
            reach = world.spec(oid).footprint() + world.spec(goal.landmark.oid).footprint() + NEXT_GAP
            there = bool(((pos[:2] - other[:2]) ** 2).sum() ** 0.5 < reach)
        else:
            there = vocab.SIDES[goal.side][1] * pos[1] > SIDE_LINE
        return bool(there and on_table and world.holding() != oid and world.resting(oid))

    def plan(self, world, goal: PushGoal):
        oid = goal.target.oid
        landmark = None if goal.landmark is None else \
            (world.position(goal.landmark.oid), world.spec(goal.landmark.oid).footprint())
        goal_y, exact = destination(world.position(oid), world.spec(oid).footprint(), goal.side, landmark)
        return oracle.push(world, oid, goal_y, exact)


def destination(pos, radius: float, side: str | None = None, landmark=None) -> tuple[float, bool]:
    """Where a push of an object at `pos` (footprint `radius`) takes its centre along y, and whether exactly
    there (next to a landmark) or at least that far (a side). `landmark`: (position, footprint) or None."""
    if landmark is None:
        return PUSH_TO * vocab.SIDES[side][1], False
    other, other_radius = landmark
    sign = 1.0 if other[1] > pos[1] else -1.0
    return float(other[1] - sign * (radius + other_radius + 0.012)), True


def skill_goal(pos, radius: float, side: str | None = None, landmark=None) -> list[float]:
    """The table point where the expert's push of an object at `pos` ends (see `oracle.push_goal`): what an
    agent that has grounded the object and the side or landmark points the policy's goal pointer at."""
    goal_y, exact = destination(pos, radius, side, landmark)
    return [float(v) for v in oracle.push_goal(pos[:2], radius, goal_y, exact)]


def skill_start(pos, radius: float, side: str | None = None, landmark=None) -> list[float]:
    """The table point behind the object where the expert's push comes down (see `oracle.push_start`)."""
    goal_y, exact = destination(pos, radius, side, landmark)
    return [float(v) for v in oracle.push_start(pos[:2], radius, goal_y, exact)]
