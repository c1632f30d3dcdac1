"""Oracle labels recomputed by replaying collected episodes, the mean-image input normalisation, and the
auxiliary waypoint loss they feed."""
from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import torch

from vla import VLAError
from vla.agent.cli import main
from vla.agent.data.dataset import LeRobotDataset
from vla.agent.train.labels import CACHE, oracle_labels
from vla.agent.train.loop import train_policy
from vla.models.policy.config import load_config
from vla.models.policy.policy import load_policy
from vla.models.vision import VisionConfig, VisionEncoder

from test_train_policy import synthetic_data


@pytest.fixture(scope="module")
def reach_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("labels") / "ds"
    assert main(["collect", "--task", "reach,pick", "--episodes", "3", "--out", str(root), "--image-size", "32"]) == 0
    return root


def test_labels_replay_every_frame_and_point_at_the_reached_object(reach_set):
    ds = LeRobotDataset(reach_set)
    labels, valid = oracle_labels(reach_set, workers=1, progress=False)
    assert labels.shape == (ds.num_frames, 6) and valid.all()
    for ep in (0, 2):                                      # reach episodes: the arm ends on the object it named
        info = ds.episode_info(ep)
        assert info["vla/task_name"] == "reach"
        lo, hi = int(info["dataset_from_index"]), int(info["dataset_to_index"])
        goal = labels[lo:hi, 4:6]
        assert np.allclose(goal, goal[0], atol=1e-6)       # the object does not move while it is reached
        end = np.array(json.loads(info["vla/scene_last"])["gripper"]["position"][:2])
        assert np.linalg.norm(goal[-1] - end) < 0.01
        objects = [o["position"][:2] for o in json.loads(info["vla/scene_first"])["objects"]]
        assert min(np.linalg.norm(np.array(o) - goal[0]) for o in objects) < 1e-3
    assert (reach_set / CACHE).is_file()
    again, valid2 = oracle_labels(reach_set, workers=1, progress=False)   # from the cache
    assert np.array_equal(again, labels) and np.array_equal(valid2, valid)


def test_an_episode_whose_actions_differ_from_the_oracle_is_masked(reach_set, tmp_path):
    import pyarrow.parquet as pq

    root = tmp_path / "ds"
    shutil.copytree(reach_set, root)
    (root / CACHE).unlink()
    path = next((root / "data").rglob("*.parquet"))
    table = pq.read_table(path)
    actions = np.stack(table.column("action").to_numpy(zero_copy_only=False)).astype(np.float32)
    ds = LeRobotDataset(reach_set)
    lo = int(ds.episode_info(1)["dataset_from_index"])
    actions[lo + 1, 0] += 0.01                              # one recorded action no longer the oracle's
    import pyarrow as pa

    col = pa.array(list(actions), type=table.schema.field("action").type)
    pq.write_table(table.set_column(table.schema.get_field_index("action"), "action", col), path)
    _, valid = oracle_labels(root, workers=1, progress=False)
    hi = int(ds.episode_info(1)["dataset_to_index"])
    assert not valid[lo:hi].any() and valid[:lo].all() and valid[hi:].all()


def test_a_cache_of_older_labels_is_recomputed(reach_set, tmp_path):
    """A label cache written before LABEL_VERSION (no version, or another one) is not served: it is replayed."""
    from vla.agent.train.labels import LABEL_VERSION

    root = tmp_path / "ds"
    shutil.copytree(reach_set, root)
    labels, valid = oracle_labels(root, workers=1, progress=False)
    np.savez(root / CACHE, labels=np.zeros_like(labels), valid=valid, episodes=np.array(3))   # a version-1 cache
    again, _ = oracle_labels(root, workers=1, progress=False)
    assert np.array_equal(again, labels)
    with np.load(root / CACHE) as z:
        assert int(z["version"]) == LABEL_VERSION


@pytest.mark.parametrize("task", ["place", "stack"])
def test_once_the_object_is_held_the_goal_is_where_it_goes(task):
    """The skill goal switches from the object to its destination at the grasp, not at the end of the lift."""
    from vla.agent.train.labels import current_label
    from vla.envs import make_env

    env = make_env(task, "seen", image_size=0)
    try:
        env.reset(seed=3)
        inner = env.unwrapped
        goal = inner.goal
        obj, dest = (goal.target, goal.bowl) if task == "place" else (goal.top, goal.base)
        start = inner.world.position(obj.oid)[:2]
        seen = []
        for _ in range(inner.max_steps):
            action = inner.oracle_action()
            label = current_label(inner)
            held = inner.world.holding() == obj.oid
            in_place = np.linalg.norm(inner.world.position(obj.oid)[:2] - start) < 0.01   # grasped, not carried yet
            seen.append((held, held and in_place, label[4:6].copy()))
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated or info["is_success"]:
                break
        assert info["is_success"]
        free = [g for held, _, g in seen if not held]
        assert free and all(np.linalg.norm(g - start) < 1e-3 for g in free[:3])   # first: the object
        dest_xy = inner.world.position(dest.oid)[:2]
        lift = [g for held, lifting, g in seen if lifting]
        assert len(lift) >= 3                                      # the grasp-and-lift frames exist ...
        assert all(np.linalg.norm(g - dest_xy) < 0.03 for g in lift)   # ... and already point at the destination
    finally:
        env.close()


