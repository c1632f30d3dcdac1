"""The training runner: a `debug` run trains, is stopped after 2 steps, resumes, and ends where an
uninterrupted run ends; checkpoints are complete directories and metrics land in CSV."""
from __future__ import annotations

import csv

import pytest
import torch

from vla import VLAError
from vla.agent.train.data import TrainingData, random_shift
from vla.agent.train.loop import lr_factor, train_policy
from vla.agent.train.state import list_checkpoints
from vla.models.policy.config import load_config
from vla.models.policy.policy import load_policy

TASKS = ["pick up the red block", "put the blue block in the green bowl", "push the yellow block to the left"]


def synthetic_data(n: int = 24, horizon: int = 2) -> TrainingData:
    g = torch.Generator().manual_seed(0)
    action = torch.rand(n, horizon, 5, generator=g) * 0.1 - 0.05
    action[..., 4] = (torch.rand(n, horizon, generator=g) > 0.5).float()
    stats = {"action": {"q01": [-0.05] * 4 + [0.0], "q99": [0.05] * 4 + [1.0]},
             "state": {"mean": [0.0] * 12, "std": [1.0] * 12}}
    return TrainingData(torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g),
                        torch.randn(n, 12, generator=g), action, torch.zeros(n, horizon, dtype=torch.bool),
                        torch.arange(n) % len(TASKS), TASKS, stats)


def _weights(path):
    return {k: v.clone() for k, v in load_policy(path).net.state_dict().items()}


