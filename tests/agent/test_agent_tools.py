"""The agent's perception-tool steps through the real tool registry: questions (VQA), descriptions (caption),
"where is" (CLIP locate) and "what changed?" (captions of the frames before and after), with tiny freshly
initialised tool checkpoints (their words are untrained; the test checks the plumbing and the log)."""
from __future__ import annotations

import json

import pytest

from vla.agent.cli import main

pytestmark = pytest.mark.timeout(300)

SENTENCES = ["describe the scene .", "what colour is the green bowl ?", "a red block in a green bowl",
             "the red block", "is there a red block ?", "yes", "no", "red", "green"]


@pytest.fixture(scope="module")
def tool_dirs(tmp_path_factory):
    import yaml

    from vla import ROOT
    from vla.models.clip import new_clip
    from vla.models.vlm import new_vlm

    root = tmp_path_factory.mktemp("tools")
    vlm_cfg = yaml.safe_load((ROOT / "configs" / "vlm" / "debug.yaml").read_text())["model"]
    clip_cfg = yaml.safe_load((ROOT / "configs" / "clip" / "debug.yaml").read_text())["model"]
    new_vlm(vlm_cfg, SENTENCES).save(root / "vlm")
    new_clip(clip_cfg, SENTENCES).save(root / "clip")
    return ["--tool-weights", f"vqa={root / 'vlm'}", "--tool-weights", f"caption={root / 'vlm'}",
            "--tool-weights", f"locate={root / 'clip'}"]


def test_questions_descriptions_and_locate_go_through_their_tools(tool_dirs, tmp_path, capsys):
    video = tmp_path / "tools.mp4"
    command = "touch the red block, then is there a red block? where is the green bowl? and describe the scene"
    code = main(["run", command, "--policy", "oracle", "--image-size", "64", "--json", "--video", str(video),
                 *tool_dirs])
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    steps = {s["kind"]: s for s in payload["steps"]}
    assert code == 0 and payload["success"] is True, payload["answer"]
    assert steps["question"]["tool"] == "vqa" and steps["question"]["input"] == {"question": "is there a red block?"}
    assert isinstance(steps["question"]["output"]["answer"], str)
    assert steps["describe"]["tool"] == "caption" and isinstance(steps["describe"]["output"]["caption"], str)
    box = steps["locate"]["output"]["box"]
    assert steps["locate"]["input"] == {"text": "green bowl"} and len(box) == 4 and box[0] <= box[2]
    assert "heatmap" not in steps["locate"]["output"]  # kept out of the log
    assert video.stat().st_size > 0


def test_what_changed_compares_captions_of_before_and_after(tool_dirs, monkeypatch, capsys):
    import io
    import sys

    lines = ["what changed?", "touch the red block", "what did you just do?", "what changed?", "quit"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["run", "--policy", "oracle", "--image-size", "64", "--json", *tool_dirs]) == 0
    out = capsys.readouterr().out
    turns = json.loads(out.strip().splitlines()[-1])["turns"]
    assert turns[0]["answer"] == "I haven't moved anything yet in this session."
    recall = [s for s in turns[2]["steps"] if s["kind"] == "recall"][0]
    assert recall["tool"] == "caption" and set(recall["output"]) == {"before", "after", "actions"}
    assert recall["output"]["actions"] == ["I touched the red block."]
    assert turns[2]["answer"].startswith("I touched the red block.")
    changed = [s for s in turns[3]["steps"] if s["kind"] == "recall"][0]
    assert changed["input"]["command"] == "touch the red block"
