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
@pytest.mark.parametrize("command, verb, budget", [("touch the red block", "touched", 40),
                                                   ("put the red block in the green bowl", "put", 80)])
def test_shipped_policy_runs_closed_loop_and_reports_truthfully(command, verb, budget, capsys):
    """The shipped VLA drives each step; the reply and exit code follow the simulator's verdict. (How often
    it succeeds is the policy's quality, measured by `vla eval agent --policy default`.)"""
    code, payload = _run(["run", command, "--retries", "0", "--json"], capsys)
    manip = [s for s in payload["steps"] if s["kind"] == "manipulate"]
    assert payload["policy"] == "default" and [m["tool"] for m in manip] == ["policy:default"]
    out = manip[0]["output"]
    assert out["verified_by"] == "env" and out["success"] == out["env_success"] == payload["success"]
    assert code == (0 if payload["success"] else 1)
    if payload["success"]:
        assert payload["answer"].startswith(f"I {verb} the red block") and 0 < out["env_steps"] <= budget
    else:
        assert out["env_steps"] == budget and payload["answer"].startswith(
            f"I tried to {manip[0]['input']['instruction']} but could not (1 attempt, {budget} control steps)")


@pytest.mark.skipif(not (POLICY / "model.safetensors").is_file() or not VLM.exists(),
                    reason="no shipped policy or VQA/caption weights in this checkout")
@pytest.mark.parametrize("seed", [0, 3])
def test_the_readme_main_job_succeeds_on_the_shipped_weights(seed, capsys):
    """The README's main job (scripts/demo.sh), the trained VLA at the controls: the block ends in the bowl and
    the caption of what is left says so."""
    command = "put the red block in the green bowl, then tell me what is left on the table"
    code, payload = _run(["run", command, "--seed", str(seed), "--json"], capsys)
    assert code == 0 and payload["success"] is True, payload["answer"]
    assert [s["kind"] for s in payload["steps"]] == ["plan", "manipulate", "describe", "verify"]
    assert payload["answer"].startswith("I put the red block in the green bowl. ")
    assert "red block in a green bowl" in payload["answer"]


@pytest.mark.skipif(not VLM.exists(), reason="no shipped VQA/caption weights in this checkout")
def test_shipped_vqa_answers_questions_mid_command(capsys):
    code, payload = _run(["run", "touch the red block, then is there a red block?", "--policy", "oracle",
                          "--json"], capsys)
    question = [s for s in payload["steps"] if s["kind"] == "question"][0]
    assert question["tool"] == "vqa" and question["success"] is True
    assert question["output"]["answer"].strip().lower().startswith("yes")


CLIP = ROOT / "models" / "weights" / "clip"


@pytest.mark.skipif(not CLIP.exists(), reason="no shipped CLIP weights in this checkout")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shipped_clip_finds_the_object_asked_about(seed):
    """"where is the green bowl?": the box the agent reports overlaps the bowl in the segmentation image."""
    from vla.agent.agent import Actor, Executor, Tools
    from vla.agent.planner import get_planner
    from vla.agent.session import Session
    from vla.envs import make_env

    env = make_env("place", image_size=128, segmentation=True)
    obs, _ = env.reset(seed=seed, options={"objects": [{"color": "green", "shape": "bowl", "size": None},
                                                       {"color": "red", "shape": "block", "size": None}]})
    session = Session(env, Executor(env, Actor("oracle", env), Tools()), get_planner("grammar"))
    session.start(obs)
    turn = session.ask("where is the green bowl?")
    record = turn.records[1]
    assert record.tool == "locate" and record.success, turn.answer
    bowl = next(o["id"] for o in env.unwrapped.scene_annotation()["objects"] if o["color"] == "green")
    x0, y0, x1, y1 = record.output["box"]
    mask = obs["front_seg"] == bowl
    inside = mask[y0:y1 + 1, x0:x1 + 1].sum()
    assert inside > 0.5 * mask.sum(), (record.output, int(mask.sum()))
    assert turn.answer.startswith("The green bowl is ")
    env.close()
