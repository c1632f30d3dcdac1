"""The agent driving a trained-policy checkpoint (a tiny, freshly initialised one saved to disk and loaded
through `load_policy`): the closed loop feeds it observations with the step's canonical instruction, spends
the step budget, retries, and reports the outcome and which policy ran."""
from __future__ import annotations

import json

import pytest

from vla.agent.cli import main

pytestmark = pytest.mark.timeout(300)

STATS = {"action": {"q01": [-0.05] * 4 + [0.0], "q99": [0.05] * 4 + [1.0]},
         "state": {"mean": [0.0] * 12, "std": [1.0] * 12}}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from vla.models.policy.config import load_config
    from vla.models.policy.policy import VLAPolicy

    path = tmp_path_factory.mktemp("policy") / "tiny"
    VLAPolicy.create(load_config("debug"), STATS, ["touch the red block"]).save(path)
    return path


def test_run_with_a_policy_checkpoint_reports_the_closed_loop(checkpoint, capsys):
    code = main(["run", "touch the red block", "--policy", str(checkpoint), "--image-size", "32",
                 "--step-budget", "4", "--retries", "1", "--json"])
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    manip = payload["steps"][1]
    assert payload["policy"] == str(checkpoint) and manip["tool"] == f"policy:{checkpoint}"
    assert manip["input"]["instruction"] == "touch the red block"
    assert code == (0 if payload["success"] else 1)
    if not manip["success"]:  # an untrained policy almost surely fails: both attempts spend the whole budget
        assert manip["output"]["attempts"] == 2 and manip["output"]["env_steps"] == 8
        assert payload["answer"].startswith("I tried to touch the red block but could not (2 attempts, 8 control")
