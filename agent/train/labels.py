"""Privileged training labels recomputed from the simulator: where the scripted expert was heading, per frame.

Every episode `vla collect` writes records how to replay it (env id, env kwargs, seed, options). Replaying it in
a state-only env (no rendering, so ~3x faster than collecting) while asking the oracle for its action at each
step recovers the oracle's intent at every frame: the waypoint it was steering to (x, y, z, yaw) and the end
point of its current skill (x, y) -- where the named object or the bowl is. The policy learns to predict them
as an auxiliary target (`model.aux_waypoint`), which makes the vision tower localise the object the
instruction names. A replayed frame whose oracle action differs from the recorded one marks its episode
invalid (label mask false); episodes without replay info (e.g. converted from ROS bags) are masked too. A frame
where the oracle has no plan (the blocks of put_all settling after the last release) is masked alone.
On-policy episodes (`vla collect --policy`) replay their stored executed actions and ask the on-policy expert.

Labels are cached next to the dataset (`meta/vla_oracle_labels.npz`, no pickles), keyed by the dataset's
frame count and episode count.
"""
from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

GOAL_Z = 0.02   # height at which a skill goal (an object or a bowl on the table) is projected into the image
LABEL_NAMES = ("wp_x", "wp_y", "wp_z", "wp_yaw", "goal_x", "goal_y")
CACHE = "meta/vla_oracle_labels.npz"
LABEL_VERSION = 2   # bumped when what a label means changes: older caches are recomputed


def _replay(job: tuple) -> tuple[np.ndarray, np.ndarray]:
    """One episode -> (labels (T, 6) float32, valid (T,) bool): no frame is valid unless the replay reproduced
    every recorded action, and a frame without an oracle plan is not."""
    from vla.agent.data.rollout import Perturbation

    env_id, kwargs, seed, options, actions, *rest = job
    perturb = Perturbation(seed, rest[0] if rest else 0.0)
    executed = rest[1] if len(rest) > 1 else None  # on-policy episodes: what was executed
    kwargs = {**kwargs, "image_size": 0, "wrist": False}
    env = _env(env_id, kwargs)
    env.reset(seed=seed, options=options or None)
    inner = env.unwrapped
    out = np.zeros((len(actions), len(LABEL_NAMES)), dtype=np.float32)
    valid = np.zeros(len(actions), dtype=bool)
    if executed is not None and len(executed) != len(actions):
        return out, valid
    ok = True
    for t, action in enumerate(actions):
        expert = inner.oracle_action(on_policy=executed is not None)
        ok = ok and bool(np.allclose(expert, action, atol=1e-5))
        label = current_label(inner)
        if label is not None:
            out[t], valid[t] = label, True
        env.step(perturb(action) if executed is None else executed[t])
    return out, valid & ok


def current_label(inner) -> np.ndarray | None:
    """The oracle's intent now, after `inner.oracle_action()`: (waypoint x, y, z, yaw, skill goal x, y), or None
    without a plan.

    Once the arm holds an object and what is left of its plan is closing and lifting (the tail of a pick), the
    skill goal is already the end of the plan that follows, where the held object goes: a bowl, a block to
    stack on. A pick plan ends over the object it lifted, so the goal would otherwise switch only when the arm
    reaches the oracle's exact lift height, which a policy's own lift seldom does; "holding or not" is plain in
    the image and the gripper's opening (LABEL_VERSION 2)."""
    plan, index = inner.oracle.plan, inner.oracle.index
    if not plan:
        return None
    wp, goal = plan[min(index, len(plan) - 1)], plan[-1].pos[:2]
    if inner.world.holding() is not None and all(w.close for w in plan[index:]):
        after = inner.oracle.planner(inner.world)
        if after:
            goal = after[-1].pos[:2]
    return np.array([*wp.pos, wp.yaw, *goal], dtype=np.float32)


def goal_pixels(labels: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, 6) labels -> (N, 2) the skill goals (on the table, at GOAL_Z) in the front image (column, row)."""
    from vla.envs.camera import project_front

    goal = np.concatenate([labels[:, 4:6], np.full((len(labels), 1), GOAL_Z, dtype=labels.dtype)], 1)
    return project_front(goal, width, height)


_ENVS: dict[str, object] = {}


def _env(env_id: str, kwargs: dict):
    from vla.agent.data import rollout

    key = f"{env_id} {json.dumps(kwargs, sort_keys=True)}"
    if key not in _ENVS:
        _ENVS[key] = rollout.make(env_id, kwargs)
    return _ENVS[key]


def oracle_labels(root: str | Path, workers: int = 2, max_episodes: int | None = None,
                  progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """-> labels (N, 6) float32 and valid (N,) bool for the dataset's frames (or its first `max_episodes`)."""
    from vla.agent.data import LeRobotDataset

    root = Path(root)
    ds = LeRobotDataset(root, action_horizon=1)
    n_eps = ds.num_episodes if max_episodes is None else min(max_episodes, ds.num_episodes)
    cache = root / CACHE
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            version = int(z["version"]) if "version" in z.files else 1
            if version == LABEL_VERSION and int(z["episodes"]) == ds.num_episodes and len(z["labels"]) == ds.num_frames:
                n = int(ds.episode_info(n_eps - 1)["dataset_to_index"]) if n_eps else 0
                return z["labels"][:n], z["valid"][:n]
    jobs, spans = [], []
    actions = ds.columns["action"]
    for ep in range(ds.num_episodes):
        info = ds.episode_info(ep)
        lo, hi = int(info["dataset_from_index"]), int(info["dataset_to_index"])
        spans.append((lo, hi))
        try:
            extras = {k: info[f"vla/{k}"] for k in ("env_id", "env_kwargs", "seed", "options")}
            kw = extras["env_kwargs"]
            opts = extras["options"]
            executed = info.get("vla/executed") if info.get("vla/expert") == "on_policy" else None
            jobs.append((extras["env_id"], json.loads(kw) if isinstance(kw, str) else kw, int(extras["seed"]),
                         json.loads(opts) if isinstance(opts, str) else (opts or {}), np.asarray(actions[lo:hi]),
                         float(info.get("vla/noise") or 0.0),
                         None if executed is None else np.asarray(json.loads(executed), dtype=np.float32)))
        except (KeyError, TypeError, ValueError):
            jobs.append(None)
    labels = np.zeros((ds.num_frames, len(LABEL_NAMES)), dtype=np.float32)
    valid = np.zeros(ds.num_frames, dtype=bool)
    todo = [(i, j) for i, j in enumerate(jobs) if j is not None]
    from vla.agent.train.progress import progress_bar

    with progress_bar(progress) as bar:
        task = bar.add_task("replaying episodes for oracle labels", total=len(todo))
        # spawn, not fork: the parent holds pyarrow's jemalloc and video decoder threads, which a fork can deadlock
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 else None
        results = pool.map(_replay, [j for _, j in todo], chunksize=8) if pool else map(_replay, [j for _, j in todo])
        for (i, _), (lab, mask) in zip(todo, results):
            lo, hi = spans[i]
            labels[lo:hi], valid[lo:hi] = lab, mask
            bar.advance(task)
        if pool:
            pool.shutdown()
    try:
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, labels=labels, valid=valid, episodes=np.array(ds.num_episodes), version=np.array(LABEL_VERSION))
        tmp.replace(cache)
    except OSError:
        pass  # a read-only dataset: labels are recomputed next time
    n = spans[n_eps - 1][1] if n_eps else 0
    return labels[:n], valid[:n]
