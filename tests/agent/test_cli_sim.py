"""`vla tasks`, `vla sim` and `vla bench sim` through the CLI router: JSON output, videos and clear errors."""
import json

import av
import numpy as np
import pytest

from vla.agent.cli import main
from vla.envs.video import VideoWriter


def _last_json(capsys):
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


def test_tasks_json_lists_tasks_splits_colours(capsys):
    assert main(["tasks", "--json"]) == 0
    data = _last_json(capsys)
    names = [t["name"] for t in data["tasks"]]
    assert names == ["reach", "pick", "place", "stack", "push", "put_all", "chain"]
    assert all(t["env_id"].startswith("vla/") and len(t["templates"]) >= 4 for t in data["tasks"])
    assert set(data["splits"]) == {"seen", "unseen_colors", "unseen_combos", "unseen_phrasings"}
    assert len(data["colors"]) >= 10


def test_sim_json_reports_success_rate(capsys):
    assert main(["sim", "--task", "pick", "--episodes", "2", "--image-size", "16", "--json"]) == 0
    data = _last_json(capsys)
    assert data["task"] == "pick" and data["split"] == "seen" and data["episodes"] == 2
    assert data["success_rate"] == 1.0


def test_sim_random_policy_and_instruction(capsys):
    assert main(["sim", "--instruction", "put the red block in the green bowl", "--policy", "random",
                 "--episodes", "1", "--image-size", "16", "--json"]) == 0
    data = _last_json(capsys)
    assert data["task"] == "place" and data["success_rate"] == 0.0


def test_sim_writes_playable_video(tmp_path, capsys):
    path = tmp_path / "ep.mp4"
    assert main(["sim", "--task", "reach", "--episodes", "1", "--image-size", "32", "--video", str(path)]) == 0
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) >= 3 and frames[0].shape == (32, 32, 3)
    assert not list(tmp_path.glob("*.part"))


def test_video_writer_pads_odd_sizes(tmp_path):
    with VideoWriter(tmp_path / "odd.mp4", fps=5) as vw:
        for k in range(4):
            vw.write(np.full((15, 21, 3), 40 * k, dtype=np.uint8))
    with av.open(str(tmp_path / "odd.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 22, 16)


@pytest.mark.parametrize("argv,needle", [
    (["sim", "--task", "juggle"], "allowed: reach"),
    (["sim", "--split", "unseen_planets"], "allowed: seen"),
    (["sim", "--instruction", "put the magenta block in the green bowl"], "allowed colours"),
    (["sim", "--instruction", "do a backflip"], "could not understand"),
    (["sim", "--task", "reach", "--episodes", "0"], "at least 1"),
    (["sim", "--task", "reach", "--video", "/nonexistent/dir/x.mp4"], "does not exist"),
    (["bench", "sim", "--task", "juggle"], "allowed: reach"),
    (["bench", "sim", "--repeats", "0"], "--repeats at least 1"),
])
def test_bad_input_gets_one_sentence_and_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and needle in err[-1] and "Traceback" not in "\n".join(err)


def test_bench_sim_json_keys(capsys):
    assert main(["bench", "sim", "--steps", "10", "--episodes", "1", "--ik-targets", "2", "--repeats", "2",
                 "--json"]) == 0
    data = _last_json(capsys)
    assert data["repeats"] == 2
    for key in ("rgb128_steps_per_s", "state_steps_per_s", "stock_rgb128_steps_per_s", "ratio_vs_stock",
                "oracle_episodes_per_min"):
        assert data[key] > 0
    assert data["ratio_vs_stock"] == pytest.approx(data["rgb128_steps_per_s"] / data["stock_rgb128_steps_per_s"],
                                                   rel=0.02)


def test_gui_without_display_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    assert main(["sim", "--task", "reach", "--episodes", "1", "--gui"]) == 2
    assert "DISPLAY" in capsys.readouterr().err
