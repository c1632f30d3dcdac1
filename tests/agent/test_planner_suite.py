"""The planner against the task suite itself: every phrasing template of every task (held-out ones included),
on scenes the env samples, must plan to the env's own goal (same task, same object ids, same side)."""
from __future__ import annotations

import pytest

from vla.agent.planner import GrammarPlanner, Memory
from vla.envs import make_env

pytestmark = pytest.mark.timeout(120)

SINGLE = ["reach", "pick", "place", "stack", "push", "put_all"]


def _truth(task: str, goal) -> tuple[str, list[int], str | None]:
    refs = [r.oid for r in goal.refs()]
    if task == "put_all":
        return task, [goal.bowl.oid], None
    if task == "push" and goal.landmark is not None:
        refs = [goal.target.oid, goal.landmark.oid]
    return task, refs, getattr(goal, "side", None)


def _planned(step) -> tuple[str, list[int], str | None]:
    if step.task == "put_all":
        return step.task, [step.objects["target"]], None
    return step.task, [step.objects[k] for k in ("object", "target") if k in step.objects], step.side


@pytest.mark.parametrize("task", SINGLE)
def test_every_template_plans_to_the_envs_goal(task):
    env = make_env(task, split="seen", image_size=0)
    planner = GrammarPlanner()
    try:
        for seed in range(4):
            env.reset(seed=seed)
            inner = env.unwrapped
            scene = inner.scene_annotation()
            truth = _truth(task, inner.goal)
            for k in range(len(inner.task.TEMPLATES)):
                sentence = inner.task.instruction(inner.goal, k)
                plan, _ = planner.plan(sentence, scene, Memory())
                assert [s.kind for s in plan.steps] == ["manipulate"], (sentence, plan.answer)
                assert _planned(plan.steps[0]) == truth, sentence
    finally:
        env.close()


def test_chained_templates_plan_to_both_sub_goals():
    env = make_env("chain", split="seen", image_size=0)
    planner = GrammarPlanner()
    try:
        for seed in range(6):
            env.reset(seed=seed)
            inner = env.unwrapped
            goal, chain = inner.goal, inner.task
            truth = [_truth(goal.first_task, goal.first), _truth(goal.second_task, goal.second)]
            for k in range(len(chain.TEMPLATES)):
                goal.first_template = goal.second_template = k
                sentence = chain.instruction(goal, k)
                plan, _ = planner.plan(sentence, inner.scene_annotation(), Memory())
                assert [_planned(s) for s in plan.steps] == truth, sentence
    finally:
        env.close()


def test_canonical_instruction_builds_the_same_scene_objects():
    """A planned instruction is in the env's language: the env can build a scene from it."""
    env = make_env("place", split="seen", image_size=0)
    planner = GrammarPlanner()
    try:
        env.reset(seed=3)
        sentence = env.unwrapped.task.instruction(env.unwrapped.goal, 5)
        plan, _ = planner.plan(sentence, env.unwrapped.scene_annotation(), Memory())
        _, info = env.reset(seed=3, options={"instruction": plan.steps[0].instruction})
        assert info["task"] == "place" and info["instruction"] == plan.steps[0].instruction
    finally:
        env.close()
