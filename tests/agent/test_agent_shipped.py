"""`vla run` end to end on the shipped weights: the trained VLA as the controller and the shipped VQA /
captioning model for questions. Skipped only where the shipped weights are not in the checkout."""
from __future__ import annotations

import json

import pytest

from vla import ROOT
from vla.agent.cli import main

POLICY = ROOT / "models" / "weights" / "policy"
VLM = ROOT / "models" / "weights" / "vlm"

pytestmark = pytest.mark.timeout(600)


def _run(argv, capsys) -> tuple[int, dict]:
    code = main(argv)
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.skipif(not (POLICY / "model.safetensors").is_file(), reason="no shipped policy weights in this checkout")
@pytest.mark.parametrize("command, seed", [("touch the red block", 0), ("put the red block in the green bowl", 0)])
def test_shipped_policy_carries_out_commands(command, seed, capsys):
    code, payload = _run(["run", command, "--seed", str(seed), "--retries", "1", "--json"], capsys)
    manip = [s for s in payload["steps"] if s["kind"] == "manipulate"]
    assert payload["policy"] == "default" and manip and manip[0]["tool"] == "policy:default"
    assert code == 0 and payload["success"] is True, payload["answer"]
    assert manip[0]["output"]["verified_by"] == "env" and manip[0]["output"]["env_steps"] > 0


@pytest.mark.skipif(not VLM.exists(), reason="no shipped VQA/caption weights in this checkout")
def test_shipped_vqa_answers_questions_mid_command(capsys):
    code, payload = _run(["run", "touch the red block, then is there a red block?", "--policy", "oracle",
                          "--json"], capsys)
    question = [s for s in payload["steps"] if s["kind"] == "question"][0]
    assert question["tool"] == "vqa" and question["success"] is True
    assert question["output"]["answer"].strip().lower().startswith("yes")
