"""Frames for the policy's goal pointer (`model.goal_pointer`, vla.models.goal): oracle rollouts of the tasks with
the oracle's intent at every kept frame.

Each episode resets a task with a seed and steps the scripted oracle (with DART noise on the executed actions
when `noise` > 0, so the frames include states off the oracle's path). Every `every`-th frame keeps the front
image, the proprio state, the instruction, the oracle's label (`labels.current_label`: waypoint and skill goal),
the id of the object the task moves (the "mover": a push's goal is a point beside it) and the scene
annotation. A set is one `.npz` under data/goal/, rendered on first use. Its seeds (3,000,000 + i for training,
4,000,000 + i held out) are apart from `vla eval`'s (1,000,000 + i); `vla collect` hashes its seeds over 2^32,
so a demo could share a layout with a frame by chance, never an episode of the evaluation.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vla import ROOT
from vla.agent.perception.scenes import TASKS

DATA_DIR = ROOT / "data" / "goal"


@dataclass(frozen=True)
class GoalSet:
    name: str
    split: str          # env split
    first_seed: int
    episodes: int       # per task
    every: int          # keep every n-th frame
    noise: float = 0.0  # DART noise (metres) on the executed translation, half of the steps
    image_size: int = 128


SETS = {
    "train": GoalSet("train", "seen", 3_000_000, 300, 3, noise=0.01),
    "heldout": GoalSet("heldout", "seen", 4_000_000, 30, 4),
    "unseen_colors": GoalSet("unseen_colors", "unseen_colors", 4_000_000, 30, 4),
    "debug": GoalSet("debug", "seen", 3_000_000, 1, 8),
}


def render_episode(spec: GoalSet, task: str, seed: int) -> list[dict]:
    """The kept frames of one seeded oracle episode of `task`."""
    from vla.agent.data.rollout import Perturbation
    from vla.agent.train.labels import current_label
    from vla.envs import make_env

    env = make_env(task, split=spec.split, image_size=spec.image_size)
    inner = env.unwrapped
    perturb = Perturbation(seed, spec.noise)
    out = []
    try:
        obs, _ = env.reset(seed=seed)
        for t in range(inner.task.MAX_STEPS):
            action = inner.oracle_action()
            label = current_label(inner)
            if label is not None and t % spec.every == 0:
                out.append({"image": obs["front"].copy(), "state": np.asarray(obs["state"], np.float32),
                            "instruction": str(obs["instruction"]), "label": label, "task": task,
                            "mover": int(getattr(getattr(inner.goal, "target", None), "oid", -1)),
                            "annotation": json.dumps(inner.scene_annotation())})
            obs, _, term, trunc, info = env.step(perturb(action))
            if term or trunc or info.get("is_success"):
                break
    finally:
        env.close()
    return out


def _render_range(args) -> list[dict]:
    spec, task, seeds = args
    return [frame for seed in seeds for frame in render_episode(spec, task, seed)]


def render_set(spec: GoalSet, workers: int = 1, progress=None) -> dict:
    """Every episode of `spec` (each task, seeds first_seed + i) -> arrays (see `load_set`)."""
    jobs = [(spec, task, list(range(s, min(s + 10, spec.first_seed + spec.episodes))))
            for task in TASKS for s in range(spec.first_seed, spec.first_seed + spec.episodes, 10)]
    frames: list[dict] = []
    if workers > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(workers) as pool:
            for part in pool.imap(_render_range, jobs):
                frames += part
                progress and progress(1)
    else:
        for job in jobs:
            frames += _render_range(job)
            progress and progress(1)
    return {"images": np.stack([f["image"] for f in frames]), "state": np.stack([f["state"] for f in frames]),
            "labels": np.stack([f["label"] for f in frames]).astype(np.float32),
            "movers": np.array([f["mover"] for f in frames], np.int16),
            "instructions": [f["instruction"] for f in frames], "tasks": [f["task"] for f in frames],
            "annotations": [f["annotation"] for f in frames]}


def load_set(name: str, data_dir: Path = DATA_DIR, workers: int = 1) -> dict:
    """The goal frame set `name`, rendered and cached under data/goal/ on first use (written atomically)."""
    from vla.agent.perception.scenes import cached_arrays, known_set

    spec = known_set(name, SETS, "goal frame set")

    def render() -> dict:
        data = _render_with_progress(spec, workers)
        return {**data, **{k: np.array(data[k]) for k in ("instructions", "tasks", "annotations")}}

    f = cached_arrays(Path(data_dir) / f"{name}.npz", render)
    return {"images": f["images"], "state": f["state"], "labels": f["labels"], "movers": f["movers"],
            "instructions": [str(s) for s in f["instructions"]], "tasks": [str(s) for s in f["tasks"]],
            "annotations": [json.loads(a) for a in f["annotations"]]}


def _render_with_progress(spec: GoalSet, workers: int) -> dict:
    from rich.console import Console
    from rich.progress import Progress

    jobs = len(TASKS) * -(-spec.episodes // 10)
    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(f"rendering {spec.name} goal frames", total=jobs)
        return render_set(spec, workers, progress=lambda n: bar.advance(task, n))
