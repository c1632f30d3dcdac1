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
