"""Canonical instructions: a grounded step phrased with its task's first template, as the policy was trained.

The templates are the task suite's own (`vla.envs.CANONICAL[task]`, each task's first template), so the policy sees
in-distribution phrasing whatever words the user chose. Object phrases follow the suite's referring
expressions ("the red block", "the small red block" when a large red block is also on the table).
"""
from __future__ import annotations

from vla.models.tools.qa_data import side_of_bowl


def object_phrase(obj: dict, objects: list[dict], article: bool = True) -> str:
    """"the red block"; adds the size, or a side of a bowl, when that is needed to pick the object out."""
    twins = [o for o in objects if o["id"] != obj["id"] and o["color"] == obj["color"] and o["shape"] == obj["shape"]]
    sized = bool(obj.get("size")) and any(o.get("size") != obj["size"] for o in twins)
    same = [o for o in twins if not sized or o.get("size") == obj["size"]]  # still indistinguishable
    text = " ".join(([obj["size"]] if sized else []) + [obj["color"], obj["shape"]])
    if same:
        text += side_of_bowl(obj, same, objects)
    return ("the " if article else "") + text


def canonical_instruction(task: str, mover: dict, target: dict | None, side: str | None,
                          objects: list[dict]) -> str:
    """The suite's canonical sentence for one grounded manipulation."""
    from vla.envs import CANONICAL

    template = CANONICAL[task]
    slots = {"obj": object_phrase(mover, objects), "color": mover["color"]}
    if target is not None:
        slots["bowl"] = slots["base"] = object_phrase(target, objects)
    slots["dest"] = f"to the {side} side of the table" if side else f"next to {slots.get('base', '')}"
    return template.format(**slots)


def rephrase(step, scene: dict) -> str:
    """A grounded step's canonical instruction for the scene as it is now (objects move between steps, so
    "the red block left of the blue bowl" may need other words to pick out the same object)."""
    objects = scene.get("objects", [])
    by_id = {o["id"]: o for o in objects}
    mover, target = by_id.get(step.objects.get("object")), by_id.get(step.objects.get("target"))
    if mover is None:
        return step.instruction
    return canonical_instruction(step.task, mover, target, step.side, objects)