def test_mean_image_normalisation_cancels_the_static_scene_and_survives_a_checkpoint(tmp_path):
    enc = VisionEncoder(VisionConfig(image_size=32, patch_size=16, width=32, layers=1, head_width=16,
                                     normalize="mean_image"))
    g = torch.Generator().manual_seed(0)
    scene = torch.randint(0, 256, (1, 32, 32, 3), dtype=torch.uint8, generator=g).expand(8, -1, -1, -1).clone()
    scene[:4, 10:14, 10:14] = 255                          # an object present in half of the frames
    enc.fit_mean_image(scene)
    x = enc.preprocess(scene)
    assert x[:, :, :8, :8].abs().max() < 1e-5              # the static part is zero
    assert x[:, :, 10:14, 10:14].abs().mean() > 0.5        # what changes is what is left
    assert float(x.pow(2).mean()) == pytest.approx(1.0, rel=1e-3)   # unit residual variance
    with pytest.raises(Exception, match="normalize"):
        VisionEncoder(VisionConfig(image_size=32, patch_size=16, width=32, layers=1, head_width=16, normalize="x"))


def _with_labels(data):
    g = torch.Generator().manual_seed(1)
    labels = torch.rand(len(data), 6, generator=g) * 0.2 + 0.4
    valid = torch.ones(len(data), dtype=torch.bool)
    valid[::5] = False
    data.attach_oracle_labels(labels, valid)
    return data


def test_aux_waypoint_training_logs_goal_error_and_round_trips(tmp_path):
    cfg = load_config("debug", ["train.steps=2", "train.save_every=2", "model.aux_waypoint=1.0",
                                "model.vision.normalize=mean_image"])
    data = _with_labels(synthetic_data())
    assert set(data.stats["waypoint"]) == {"mean", "std"}
    final = train_policy(cfg, data, tmp_path / "run", progress=False)
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert float(rows[-1]["goal_err_cm"]) > 0 and float(rows[-1]["aux_loss"]) > 0
    policy = load_policy(final)
    mean_image = policy.net.vision.mean_image
    assert mean_image.abs().sum() > 0                      # fitted from the training images, saved, reloaded
    expected = data.images.permute(0, 3, 1, 2).float().mean(0) / 255
    assert torch.allclose(mean_image[0], expected, atol=1e-4)
    obs = {"front": data.images[0].numpy(), "state": data.state[0].numpy(), "instruction": data.tasks[0]}
    assert policy.predict_chunk(obs).shape == (cfg.model.action.horizon, 5)


def test_labels_must_cover_the_dataset():
    data = synthetic_data()
    with pytest.raises(Exception, match="frames"):
        data.attach_oracle_labels(torch.zeros(3, 6), torch.ones(3, dtype=torch.bool))
    with pytest.raises(Exception, match="aux_waypoint=0"):
        data.attach_oracle_labels(torch.zeros(len(data), 6), torch.zeros(len(data), dtype=torch.bool))


def test_goal_pixels_follow_the_random_shift():
    from vla.envs.camera import project_front

    data = synthetic_data(n=6)
    labels = torch.zeros(6, 6)
    labels[:, 4], labels[:, 5] = torch.linspace(0.4, 0.6, 6), torch.linspace(-0.2, 0.2, 6)
    data.images.zero_()
    data.attach_oracle_labels(labels, torch.ones(6, dtype=torch.bool))
    expected = project_front(np.c_[labels[:, 4:6].numpy(), np.full(6, 0.02)], 32, 32)
    assert np.allclose(data.goal_pixel.numpy(), expected, atol=1e-4)
    for i, (u, v) in enumerate(data.goal_pixel.tolist()):
        data.images[i, int(v), int(u)] = 255                       # mark the goal's pixel
    batch = data.batch(torch.arange(6), shift=3, generator=torch.Generator().manual_seed(0))
    moved = 0
    for i, (u, v) in enumerate(batch["oracle.pixel"].tolist()):
        assert batch["observation.images.front"][i, int(v), int(u)].tolist() == [255, 255, 255]
        moved += (int(u), int(v)) != tuple(int(x) for x in data.goal_pixel[i].tolist())
    assert moved > 0


def test_grounding_head_learns_where_the_goal_is(tmp_path):
    cfg = load_config("debug", ["train.steps=40", "train.save_every=40", "train.lr=0.003", "data.shift=0",
                                "model.grounding=true", "model.aux_waypoint=0.5", "model.word_dropout=0.0"])
    data = synthetic_data(n=16)
    labels = torch.zeros(16, 6)
    labels[:, 4], labels[:, 5] = 0.5, torch.linspace(-0.25, 0.25, 16)
    data.attach_oracle_labels(labels, torch.ones(16, dtype=torch.bool))
    final = train_policy(cfg, data, tmp_path / "run", progress=False)
    rows = list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))
    assert float(rows[-1]["ground_loss"]) < 0.5 * float(rows[0]["ground_loss"])
    net = load_policy(final).net
    assert net.ground is not None and net.prefix(data.images[:2], data.state[:2], *net.encode_text(data.tasks[:2], "cpu"))[0].shape[1] \
        == net.n_vis + 2 + net.encode_text(data.tasks[:2], "cpu")[0].shape[1]


