"""`vla bench policy` keeps its JSON contract (figures themselves are for the program, not asserted)."""
from __future__ import annotations

import json

import pytest
import torch

from vla.agent.cli import main


def test_bench_policy_json_schema(capsys):
    assert main(["bench", "policy", "--preset", "debug", "--repeats", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    fig = result["debug"]
    assert {"ms_per_action", "ms_per_chunk", "b32_actions_per_s", "device"} <= set(fig)
    assert fig["device"] == "cpu" and fig["ms_per_chunk"] > 0 and fig["b32_actions_per_s"] > 0
    assert fig["ms_per_action"] * fig["execute"] == pytest.approx(fig["ms_per_chunk"])


def test_bench_policy_measures_a_checkpoint_alone(capsys):
    assert main(["bench", "policy", "--policy", "default", "--repeats", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(result) == ["default"] and result["default"]["ms_per_chunk"] > 0
    assert main(["bench", "policy", "--policy", "/nonexistent/policy"]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_bench_policy_rejects_missing_cuda(capsys):
    assert main(["bench", "policy", "--device", "cuda", "--preset", "debug"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
