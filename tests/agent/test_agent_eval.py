"""`vla eval agent`: the paraphraser keeps the meaning (the planner maps both wordings to one goal), and a tiny
evaluation with the oracle reports every figure in its JSON."""
from __future__ import annotations

import json
import random

import pytest

from vla.agent.cli import main
from vla.agent.commands.eval_agent import COMPOUND_TASKS, SINGLE_TASKS, paraphrase
from vla.agent.planner import GrammarPlanner, Memory
from vla.envs import make_env

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("task", SINGLE_TASKS + COMPOUND_TASKS)
def test_paraphrases_differ_in_words_but_plan_to_the_same_steps(task):
    env = make_env(task, image_size=0)
    planner = GrammarPlanner()
    try:
        for seed in range(3):
            _, info = env.reset(seed=seed)
            scene = env.unwrapped.scene_annotation()
            original = planner.plan(info["instruction"], scene, Memory())[0]
            text = paraphrase(info["instruction"], random.Random(seed))
            rephrased = planner.plan(text, scene, Memory())[0]
            assert text != info["instruction"]
            assert [(s.task, s.objects) for s in rephrased.steps] == [(s.task, s.objects) for s in original.steps]
    finally:
        env.close()


def test_tiny_oracle_evaluation_reports_all_figures(capsys):
    assert main(["eval", "agent", "--policy", "oracle", "--seeds", "1", "--splits", "seen", "--image-size", "32",
                 "--no-questions", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["policy"] == "oracle" and out["n"] == {"single": 5, "single_paraphrased": 5, "compound": 2,
                                                      "compound_paraphrased": 2}
    assert out["success_pct"]["single"] == 100.0  # the scripted expert carries out every planned step
    assert out["plan_ms"]["p95"] >= out["plan_ms"]["p50"] > 0
    assert out["question_accuracy_pct"] is None and out["questions_answered"] == 0


def test_eval_rejects_bad_arguments(capsys):
    assert main(["eval", "agent", "--policy", "oracle", "--seeds", "0"]) == 2
    assert "--seeds must be >= 1" in capsys.readouterr().err
    assert main(["eval", "agent", "--policy", "oracle", "--tasks", "reach,fly"]) == 2
    assert "unknown task 'fly' for --tasks" in capsys.readouterr().err


def test_a_task_subset_is_scored_per_task(capsys):
    assert main(["eval", "agent", "--policy", "oracle", "--seeds", "1", "--splits", "seen", "--image-size", "32",
                 "--no-questions", "--tasks", "pick,chain", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["n"] == {"single": 1, "single_paraphrased": 1, "compound": 1, "compound_paraphrased": 1}
    assert out["success_pct_by_task"] == {"pick": 100.0, "chain": 100.0} and out["point"] is True


def test_with_vqa_checks_success_is_still_the_simulators_and_the_checks_are_scored(capsys):
    assert main(["eval", "agent", "--policy", "oracle", "--seeds", "1", "--splits", "seen", "--image-size", "32",
                 "--no-questions", "--verify", "vqa", "--retries", "0", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # the oracle did every single step, whatever the VQA model made of 32-pixel images (a compound command whose
    # first step the check failed stops there, so it is not done in the simulator either)
    assert out["success_pct"]["single"] == 100.0
    verify = out["verify"]
    assert verify["mode"] == "vqa" and verify["checks"] >= 12 and 0 <= verify["agree_pct"] <= 100
    assert verify["said_done_but_not_pct"] in (None, 0.0)          # the simulator says every step ran was done
    assert sum(v["checks"] for v in verify["by_verb"].values()) == verify["checks"] and "put" in verify["by_verb"]


def _record(objects, instruction, env_success, said_done=None):
    from vla.agent.agent import StepRecord

    output = {"env_success": env_success}
    if said_done is not None:
        output["vqa_answer"] = "yes" if said_done else "no"
    return StepRecord("manipulate", "policy:x", {"instruction": instruction, "objects": objects}, output,
                      env_success if said_done is None else said_done, 1.0)


def test_the_simulators_verdict_takes_each_steps_last_attempt():
    from vla.agent.commands.eval_agent import _in_simulator
    from vla.agent.planner.steps import Plan, Step
    from vla.agent.session import Turn

    plan = Plan("put the red block in the bowl, then touch it", [Step("manipulate", "x")])
    redone = [_record({"object": 1, "target": 2}, "put the red block in the green bowl", False, said_done=True),
              _record({"object": 3}, "touch the blue block", True, said_done=True),
              _record({"object": 1, "target": 2}, "put the red block left of x in the green bowl", True, False)]
    checks = []
    assert _in_simulator(Turn("c", plan, redone, False, ""), checks)
    assert checks == [(True, False, "put"), (True, True, "touch"), (False, True, "put")]
    assert not _in_simulator(Turn("c", plan, redone[:2], True, ""), [])        # the put never succeeded
    refused = Plan("put the purple block away", [Step("refuse", "x", reason="no purple block")])
    assert not _in_simulator(Turn("c", refused, [], False, ""), [])


def test_questions_about_objects_the_camera_does_not_show_are_scored_apart():
    import argparse

    import numpy as np

    from vla.agent.commands.eval_agent import _ask_questions, _Runner, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    runner = _Runner(parser.parse_args(["--policy", "oracle", "--image-size", "64"]))
    env = make_env("put_all", image_size=64, segmentation=True)
    try:
        obs, _ = env.reset(seed=0)
        session = runner.session(env, obs)
        results = {"questions": [], "questions_hidden": [], "question_errors": []}
        _ask_questions(session, random.Random(0), results)
        shown = len(results["questions"]) + len(results["questions_hidden"])
        assert shown >= 3 and len(results["questions"]) >= 1          # a fresh scene shows its objects
        session.executor.obs["front_seg"] = np.zeros_like(obs["front_seg"])    # a camera that shows nothing
        again = {"questions": [], "questions_hidden": [], "question_errors": []}
        _ask_questions(session, random.Random(0), again)
        # the same questions; those still scored name no object in the scene ("is there a purple cylinder?")
        assert len(again["questions_hidden"]) >= 1
        assert len(again["questions"]) + len(again["questions_hidden"]) == shown
    finally:
        env.close()
