"""`vla run`: one command with --json/--video/--log, bad input, and the interactive session driven through stdin."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from vla.agent.cli import main

pytestmark = pytest.mark.timeout(240)

FAST = ["--policy", "oracle", "--image-size", "32"]


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_one_command_prints_the_json_schema_and_writes_video_and_log(tmp_path, capsys):
    video, log = tmp_path / "run.mp4", tmp_path / "log.json"
    code = main(["run", "pick up the red block and put it in the green bowl", *FAST, "--json",
                 "--video", str(video), "--log", str(log)])
    out = capsys.readouterr().out
    payload = last_json(out)
    assert code == 0 and payload["success"] is True and payload["policy"] == "oracle"
    assert payload["command"] == "pick up the red block and put it in the green bowl"
    assert [s["kind"] for s in payload["steps"]] == ["plan", "manipulate"]
    assert all(set(s) >= {"kind", "tool", "input", "output", "success", "ms"} for s in payload["steps"])
    assert payload["steps"][1]["input"]["instruction"] == "put the red block in the green bowl"
    assert payload["answer"] == "I put the red block in the green bowl."
    assert "robot> I put the red block in the green bowl." in out
    import av

    with av.open(str(video)) as container:
        frames = sum(1 for _ in container.decode(video=0))
    assert frames == payload["steps"][1]["output"]["env_steps"] + 15  # control steps + the held reply
    assert json.loads(log.read_text())["turns"][0]["answer"] == payload["answer"]
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]


@pytest.mark.parametrize("argv, code, message", [
    (["run", "", *FAST], 2, "error: the command is empty"),
    (["run", "put the red block in the green bowl", *FAST, "--verify", "eyes"], 2, "unknown verification 'eyes'"),
    (["run", "touch the red block", "--policy", "/nonexistent/ckpt"], 2, "use --policy oracle"),
    (["run", "touch the red block", *FAST, "--planner", "gpt"], 2, "unknown planner 'gpt'"),
])
def test_bad_input_is_one_sentence_and_exit_2(argv, code, message, capsys):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("command, reply", [
    ("blorp the flibber", "I don't understand 'blorp the flibber'"),
    ("put the red block in the green bowl and do not touch the red block", "contradict each other"),
])
def test_refused_commands_answer_clearly_and_exit_1(command, reply, capsys):
    assert main(["run", command, *FAST, "--json"]) == 1
    payload = last_json(capsys.readouterr().out)
    assert payload["success"] is False and reply in payload["answer"]
    assert [s["kind"] for s in payload["steps"]] == ["plan", "refuse"]


def test_absent_object_on_a_named_task_scene_is_refused(capsys):
    assert main(["run", "put the black cylinder in the white bowl", *FAST, "--task-scene", "stack", "--json"]) == 1
    assert "I don't see a black cylinder here." in last_json(capsys.readouterr().out)["answer"]


def _scene_words(task: str, seed: int) -> tuple[str, str]:
    """A movable object and a bowl of the scene the REPL will build, read from the env (test side only)."""
    from vla.envs import make_env

    env = make_env(task, image_size=0)
    objects = env.reset(seed=seed)[0] and env.unwrapped.scene_annotation()["objects"]
    env.close()
    mover = next(o for o in objects if o["shape"] != "bowl" and sum(
        p["color"] == o["color"] and p["shape"] == o["shape"] for p in objects) == 1)
    bowl = next(o for o in objects if o["shape"] == "bowl")
    return f"{mover['color']} {mover['shape']}", f"{bowl['color']} bowl"


def test_interactive_session_through_stdin():
    mover, bowl = _scene_words("place", 0)
    lines = ["help", f"pick up the {mover}", f"put it in the {bowl}", "what did you just do?",
             "put the purple cylinder in the pink bowl", "history", "reset 4", "quit"]
    proc = subprocess.run([sys.executable, "-m", "vla.agent.cli", "run", *FAST, "--task-scene", "place", "--json"],
                          input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "Session commands: help, history, reset [SEED], quit." in out
    turns = last_json(out)["turns"]
    assert [t["command"] for t in turns] == lines[1:5]
    assert [t["success"] for t in turns[:2]] == [True, True]
    assert turns[1]["steps"][1]["input"]["instruction"] == f"put the {mover} in the {bowl}"
    assert turns[2]["answer"].startswith(f"I put the {mover} in the {bowl}.")  # recall names what was done
    assert "I don't see" in turns[3]["answer"] and turns[3]["success"] is False
    assert "robot> New scene (seed 4)." in out and f"  1. pick up the {mover} -> done" in out
    assert all(set(t) == {"command", "success", "steps", "answer"} for t in turns)


def test_rerun_recording_is_written(tmp_path, capsys):
    pytest.importorskip("rerun")
    path = tmp_path / "episode.rrd"
    assert main(["run", "touch the red block", *FAST, "--rerun", str(path)]) == 0
    assert path.stat().st_size > 1000 and "robot> I touched the red block." in capsys.readouterr().out
