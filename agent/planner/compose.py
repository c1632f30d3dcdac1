"""Whole-command checks on parsed steps: merging, negation and contradictions.

- "pick up the red block and put it in the bowl" is one place step (the place includes the pick);
- "don't move the blue block" alone is acknowledged without motion;
- "put the red block in the bowl and don't touch the red block" contradicts itself: nothing moves.
"""
from __future__ import annotations

from vla.agent.planner.steps import ObjectRef, Step

_MOVES = ("place", "put_all", "stack", "push", "pick", "put_on")


def _same(a: ObjectRef | None, b: ObjectRef | None) -> bool:
    if a is None or b is None:
        return False
    if b.pronoun == "it" and a.pronoun is None:
        return True
    return (a.color, a.shape, a.size, a.pronoun) == (b.color, b.shape, b.size, b.pronoun)


def merge_pick_then_put(steps: list[Step]) -> list[Step]:
    """Drop a pick that the next step (a put of the same object) already includes, or that repeats it
    ("grasp the red block and lift it"); "it" takes the pick's object."""
    out: list[Step] = []
    for step in steps:
        prev = out[-1] if out else None
        if (prev is not None and prev.kind == "manipulate" and prev.task == "pick" and not prev.negated
                and step.kind == "manipulate" and step.task in _MOVES
                and _same(prev.refs.get("object"), step.refs.get("object"))):
            if step.task == "pick":  # "grasp the red block and lift it": one pick
                continue
            step.refs["object"] = prev.refs["object"]
            out[-1] = step
            continue
        out.append(step)
    return out


def apply_negations(steps: list[Step]) -> list[Step]:
    """Turn negated steps into acknowledgements, or refuse everything when they contradict a positive step."""
    negated = [s for s in steps if s.kind == "manipulate" and s.negated]
    if not negated:
        return steps
    positive = [s for s in steps if s.kind == "manipulate" and not s.negated]
    for neg in negated:
        obj = neg.refs.get("object")
        for pos in positive:
            if obj is None or _same(obj, pos.refs.get("object")) or _same(pos.refs.get("object"), obj) \
                    or _same(obj, pos.refs.get("target")):
                what = obj.describe() if obj is not None else "anything"
                return [Step("refuse", " ".join(s.text for s in steps),
                             reason=f"Those instructions contradict each other: you asked me to "
                                    f"{pos.text.strip()!r} but also not to move {_the(what)}. "
                                    "I won't move anything; please tell me which you want.")]
    out = []
    for step in steps:
        if step in negated:
            obj = step.refs.get("object")
            what = _the(obj.describe()) if obj is not None else "anything"
            out.append(Step("say", step.text, reason=f"OK, I won't move {what}."))
        else:
            out.append(step)
    return out


def _the(noun: str) -> str:
    return noun if noun in ("anything", "it", "them") else f"the {noun}"
