"""A scene for a command when none is named: every object the command mentions, plus the env's distractors.

`vla run "put the red block in the green bowl, then tell me what is left"` with no `--task-scene` resets the
env with `options={"objects": scene_objects(command)}`, so the red block and the green bowl are on the table.
Objects named only by a pronoun, an unknown word or no colour are left to the env's sampling.
"""
from __future__ import annotations

from vla.agent.planner import parse_command
from vla.agent.planner.steps import ObjectRef

_DEFAULT_SHAPE = {"object": "block", "target": "bowl"}


def _spec(ref: ObjectRef, role: str) -> dict | None:
    if ref.pronoun is not None or ref.unknown or ref.color is None:
        return None
    shape = ref.shape or _DEFAULT_SHAPE.get(role, "block")
    return {"color": ref.color, "shape": shape, "size": ref.size if shape == "block" else None}


def scene_objects(command: str) -> list[dict]:
    """{"color", "shape", "size"} for each distinct object the command names (two for "all the red blocks")."""
    out: list[dict] = []
    for step in parse_command(command):
        for role, ref in step.refs.items():
            refs = [ref] + ([ref.relation[1]] if ref.relation else [])
            for r in refs:
                spec = _spec(r, role if r is ref else "target")
                if spec is None:
                    continue
                copies = 2 if r.quantity == "all" else 1
                have = sum(1 for o in out if o == spec)
                out.extend([dict(spec)] * max(0, copies - have))
    return out
