"""The planner against the task suite itself: every phrasing template of every task (held-out ones included),
on scenes the env samples, must plan to the objects the env's instruction names (same task, ids and side).

The truth comes from public env API only: `parse_instruction` reads the env's sentence into referring
expressions, which are bound to annotation ids here; `vla.envs.TEMPLATES` gives every phrasing."""
from __future__ import annotations

import pytest

from vla.agent.planner import GrammarPlanner, Memory
from vla.envs import TEMPLATES, make_env, parse_instruction

pytestmark = pytest.mark.timeout(120)

SINGLE = ["reach", "pick", "place", "stack", "push", "put_all"]


def bind(ref, objects) -> int:
    """The id of the one object a parsed referring expression denotes (left is -y, nearest on that side)."""
    found = [o for o in objects if o["color"] == ref.color and o["shape"] == ref.shape
             and (ref.size is None or o["size"] == ref.size)]
    if ref.relation:
        y0 = objects[bind(ref.landmark, objects) - 1]["position"][1]
        sign = -1 if ref.relation == "left of" else 1
        found = sorted((o for o in found if sign * (o["position"][1] - y0) > 0),
                       key=lambda o: abs(o["position"][1] - y0))
    assert found, ref
    return found[0]["id"]


def truth(task: str, slots: dict, objects) -> tuple:
    if task == "put_all":
        return task, [bind(slots["bowl"], objects)], None
    refs = [slots[k] for k in ("obj", "bowl", "base", "landmark") if k in slots]
    return task, [bind(r, objects) for r in refs], slots.get("side")


def planned(step) -> tuple:
    if step.task == "put_all":
        return step.task, [step.objects["target"]], None
    return step.task, [step.objects[k] for k in ("object", "target") if k in step.objects], step.side


def fill(template: str, slots: dict) -> str:
    values = {k: (v.text() if hasattr(v, "text") else v) for k, v in slots.items()}
    if "side" in values or "landmark" in values:
        values["dest"] = (f"to the {values['side']} side of the table" if "side" in values
                          else f"next to {values['landmark']}")
    return template.format(**values)


@pytest.mark.parametrize("task", SINGLE)
def test_every_template_plans_to_the_instructions_objects(task):
    env = make_env(task, split="seen", image_size=0)
    planner = GrammarPlanner()
    try:
        for seed in range(4):
            _, info = env.reset(seed=seed)
            objects = env.unwrapped.scene_annotation()["objects"]
            parsed = parse_instruction(info["instruction"])
            expected = truth(parsed.task, parsed.slots, objects)
            for template in TEMPLATES[task]:
                sentence = fill(template, parsed.slots)
                plan, _ = planner.plan(sentence, {"objects": objects}, Memory())
                assert [s.kind for s in plan.steps] == ["manipulate"], (sentence, plan.answer)
                assert planned(plan.steps[0]) == expected, sentence
    finally:
        env.close()


def test_chained_templates_plan_to_both_parts():
    env = make_env("chain", split="seen", image_size=0)
    planner = GrammarPlanner()
    try:
        for seed in range(6):
            _, info = env.reset(seed=seed)
            objects = env.unwrapped.scene_annotation()["objects"]
            parts = [parse_instruction(info["instruction"]).slots[k] for k in ("first", "second")]
            expected = [truth(task, slots, objects) for task, slots, _ in parts]
            for chain in TEMPLATES["chain"]:
                a, b = (fill(TEMPLATES[task][k], slots) for task, slots, k in parts)
                sentence = chain.format(first=a, second=b)
                plan, _ = planner.plan(sentence, {"objects": objects}, Memory())
                assert [planned(s) for s in plan.steps] == expected, sentence
    finally:
        env.close()


def test_canonical_instruction_is_in_the_envs_language():
    """A planned instruction is the env's canonical phrasing: the env builds and binds the same task from it."""
    env = make_env("place", split="seen", image_size=0)
    planner = GrammarPlanner()
    try:
        _, info = env.reset(seed=3)
        sentence = fill(TEMPLATES["place"][5], parse_instruction(info["instruction"]).slots)
        plan, _ = planner.plan(sentence, env.unwrapped.scene_annotation(), Memory())
        _, bound = env.unwrapped.set_instruction(plan.steps[0].instruction)
        assert bound["task"] == "place" and bound["instruction"] == plan.steps[0].instruction
        assert plan.steps[0].instruction.startswith("put the ")  # CANONICAL["place"] = "put {obj} in {bowl}"
    finally:
        env.close()