@pytest.mark.parametrize("extra", [[], ["model.ground_colors=true", "data.color_aug=0.5"]], ids=["plain", "recolour"])
def test_debug_run_stopped_and_resumed_matches_uninterrupted(tmp_path, extra):
    cfg = load_config("debug", ["train.steps=4", "train.save_every=2", *extra])
    data = synthetic_data()
    straight = train_policy(cfg, data, tmp_path / "straight", progress=False)
    stopped = train_policy(cfg, data, tmp_path / "resumed", stop_at=2, progress=False)
    assert stopped.name == "step_0000002"
    resumed = train_policy(cfg, data, tmp_path / "resumed", progress=False)
    assert resumed.name == "step_0000004"
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    first = _weights(stopped)
    assert any(not torch.equal(first[k], a[k]) for k in a), "training must change the weights"
    rows = list(csv.DictReader((tmp_path / "straight" / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["loss"]) > 0 for r in rows)
    assert [p.name for p in list_checkpoints(tmp_path / "straight")] == ["step_0000002", "step_0000004"]


def test_resume_takes_training_only_settings_from_the_command_and_the_architecture_from_the_checkpoint(tmp_path):
    data = synthetic_data()
    train_policy(load_config("debug", ["train.steps=2", "train.save_every=2"]), data, tmp_path, progress=False)
    longer = load_config("debug", ["train.steps=4", "train.save_every=2", "model.word_dropout=0.3",
                                   "model.llm.layers=3"])
    final = load_policy(train_policy(longer, data, tmp_path, progress=False))
    assert final.cfg.train.steps == 4 and final.cfg.model.word_dropout == 0.3
    assert final.cfg.model.llm.layers == load_config("debug").model.llm.layers      # not 3: the weights decide


def test_init_fine_tunes_from_a_checkpoint_with_a_fresh_schedule(tmp_path):
    data = synthetic_data()
    base = train_policy(load_config("debug", ["train.steps=2", "train.save_every=2"]), data, tmp_path / "base",
                        progress=False)
    start = _weights(base)
    fine = load_config("debug", [f"train.init={base}", "train.steps=2", "train.save_every=1",
                                 "model.llm.layers=3", "train.lr=0.01"])
    first = train_policy(fine, data, tmp_path / "fine", stop_at=1, progress=False)
    assert first.name == "step_0000001"               # a new run: step 0 is the init's weights, not its step 2
    after = load_policy(first)
    assert after.cfg.model.llm.layers == load_config("debug").model.llm.layers      # the init's architecture
    assert after.cfg.train.init == str(base)
    moved = _weights(first)
    assert moved.keys() == start.keys()
    # one step of lr 0.01 from the init moves the weights a little, not to a fresh random initialisation
    drift = max(float((moved[k] - start[k]).abs().max()) for k in start if start[k].is_floating_point())
    assert 0 < drift < 0.05


def test_init_rejects_a_checkpoint_for_another_action_space(tmp_path):
    data = synthetic_data()
    base = train_policy(load_config("debug", ["train.steps=1"]), data, tmp_path / "base", progress=False)
    six = synthetic_data()
    six.stats["action"] = {"q01": [-0.05] * 5 + [0.0], "q99": [0.05] * 5 + [1.0]}
    with pytest.raises(VLAError, match="acts in 5 dimensions but the dataset's actions have 6"):
        train_policy(load_config("debug", [f"train.init={base}"]), six, tmp_path / "fine", progress=False)


def test_loss_decreases_when_overfitting_a_small_batch(tmp_path):
    cfg = load_config("debug", ["train.steps=30", "train.save_every=30", "train.lr=0.003", "data.shift=0",
                                "model.word_dropout=0.0"])
    data = synthetic_data(n=8)
    train_policy(cfg, data, tmp_path, progress=False)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert float(rows[-1]["loss"]) < 0.8 * float(rows[0]["loss"])


def test_lr_schedule_warms_up_then_decays_to_floor():
    tc = load_config("debug", ["train.steps=100", "train.warmup_steps=10", "train.min_lr_ratio=0.1"]).train
    assert lr_factor(0, tc) == 0.1 and lr_factor(9, tc) == 1.0
    assert lr_factor(50, tc) < 1.0 and abs(lr_factor(100, tc) - 0.1) < 1e-9


def test_batches_are_a_function_of_step_and_ranks_are_disjoint():
    data = synthetic_data(n=24)
    one = data.indices(seed=3, step=5, micro=0, accum=1, batch=4)
    assert torch.equal(one, data.indices(seed=3, step=5, micro=0, accum=1, batch=4))
    r0 = data.indices(3, 5, 0, 1, 4, rank=0, world=2)
    r1 = data.indices(3, 5, 0, 1, 4, rank=1, world=2)
    assert not set(r0.tolist()) & set(r1.tolist())
    img = data.images[:4]
    shifted = random_shift(img, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == img.shape and shifted.dtype == torch.uint8


def test_train_cli_reports_bad_config_in_one_line(capsys, tmp_path):
    from vla.agent.cli import main

    assert main(["train", "policy", "--config", "debugg"]) == 2
    assert "unknown policy preset 'debugg'" in capsys.readouterr().err
    assert main(["train", "policy", "--config", "debug", "model.llm.hiden_size=8"]) == 2
    assert "Did you mean 'hidden_size'" in capsys.readouterr().err
    assert main(["train", "policy", "--config", "debug", f"data.root={tmp_path / 'none'}"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_init_can_add_colour_maps_to_a_checkpoint_without_them(tmp_path):
    from vla.agent.train.loop import _init_from

    data = synthetic_data()
    ground = ["model.grounding=true", "model.ground_colors=true"]
    base = train_policy(load_config("debug", ["train.steps=1", *ground]), data, tmp_path / "base", progress=False)
    fine = load_config("debug", [f"train.init={base}", "train.steps=1", "model.ground_color_maps=2", *ground])
    grown = _init_from(fine, data, torch.device("cpu"))[0]
    assert grown.cfg.model.ground_color_maps == 2 and grown.net.ground.color_patch is not None
    # the added layers start at zero: the grown network computes exactly what the checkpoint did
    before, b = load_policy(base), data.batch(torch.arange(4))
    for policy in (before, grown):
        policy.net.eval()
    with torch.no_grad():
        ids, mask = before.net.encode_text(b["task"], "cpu")
        outs = [p.net.prefix(b["observation.images.front"], b["observation.state"], ids, mask)[0]
                for p in (before, grown)]
    assert torch.equal(outs[0], outs[1])
    tuned = train_policy(fine, data, tmp_path / "fine", progress=False)
    done = load_policy(tuned)
    assert done.cfg.model.ground_color_maps == 2 and done.net.ground.color_patch.weight.abs().sum() > 0
    other = load_config("debug", [f"train.init={tuned}", "model.ground_color_maps=3", *ground])
    with pytest.raises(VLAError, match="already has ground_color_maps at another value"):
        train_policy(other, data, tmp_path / "other", progress=False)


def test_start_of_episode_scenes_are_labelled_cached_and_mixed_into_batches(tmp_path):
    import numpy as np

    from vla.agent.train.scenes import SCENE_SEED, reset_scenes
    from vla.envs import make_env

    (tmp_path / "meta").mkdir()
    scenes = reset_scenes(tmp_path, 4, "seen", ["reach", "place"], 32, workers=1, progress=False)
    assert scenes["images"].shape == (4, 32, 32, 3) and scenes["labels"].shape == (4, 6) and len(scenes["task"]) == 4
    cache = tmp_path / "meta" / "vla_reset_scenes_4.npz"
    stamp = cache.stat().st_mtime_ns
    again = reset_scenes(tmp_path, 4, "seen", ["reach", "place"], 32, workers=1, progress=False)
    assert cache.stat().st_mtime_ns == stamp and np.array_equal(again["labels"], scenes["labels"])
    # the first skill's goal is the named object, and the frame is the env's own first observation
    env = make_env("place", "seen", image_size=32)
    obs, _ = env.reset(seed=SCENE_SEED)
    target = env.unwrapped.world.position(env.unwrapped.goal.target.oid)
    env.close()
    assert np.array_equal(scenes["images"][0], obs["front"]) and scenes["task"][0] == obs["instruction"]
    assert np.linalg.norm(scenes["labels"][0, 4:6] - target[:2]) < 0.02
    # with the arm teleported the scene and its goal are the same, the arm (and the state) elsewhere
    home = reset_scenes(tmp_path, 2, "seen", ["reach"], 32, workers=1, progress=False)
    moved = reset_scenes(tmp_path, 2, "seen", ["reach"], 32, workers=1, progress=False, arm=1.0)
    assert (tmp_path / "meta" / "vla_reset_scenes_2_arm1.npz").is_file()
    assert np.array_equal(home["labels"], moved["labels"]) and home["task"] == moved["task"]
    assert (np.linalg.norm(home["state"][:, :3] - moved["state"][:, :3], axis=1) > 0.02).all()
    assert not np.array_equal(home["images"], moved["images"])

    data = synthetic_data(n=24)
    data.attach_oracle_labels(torch.rand(24, 6) * 0.2 + 0.4, torch.ones(24, dtype=torch.bool))
    with pytest.raises(VLAError, match="images"):
        data.attach_scenes({**scenes, "images": np.zeros((4, 16, 16, 3), np.uint8)})
    data.attach_scenes(scenes)
    assert len(data) == 28 and data.n_scenes == 4 and data.tasks[-1] in scenes["task"]
    idx = data.indices(seed=0, step=3, micro=0, accum=1, batch=4, scene_share=0.5)
    assert torch.equal(idx, data.indices(0, 3, 0, 1, 4, scene_share=0.5))
    assert (idx < 24).sum() == 2 and (idx >= 24).sum() == 2                           # half from the scenes
    b = data.batch(idx)
    assert b["action_is_pad"][2:].all() and not b["action_is_pad"][:2].any()
    assert b["oracle.valid"][2:].all() and torch.allclose(b["oracle.waypoint"][2:], torch.as_tensor(
        scenes["labels"])[idx[2:] - 24])
    cfg = load_config("debug", ["train.steps=2", "model.grounding=true", "model.aux_waypoint=1.0",
                                "data.reset_scenes=4", "data.reset_share=0.5"])
    final = train_policy(cfg, data, tmp_path / "run", progress=False)
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert final.name == "step_0000002" and all(np.isfinite(float(r["loss"])) for r in rows)
    with pytest.raises(VLAError, match="reset_scenes trains the grounding"):
        load_config("debug", ["data.reset_scenes=4"])
