"""`vla train goal`: oracle goal frames, the detector's fine-tuning, training, the report and attaching the pointer
to a policy, on the one-episode-per-task debug sets; bad arguments are one clear error."""
import json

import numpy as np
import pytest
import torch

from vla.agent.cli import main
from vla.agent.perception.runs import load_run
from vla.agent.train import goal_data
from vla.agent.train.goal import load_detector, load_pointer, new_pointer, train_goal


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    before = torch.get_num_threads()
    root = tmp_path_factory.mktemp("goal")
    run = load_run("goal", "debug", ["detector_steps=2", "detector_scenes=debug"])
    report = train_goal(run, str(root / "pointer"), workers=1, data_dir=root / "data")
    torch.set_num_threads(before)
    return root, run, report


def test_goal_frames_carry_the_oracles_goal_and_render_the_same_twice():
    spec = goal_data.SETS["debug"]
    a = goal_data.render_episode(spec, "place", 3_000_000)
    b = goal_data.render_episode(spec, "place", 3_000_000)
    assert len(a) == len(b) >= 2
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["image"], y["image"])
        np.testing.assert_array_equal(x["label"], y["label"])
    first, last = a[0], a[-1]
    objects = {o["id"]: o for o in json.loads(first["annotation"])["objects"]}
    mover = objects[first["mover"]]
    assert first["image"].shape == (128, 128, 3) and first["task"] == "place"
    assert np.linalg.norm(first["label"][4:6] - np.array(mover["position"][:2])) < 0.02   # first: the block
    bowl = [o for o in json.loads(last["annotation"])["objects"] if o["shape"] == "bowl"]
    assert min(np.linalg.norm(last["label"][4:6] - np.array(o["position"][:2])) for o in bowl) < 0.02  # then a bowl


def test_training_writes_a_pointer_with_its_report_and_a_tuned_detector(trained):
    root, run, report = trained
    assert (root / "data" / "debug.npz").is_file()
    assert report["train_metrics"]["steps"] == 2 and report["detector_metrics"]["steps"] == 2
    assert set(report["debug"]) == {"hit3cm", "median_err_cm", "per_task"}
    assert set(report["debug"]["per_task"]) == set(goal_data.TASKS)
    saved = json.loads((root / "pointer" / "report.json").read_text())
    assert saved["run"]["detector_steps"] == 2
    pointer = load_pointer(root / "pointer")
    assert "place" not in pointer.cfg.vocab or pointer.index["place"] >= 3
    assert "red" not in pointer.cfg.vocab                    # colour words enter by value only
    data = goal_data.load_set("debug", data_dir=root / "data")
    fresh = new_pointer(run, data)
    load_detector(fresh, run.vlm)
    moved = [not torch.equal(a, b) for a, b in zip(pointer.detector.parameters(), fresh.detector.parameters())]
    assert any(moved)                                         # the two detector steps changed it


def test_the_cli_attaches_a_trained_pointer_to_a_policy(trained, tmp_path, capsys):
    from vla.models.policy.policy import load_policy

    root, _, _ = trained
    out = tmp_path / "policy"
    assert main(["train", "goal", "--init", str(root / "pointer"), "--attach", "default", "--export", str(out),
                 "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["exported"] == str(out)
    policy = load_policy(out)
    assert policy.net.goal_pointer is not None
    for (k, a), (_, b) in zip(policy.net.goal_pointer.state_dict().items(),
                              load_pointer(root / "pointer").state_dict().items()):
        torch.testing.assert_close(a, b.half().float(), msg=k)   # shipped as fp16


@pytest.mark.parametrize("argv, message", [
    (["train", "goal", "--attach", "default"], "go together"),
    (["train", "goal", "--init", "runs/goal/x"], "--init only makes sense"),
    (["train", "goal", "--preset", "nosuch"], "unknown goal preset"),
    (["train", "goal", "--init", "models/weights/policy", "--attach", "default", "--export", "/tmp/x"],
     "not a goal pointer"),
])
def test_bad_arguments_are_one_clear_error(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