def test_several_datasets_train_together_with_their_own_labels(reach_set, tmp_path, capsys):
    """data.root=a,b: the frames of both datasets, each labelled from its own replay, in one run."""
    other = tmp_path / "push"
    assert main(["collect", "--task", "push", "--episodes", "1", "--out", str(other), "--image-size", "32"]) == 0
    a, b = LeRobotDataset(reach_set, action_horizon=1), LeRobotDataset(other, action_horizon=1)
    capsys.readouterr()
    args = ["train", "policy", "--config", "debug", f"data.root={reach_set},{other}", "train.steps=1",
            "model.aux_waypoint=1.0", "--out", str(tmp_path / "run"), "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames"] == a.num_frames + b.num_frames
    labels_b, valid_b = oracle_labels(other, workers=1, progress=False)
    assert valid_b.all() and labels_b.shape == (b.num_frames, 6)
    from vla.agent.train.data import load_training_sets

    data = load_training_sets([reach_set, other], horizon=4, progress=False)
    assert data.tasks[int(data.task_index[-1])] == b[b.num_frames - 1]["task"]   # tasks re-indexed, in order
    assert torch.equal(data.state[a.num_frames:], torch.as_tensor(b.columns["observation.state"]))
    # room reserved for the start-of-episode scenes: they land in the same buffer, nothing is copied twice
    roomy = load_training_sets([reach_set, other], horizon=4, progress=False, reserve=3)
    assert torch.equal(roomy.images, data.images) and len(roomy) == len(data)
    labels, valid = (np.concatenate(p) for p in zip(oracle_labels(reach_set, workers=1, progress=False),
                                                     (labels_b, valid_b)))
    roomy.attach_oracle_labels(labels, valid)
    scenes = {"images": np.full((3, 32, 32, 3), 7, np.uint8), "labels": labels[:3], "task": ["pick up it"] * 3,
              "state": np.zeros((3, roomy.state.shape[1]), np.float32)}
    before = roomy.images.clone()
    roomy.attach_scenes(scenes)
    assert roomy.images.data_ptr() == roomy.buffer.data_ptr() and len(roomy) == len(data) + 3
    assert torch.equal(roomy.images[:len(data)], before) and (roomy.images[len(data):] == 7).all()
    assert main(args[:4] + [f"data.root={reach_set},{tmp_path / 'none'}"] + args[5:]) == 2
    assert "does not exist" in capsys.readouterr().err
    bigger = tmp_path / "reach48"
    assert main(["collect", "--task", "reach", "--episodes", "1", "--out", str(bigger), "--image-size", "48"]) == 0
    with pytest.raises(VLAError, match="another observation.images.front shape"):
        load_training_sets([reach_set, bigger], horizon=4, progress=False)


class _ExpertDriver:
    """Drives an env with its on-policy expert: a real controller standing where a policy would."""

    def __init__(self, env):
        self.env = env

    def reset(self):
        pass

    def select_action(self, obs):
        return self.env.unwrapped.oracle_action(on_policy=True)


def test_a_frame_without_an_oracle_plan_is_masked_alone():
    """put_all's blocks settle after the last release with nothing left to plan: those frames lose their label,
    the rest of the episode keeps its own (a diverging replay still masks everything)."""
    from vla.agent.data import rollout
    from vla.agent.train.labels import _replay, current_label

    kwargs = rollout.env_kwargs("seen", (32, 32), False)
    env = rollout.make("vla/PutAll-v0", kwargs)
    planless = []
    env.reset(seed=6)
    for t in range(env.unwrapped.max_steps):            # which frames have no plan, asked directly
        env.unwrapped.oracle_action(on_policy=True)
        if current_label(env.unwrapped) is None:
            planless.append(t)
        _, _, terminated, truncated, _ = env.step(env.unwrapped.oracle_action(on_policy=True))
        if terminated or truncated:
            break
    episode, ok = rollout.run(env, "vla/PutAll-v0", kwargs, 6, None, driver=_ExpertDriver(env))
    env.close()
    assert ok and planless and len(planless) < episode.length
    executed = np.asarray(json.loads(episode.extras["executed"]), dtype=np.float32)
    job = ("vla/PutAll-v0", kwargs, 6, {}, episode.action, 0.0, executed)
    labels, valid = _replay(job)
    assert sorted(np.flatnonzero(~valid).tolist()) == planless and valid.sum() == episode.length - len(planless)
    bad = episode.action.copy()
    bad[3, 0] += 0.01
    assert not _replay(("vla/PutAll-v0", kwargs, 6, {}, bad, 0.0, executed))[1].any()
