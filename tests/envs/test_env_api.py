"""Every registered env passes Gymnasium's checker, is deterministic, vectorises, and rejects bad input."""
import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from vla import VLAError
from vla.envs import ENV_IDS, TASKS, make_env


def test_registered_ids_are_the_task_classes_and_import_loads_no_simulator():
    import subprocess
    import sys

    assert ENV_IDS == {name: cls.ENV_ID for name, cls in TASKS.items()}
    assert list(ENV_IDS) == list(TASKS)
    # the plain modules (vocabulary, camera geometry) import without PyBullet, as on a GPU box without its wheel
    code = ("import sys; sys.modules['pybullet'] = None; import gymnasium; from vla.envs.vocab import COLORS; "
            "from vla.envs.camera import unproject_front; import vla.envs; assert 'vla/Pick-v0' in gymnasium.registry; "
            "print(len(COLORS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    out = subprocess.run([sys.executable, "-c", "import sys; sys.modules['pybullet'] = None; "
                          "from vla.envs import TASKS"], capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "pybullet" in out.stderr              # the task classes do need it


@pytest.mark.parametrize("env_id", sorted(ENV_IDS.values()))
def test_check_env_passes(env_id):
    env = gym.make(env_id, image_size=32, depth=True, segmentation=True, wrist=True, render_mode="rgb_array")
    check_env(env.unwrapped)
    env.reset(seed=0)
    assert env.render().shape == (32, 32, 3)
    env.close()


@pytest.mark.parametrize("task", sorted(TASKS))
def test_same_seed_gives_identical_oracle_episode(task):
    envs = [make_env(task, image_size=32) for _ in range(2)]
    runs = []
    for env in envs:
        obs, info = env.reset(seed=7)
        trace = [(obs, 0.0, info)]
        for _ in range(env.max_steps):  # a whole oracle episode
            obs, reward, terminated, truncated, info = env.step(env.oracle_action())
            trace.append((obs, reward, info))
            if terminated or truncated:
                break
        runs.append(trace)
    assert len(runs[0]) == len(runs[1]) and runs[0][-1][2]["is_success"]
    for (o1, r1, i1), (o2, r2, i2) in zip(*runs):
        assert o1["instruction"] == o2["instruction"] and r1 == r2 and i1 == i2
        assert np.array_equal(o1["front"], o2["front"]) and np.array_equal(o1["state"], o2["state"])


def test_reset_replays_exactly_after_other_episodes():
    env = make_env("place", image_size=32)
    first, _ = env.reset(seed=3)
    env.reset(seed=4)
    for _ in range(5):
        env.step(env.action_space.sample())
    again, _ = env.reset(seed=3)
    assert np.array_equal(first["front"], again["front"]) and np.array_equal(first["state"], again["state"])


def test_observation_layout_matches_interface():
    env = make_env("pick", image_size=(48, 32), wrist=True, depth=True, segmentation=True)
    obs, info = env.reset(seed=0)
    assert obs["front"].shape == (32, 48, 3) and obs["front"].dtype == np.uint8
    assert obs["wrist"].shape == (32, 48, 3)
    assert obs["front_depth"].dtype == np.float32 and 0.1 < float(obs["front_depth"].min()) < 3.0
    assert obs["state"].shape == (12,) and obs["state"].dtype == np.float32
    ids = {o["id"] for o in env.scene_annotation()["objects"]}
    assert set(np.unique(obs["front_seg"])) - {0} <= ids and len(set(np.unique(obs["front_seg"])) - {0}) >= 1
    assert env.observation_space.contains(obs)
    assert set(info) >= {"is_success", "task", "instruction", "split", "step"}
    json.dumps(info)


def test_scene_annotation_is_json_and_consistent():
    env = make_env("place", image_size=0)
    env.reset(seed=1)
    ann = json.loads(json.dumps(env.scene_annotation()))
    shapes = {o["shape"] for o in ann["objects"]}
    assert "bowl" in shapes and shapes <= {"block", "bowl", "cylinder"}
    assert ann["gripper"]["holding"] is None and ann["gripper"]["opening"] > 0.07
    for o in ann["objects"]:
        assert (o["size"] in ("small", "large")) == (o["shape"] == "block")


def test_vector_envs_sync_and_async():
    for vec in (gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv):
        envs = vec([lambda: gym.make("vla/Reach-v0", image_size=16) for _ in range(2)])
        obs, _ = envs.reset(seed=[0, 1])
        assert obs["front"].shape == (2, 16, 16, 3)
        obs, reward, *_ = envs.step(np.zeros((2, 5), dtype=np.float32))
        assert reward.shape == (2,)
        envs.close()


def test_two_envs_in_one_process_do_not_interfere():
    solo = make_env("stack", image_size=0)
    solo.reset(seed=5)
    expected = [solo.step(solo.oracle_action())[0]["state"] for _ in range(6)]
    a, b = make_env("stack", image_size=0), make_env("push", image_size=0)
    a.reset(seed=5)
    b.reset(seed=9)
    for want in expected:
        b.step(b.oracle_action())
        assert np.array_equal(a.step(a.oracle_action())[0]["state"], want)


@pytest.mark.parametrize("bad", [[np.nan, 0, 0, 0, 0], [0, 0, np.inf, 0, 1], [0, 0, 0]])
def test_bad_actions_raise_one_sentence(bad):
    env = make_env("reach", image_size=0)
    env.reset(seed=0)
    with pytest.raises(VLAError, match="finite numbers"):
        env.step(np.array(bad, dtype=np.float32))


def test_actions_are_clipped_to_safe_bounds():
    env = make_env("reach", image_size=0)
    obs, _ = env.reset(seed=0)
    obs2, *_ = env.step(np.array([5.0, 0, 0, 0, 0], dtype=np.float32))
    assert obs2["state"][0] - obs["state"][0] < 0.055


def test_bad_constructor_arguments():
    with pytest.raises(VLAError, match="allowed: reach"):
        make_env("juggle")
    with pytest.raises(VLAError, match="unknown split"):
        make_env("reach", split="unseen_planets")
    with pytest.raises(VLAError, match="out of range"):
        make_env("reach", image_size=1000)


def test_joint_control_mode_with_oracle():
    env = make_env("pick", image_size=0, control="joint")
    env.reset(seed=2)
    assert env.action_space.shape == (8,)
    for _ in range(env.max_steps):
        _, _, terminated, truncated, info = env.step(env.oracle_action())
        if terminated or truncated:
            break
    assert info["is_success"]


def test_cached_table_background_matches_full_render():
    from vla.envs.world import set_table_visible

    env = make_env("stack", image_size=(64, 48), depth=True, segmentation=True)
    env.reset(seed=1)
    for _ in range(8):
        obs, *_ = env.step(env.oracle_action())
    env.world.table_in_background = False
    set_table_visible(env.world, True)
    env.camera.background = None
    full = env._obs()
    assert (full["front"] != obs["front"]).any(-1).mean() < 0.005
    assert np.array_equal(full["front_seg"], obs["front_seg"])


def test_ik_tracks_targets_to_under_a_millimetre():
    from vla.agent.commands.bench_sim import measure_ik

    assert measure_ik(targets=6) < 1.0
