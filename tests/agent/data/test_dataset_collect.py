"""`vla collect` on the real env: replay info, scene annotations, resuming, re-rendering."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vla.agent.cli import main
from vla.agent.data import rollout
from vla.agent.data.dataset import LeRobotDataset
from vla.agent.data.tools import rerender_dataset


@pytest.fixture(scope="module")
def collected(tmp_path_factory):
    root = tmp_path_factory.mktemp("collect") / "ds"
    args = ["collect", "--task", "reach,push", "--episodes", "3", "--out", str(root), "--image-size", "32", "--json"]
    assert main(args) == 0
    return root, args


def test_report_and_layout(collected, capsys):
    root, _ = collected
    assert main(["dataset", "info", str(root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["episodes"] == 3 and info["episodes_per_task"] == {"reach": 2, "push": 1}
    assert info["features"]["observation.images.front"]["shape"] == [32, 32, 3]
    assert not (root / ".vla-staging").exists()


def test_episodes_carry_replay_info_and_scene_annotations(collected):
    root, _ = collected
    ds = LeRobotDataset(root)
    row = ds.episode_info(1)
    assert row["vla/env_id"] == "vla/Push-v0" and row["vla/task_name"] == "push"
    assert json.loads(row["vla/env_kwargs"]) == {"split": "seen", "image_size": [32, 32], "wrist": False}
    first, last = json.loads(row["vla/scene_first"]), json.loads(row["vla/scene_last"])
    obj = first["objects"][0]
    assert {"id", "color", "shape", "size", "position", "in", "on"} <= set(obj) and len(obj["position"]) == 3
    assert {"position", "opening", "holding"} <= set(last["gripper"])
    assert row["vla/discarded"] >= 0 and row["tasks"] == [ds[int(ds._ep_from[1])]["task"]]


def test_an_episode_replays_exactly_from_its_record(collected):
    root, _ = collected
    ds = LeRobotDataset(root)
    row = ds.episode_info(2)
    kwargs = json.loads(row["vla/env_kwargs"])
    env = rollout.make(row["vla/env_id"], kwargs)
    episode, ok = rollout.run(env, row["vla/env_id"], kwargs, row["vla/seed"], json.loads(row["vla/options"]))
    env.close()
    stored = ds.episode(2)
    assert ok and episode.length == stored.length and episode.task == stored.task
    assert np.array_equal(episode.action, stored.action) and np.array_equal(episode.state, stored.state)
    diff = np.abs(episode.frames["observation.images.front"].astype(int) - stored.frames["observation.images.front"])
    assert diff.mean() < 6.0


def test_resume_extends_and_other_settings_are_refused(collected, tmp_path, capsys):
    root, args = collected
    before = LeRobotDataset(root)
    more = [a if a != "3" else "4" for a in args]
    assert main(more) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["episodes"] == 4 and report["new_episodes"] == 1
    after = LeRobotDataset(root)
    n = before.num_frames
    assert np.array_equal(after.columns["action"][:n], before.columns["action"])
    assert main(more + ["--seed", "7"]) == 2
    assert "was collected with other settings" in capsys.readouterr().err


def test_rerender_replays_at_another_size(collected, tmp_path):
    root, _ = collected
    out = tmp_path / "small"
    meta = rerender_dataset(root, out, image_size=24)
    src, dst = LeRobotDataset(root), LeRobotDataset(out)
    assert meta.total_episodes == src.num_episodes
    assert dst[0]["observation.images.front"].shape == (3, 24, 24)
    assert np.array_equal(dst.columns["action"], src.columns["action"])
    assert json.loads(dst.episode_info(0)["vla/env_kwargs"])["image_size"] == [24, 24]
    assert dst.episode_info(0)["vla/seed"] == src.episode_info(0)["vla/seed"]


def test_a_second_collection_in_one_process_uses_its_own_image_size(collected, tmp_path):
    root = tmp_path / "ds48"
    assert main(["collect", "--task", "reach", "--episodes", "1", "--out", str(root), "--image-size", "48"]) == 0
    item = LeRobotDataset(root)[0]
    assert item["observation.images.front"].shape == (3, 48, 48)


def test_perturbed_collection_records_clean_actions_and_still_replays(tmp_path, capsys):
    from vla.agent.train.labels import oracle_labels

    root = tmp_path / "dart"
    args = ["collect", "--task", "pick", "--episodes", "2", "--out", str(root), "--image-size", "32",
            "--noise", "0.01", "--json"]
    assert main(args) == 0
    ds = LeRobotDataset(root)
    row = ds.episode_info(0)
    assert row["vla/noise"] == 0.01
    lo, hi = int(row["dataset_from_index"]), int(row["dataset_to_index"])
    kwargs = json.loads(row["vla/env_kwargs"])
    env = rollout.make(row["vla/env_id"], kwargs)
    # replayed with its perturbation the episode is reproduced; without it the arm ends elsewhere
    replay, _ = rollout.run(env, row["vla/env_id"], kwargs, row["vla/seed"], {}, ds.columns["action"][lo:hi],
                            noise=0.01)
    assert np.array_equal(replay.state, ds.columns["observation.state"][lo:hi])
    plain, _ = rollout.run(env, row["vla/env_id"], kwargs, row["vla/seed"], {}, ds.columns["action"][lo:hi])
    assert not np.allclose(plain.state[-1, :3], replay.state[-1, :3], atol=1e-3)
    # the recorded actions are the oracle's clean ones: the label replay re-derives every one of them
    _, valid = oracle_labels(root, workers=1, progress=False)
    assert valid.all()
    env.close()
    capsys.readouterr()
    assert main(args[:-3] + ["--noise", "0.2"]) == 2
    assert "--noise must be between 0 and 0.05" in capsys.readouterr().err
    assert main([a if a != "0.01" else "0.02" for a in args]) == 2          # resuming with other noise
    assert "was collected with other settings" in capsys.readouterr().err


def test_on_policy_collection_keeps_failures_records_the_expert_and_replays(tmp_path, capsys):
    """`vla collect --policy`: the shipped policy drives, the on-policy expert's action is recorded, every
    episode is kept, and the stored executed actions replay it exactly (all oracle labels valid)."""
    from vla.agent.train.labels import oracle_labels

    root = tmp_path / "dagger"
    args = ["collect", "--task", "stack,chain", "--episodes", "2", "--out", str(root), "--image-size", "64",
            "--policy", "default", "--expert-share", "0.2", "--json"]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["new_episodes"] == 2 and report["discarded"] == 0 and 0 <= report["successes"] <= 2
    ds = LeRobotDataset(root)
    for ep in range(2):
        row = ds.episode_info(ep)
        lo, hi = int(row["dataset_from_index"]), int(row["dataset_to_index"])
        executed = np.asarray(json.loads(row["vla/executed"]), dtype=np.float32)
        assert row["vla/expert"] == "on_policy" and executed.shape == (hi - lo, 5)
        assert row["vla/success"] in (True, False)
        # what ran is mostly the policy's, not the recorded expert's
        assert not np.allclose(executed, ds.columns["action"][lo:hi], atol=1e-4)
    _, valid = oracle_labels(root, workers=1, progress=False)
    assert valid.all()
    assert main(args) == 0                                       # resuming: nothing to add
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["new_episodes"] == 0
    assert main(args[:-5] + ["--policy", str(tmp_path / "nope"), "--json"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["collect", "--task", "pick", "--episodes", "1", "--out", str(tmp_path / "x"),
                 "--expert-share", "0.5"]) == 2
    assert "--expert-share needs --policy" in capsys.readouterr().err
