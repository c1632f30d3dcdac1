"""`vla bench tools` keeps its JSON contract and rejects bad options (figures are for the program, not asserted)."""
from __future__ import annotations

import json

import pytest
import torch

from vla.agent.cli import main


def test_bench_tools_json_schema(capsys):
    assert main(["bench", "tools", "--scene", "pick:1", "--repeats", "1", "--batch", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["device"] == "cpu" and result["diffusion_batch"] == 2
    assert set(result["ms_per_call"]) == {"classify", "locate", "caption", "vqa", "generate"}
    assert all(ms > 0 for ms in result["ms_per_call"].values()) and result["diffusion_images_per_s"] > 0


def test_bench_tools_rejects_bad_options(capsys):
    assert main(["bench", "tools", "--weights", "paint=/tmp/x"]) == 2
    assert "TOOL=PATH" in capsys.readouterr().err
    assert main(["bench", "tools", "/nonexistent.png"]) == 2
    assert "does not exist" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["bench", "tools", "--device", "cuda"]) == 2
        assert "no CUDA device" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--repeats", "0"], ["--batch", "0"]])
def test_bench_tools_rejects_non_positive_counts(capsys, bad):
    assert main(["bench", "tools", *bad]) == 2
    assert "at least 1" in capsys.readouterr().err
