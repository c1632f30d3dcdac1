"""Grounding: bind each parsed reference to objects in the scene, or refuse in plain words.

The scene is the env's `scene_annotation()` dict (colour, shape, size, position of every object). A step
that names something absent becomes a refuse step ("I don't see a purple block"); a grounded manipulation
step gets the canonical instruction of its task in the suite's own phrasing. References across steps and
turns ("it", "them", "the other one") resolve through `Memory`, which the session keeps.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from vla.agent.planner import lexicon as lx
from vla.agent.planner.canonical import canonical_instruction, object_phrase
from vla.agent.planner.steps import ObjectRef, Step


@dataclass
class Memory:
    """What "it" and "them" mean now: the objects the last step was about (most recent first)."""

    focus: list[int] = field(default_factory=list)
    previous: list[int] = field(default_factory=list)
    places: list[int] = field(default_factory=list)  # the last destination (a bowl or a base block)

    def attend(self, ids: list[int], place: int | None = None) -> None:
        if ids and ids != self.focus:
            self.previous, self.focus = self.focus, list(ids)
        if place is not None:
            self.places = [place]

    def candidates(self, pronoun: str, role: str) -> list[int]:
        """Ids "it"/"them" may mean for a role; a destination prefers the last destination."""
        if pronoun == "them":
            return list(self.focus)
        order = self.places + self.focus if role in ("bowl", "base") else self.focus + self.places
        return order


class Refusal(Exception):
    """Raised inside grounding; becomes a refuse step with this message."""


def _noun(ref: ObjectRef) -> str:
    return ref.describe()


def _matches(ref: ObjectRef, obj: dict) -> bool:
    return ((ref.color is None or obj["color"] == ref.color) and (ref.shape is None or obj["shape"] == ref.shape)
            and (ref.size is None or obj.get("size") == ref.size))


def _relation_ok(ref: ObjectRef, obj: dict, objects: list[dict], memory: Memory) -> bool:
    if ref.relation is None:
        return True
    rel, landmark_ref = ref.relation
    landmarks = resolve(landmark_ref, objects, memory, role="any")
    sign = -1 if rel == "left of" else 1  # left is -y as seen from the front camera
    return any(sign * (obj["position"][1] - lm["position"][1]) > 0 for lm in landmarks)


def resolve(ref: ObjectRef, objects: list[dict], memory: Memory, role: str) -> list[dict]:
    """The scene objects `ref` denotes for a role ("move": graspable, "bowl", "base", "any")."""
    by_id = {o["id"]: o for o in objects}
    if ref.unknown:
        raise Refusal(f"I don't see {_a(_noun(ref))} here, and I don't know the word {ref.unknown!r}.")
    if ref.pronoun == "self":
        raise Refusal("I can't put an object on or in itself.")
    if ref.pronoun in ("it", "them"):
        ids = memory.candidates(ref.pronoun, role)
        found = [by_id[i] for i in ids if i in by_id and _matches(ref, by_id[i])]
        if ref.pronoun == "it":
            found = ([o for o in found if o["shape"] in _role_shapes(role)] or found)[:1]
        if not found:
            raise Refusal(f"I'm not sure what {ref.text!r} refers to; please name the object.")
        return found
    pool = [o for o in objects if _matches(ref, o)]
    if ref.pronoun == "other":
        pool = _other(ref, objects, memory)
    if ref.shape is None:
        pool = [o for o in pool if o["shape"] in _role_shapes(role)] or pool
    pool = [o for o in pool if _relation_ok(ref, o, objects, memory)]
    if not pool:
        raise Refusal(f"I don't see {_a(_noun(ref)) if ref.quantity == 'one' else 'any ' + _noun(ref)} here.")
    return pool if ref.quantity == "all" else pool[:1]


def _other(ref: ObjectRef, objects: list[dict], memory: Memory) -> list[dict]:
    """"the other one": same kind of thing as the current focus, but not it."""
    if not memory.focus:
        raise Refusal(f"I'm not sure what {ref.text!r} refers to; please name the object.")
    by_id = {o["id"]: o for o in objects}
    last = by_id.get(memory.focus[0])
    shape = ref.shape or (last["shape"] if last else None)
    color = ref.color or (None if ref.shape or ref.size else None)
    return [o for o in objects if o["id"] not in memory.focus and (shape is None or o["shape"] == shape)
            and (color is None or o["color"] == color) and (ref.size is None or o.get("size") == ref.size)]


def _role_shapes(role: str) -> list[str]:
    return {"move": lx.GRASPABLE, "bowl": ["bowl"], "base": lx.GRASPABLE}.get(role, lx.SHAPES)


def _a(noun: str) -> str:
    return ("an " if noun[:1] in "aeiou" else "a ") + noun


def ground_step(step: Step, objects: list[dict], memory: Memory) -> list[Step]:
    """One parsed step -> grounded steps (a put of "all the blocks" expands into one step per block)."""
    try:
        if step.kind == "manipulate":
            return _ground_manipulation(step, objects, memory)
        if step.kind == "locate" and "object" in step.refs:
            found = resolve(step.refs["object"], objects, memory, role="any")
            memory.attend([o["id"] for o in found])
            step.objects = {"object": found[0]["id"]}
            step.query = object_phrase(found[0], objects, article=False)
        elif step.kind == "question" and memory.focus and step.query:
            step.query = _replace_it(step.query, objects, memory)
        return [step]
    except Refusal as exc:
        return [Step("refuse", step.text, reason=str(exc))]


def _replace_it(question: str, objects: list[dict], memory: Memory) -> str:
    """"what colour is it?" -> "what colour is the red block?" using the current focus."""
    by_id = {o["id"]: o for o in objects}
    obj = by_id.get(memory.focus[0])
    if obj is None:
        return question
    words = [object_phrase(obj, objects) if w == "it" else w for w in question.rstrip("?").split()]
    return " ".join(words) + "?"


def _ground_manipulation(step: Step, objects: list[dict], memory: Memory) -> list[Step]:
    obj_ref = step.refs.get("object")
    if step.task is None:
        what = obj_ref.describe() if obj_ref else "it"
        raise Refusal(f"Where should the {what} go? Say e.g. 'put the {what} in the green bowl', 'stack it on "
                      f"the blue block' or 'push it to the left'.")
    if step.task == "push" and step.side is None and "target" not in step.refs:
        raise Refusal(f"Which way should I push the {obj_ref.describe()}: to the left or to the right?")
    role = "any" if step.task == "reach" else "move"
    movers = resolve(obj_ref, objects, memory, role)
    if role == "move":
        for o in movers:
            if o["shape"] not in lx.GRASPABLE:
                raise Refusal(f"I can't move {object_phrase(o, objects)}: I can only move blocks and cylinders.")
    target = None
    if "target" in step.refs:
        target = _ground_target(step, objects, memory, movers)
    if obj_ref.quantity == "all" and len(movers) > 1 and step.task in ("pick", "reach", "stack"):
        raise Refusal(f"I can only {_VERBS[step.task]} one object at a time; which {obj_ref.describe()[:-1]} "
                      "do you mean?")
    task = step.task
    if task == "put_on":
        task = "place" if target["shape"] == "bowl" else "stack"
    if task in ("place", "put_all"):
        if target["shape"] != "bowl":
            raise Refusal(f"I can only put things into a bowl, and {object_phrase(target, objects)} is not one.")
        task = "put_all" if obj_ref.quantity == "all" and obj_ref.color and obj_ref.shape == "block" else "place"
    if task == "stack" and target is not None and target["shape"] == "bowl":
        task = "place"
    if task == "stack" and any(o["shape"] != "block" for o in movers + [target]):
        raise Refusal("I can only stack blocks on blocks.")
    steps = [_grounded(step, task, mover, target, objects) for mover in
             (movers if task not in ("put_all",) else movers[:1])]
    memory.attend([m["id"] for m in movers], target["id"] if target is not None else None)
    return steps


_VERBS = {"pick": "hold", "reach": "touch", "stack": "stack"}


def _ground_target(step: Step, objects: list[dict], memory: Memory, movers: list[dict]) -> dict:
    role = "bowl" if step.task in ("place", "put_all") else "base" if step.task == "stack" else "any"
    if step.task == "push" and step.refs["target"].pronoun == "it" and movers:  # "push X next to it"
        memory = Memory(focus=[i for i in memory.focus if i not in {m["id"] for m in movers}], places=memory.places)
    tref = step.refs["target"]
    if tref.pronoun == "other" and movers:
        memory = Memory(focus=[m["id"] for m in movers])
    targets = resolve(tref, objects, memory, role)
    target = targets[0]
    if any(m["id"] == target["id"] for m in movers):
        raise Refusal(f"I can't move {object_phrase(target, objects)} relative to itself.")
    if step.task == "stack" and target["shape"] not in lx.GRASPABLE + ["bowl"]:
        raise Refusal(f"I can't stack anything on {object_phrase(target, objects)}.")
    return target


def _grounded(step: Step, task: str, mover: dict, target: dict | None, objects: list[dict]) -> Step:
    objects_ids = {"object": mover["id"]}
    if target is not None:
        objects_ids["target"] = target["id"]
    instruction = canonical_instruction(task, mover, target, step.side, objects)
    return Step("manipulate", step.text, task=task, refs=step.refs, side=step.side, instruction=instruction,
                objects=objects_ids)


def ground(steps: list[Step], scene: dict, memory: Memory) -> list[Step]:
    """Ground every step in order (later steps see the focus earlier steps set)."""
    objects = scene.get("objects", [])
    out: list[Step] = []
    for step in steps:
        out.extend(ground_step(step, objects, memory))
    return out
