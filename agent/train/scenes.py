"""Start-of-episode frames for grounding: freshly sampled scenes with the arm at home, labelled by the oracle.

In a demo only the first frame or two show the arm at home; after that it heads for the object, and a grounding
head can find the goal by following the arm (the end effector is where the object will be). Rollouts fail
there: the first frames decide which object the arm goes for. `data.reset_scenes: N` adds N such frames, one
per sampled scene of the dataset's split and tasks, to the training frames. They carry oracle labels (the
first waypoint and the first skill's goal) but no actions (all padded), so they train the grounding and the
waypoint head only, and `data.reset_share` of every batch is drawn from them. A share `data.reset_arm` of
them has the arm teleported to a random pose over the table instead (open or shut, as low as the objects): the
arm is then no guide to the goal, as in a rollout whose arm went the wrong way.

Cached next to the dataset (`meta/vla_reset_scenes_<N>[_arm<share>].npz`, no pickles), keyed by count, seed,
split, tasks, image size and arm share.
"""
from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from vla import VLAError
from vla.agent.train.labels import LABEL_VERSION

SCENE_SEED = 3_000_000   # far from demo and eval seeds


def _render(job: tuple) -> dict:
    """(task, split, image size, seeds, arm share) -> arrays of one worker's scenes."""
    from vla.agent.train.labels import current_label
    from vla.envs import make_env
    from vla.envs.robot import WS_HIGH, WS_LOW, YAW_LIMIT

    task, split, size, seeds, arm = job
    env = make_env(task, split, image_size=size)
    out = {"images": [], "state": [], "labels": [], "task": []}
    try:
        for seed in seeds:
            obs, _ = env.reset(seed=int(seed))
            inner = env.unwrapped
            inner.oracle_action()
            label = current_label(inner)
            if label is None:
                continue
            rng = np.random.default_rng(int(seed))
            if rng.random() < arm:
                pos = rng.uniform([0.3, -0.3, 0.04], [0.7, 0.3, 0.35]).clip(WS_LOW, WS_HIGH)
                inner.world.robot.teleport(pos, float(rng.uniform(-YAW_LIMIT, YAW_LIMIT) / 2), rng.random() < 0.3)
                obs = inner._obs()
            out["images"].append(obs["front"])
            out["state"].append(np.asarray(obs["state"], dtype=np.float32))
            out["labels"].append(label)
            out["task"].append(str(obs["instruction"]))
    finally:
        env.close()
    return out


def reset_scenes(root: str | Path, n: int, split: str, tasks: list[str], image_size: int, workers: int = 2,
                 progress: bool = True, arm: float = 0.0) -> dict:
    """-> {"images" (n, S, S, 3) uint8, "state" (n, 12), "labels" (n, 6), "task": [str]}, about n / len(tasks)
    scenes per task (seeds SCENE_SEED + i), a share `arm` with the arm at a random pose; cached under the
    dataset's meta/."""
    if n < 1 or not tasks:
        raise VLAError(f"data.reset_scenes must be a positive count with tasks to sample (got {n}).")
    key = {"n": n, "seed": SCENE_SEED, "split": split, "tasks": sorted(tasks), "image_size": image_size,
           "labels": LABEL_VERSION}
    if arm:
        key["arm"] = arm
    cache = Path(root) / "meta" / f"vla_reset_scenes_{n}{f'_arm{arm:g}' if arm else ''}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if json.loads(str(z["key"])) == key:
                return {"images": z["images"], "state": z["state"], "labels": z["labels"],
                        "task": [str(t) for t in z["task"]]}
    per = -(-n // len(tasks))
    jobs = [(task, split, image_size, list(range(SCENE_SEED + s, SCENE_SEED + min(s + 100, per))), arm)
            for task in sorted(tasks) for s in range(0, per, 100)]
    from vla.agent.train.progress import progress_bar

    parts = []
    with progress_bar(progress) as bar:
        job_bar = bar.add_task("rendering start-of-episode scenes", total=sum(len(job[3]) for job in jobs))
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 else None
        for job, part in zip(jobs, pool.map(_render, jobs) if pool else map(_render, jobs)):
            parts.append(part)
            bar.advance(job_bar, len(job[3]))
        if pool:
            pool.shutdown()
    out = {k: np.stack([x for p in parts for x in p[k]])[:n] for k in ("images", "state", "labels")}
    out["task"] = [t for p in parts for t in p["task"]][:n]
    try:
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, key=np.array(json.dumps(key)), task=np.array(out["task"]), **{k: out[k] for k in
                                                                                     ("images", "state", "labels")})
        tmp.replace(cache)
    except OSError:
        pass  # a read-only dataset: rendered again next time
    return out
