"""Collect oracle demonstrations into a LeRobot v3.0 dataset, in parallel, resumably.

Episode slot i belongs to task `tasks[i % len(tasks)]` and tries seeds derived from (seed, i, attempt) until
the oracle succeeds; failures are discarded and counted. Worker processes write each finished episode to the
staging folder (atomically); the parent commits staged episodes to the dataset in slot order, a file group
at a time. Slots and seeds depend only on the command, so a killed run, started again with the same command,
continues where it stopped and produces the same dataset as an uninterrupted run, with any worker count.

With `policy` set, slot i is one on-policy episode (see `rollout.run`): the policy drives, the expert's action
for each state is recorded, and the episode is kept whether or not it succeeds (DAgger data).
"""
from __future__ import annotations

import json
import multiprocessing as mp
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vla import VLAError
from vla.agent.data.episode import load_staged, save_staged
from vla.agent.data.format import atomic_write_json, robot_features
from vla.agent.data.writer import DatasetWriter

COLLECT_PATH = "meta/vla_collect.json"  # the command's parameters, checked when resuming
FPS = 10  # the env's control rate
MAX_ATTEMPTS = 25


@dataclass(frozen=True)
class CollectConfig:
    tasks: tuple[str, ...]
    split: str
    episodes: int
    image_size: tuple[int, int]
    wrist: bool = False
    seed: int = 0
    workers: int = 1
    episodes_per_file: int = 100
    noise: float = 0.0  # DART: std (m) of the Gaussian added to executed translations (see rollout.Perturbation)
    policy: str | None = None  # on-policy episodes: the checkpoint that drives (DAgger)
    expert_share: float = 0.0  # ... and the share of steps the expert drives instead

    def identity(self) -> dict[str, Any]:
        """What must match to resume: everything except the counts and the worker layout."""
        d = asdict(self)
        for name in ("noise", "policy", "expert_share"):
            if not d[name]:
                d.pop(name)  # datasets collected before these options existed resume unchanged
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()
                if k not in ("episodes", "workers", "episodes_per_file")}


@dataclass
class CollectReport:
    out: str
    episodes: int  # in the dataset now
    frames: int
    new_episodes: int  # kept in this run
    discarded: int  # failed oracle attempts in this run
    successes: int  # episodes of this run that reached their goal (all of them, but for on-policy episodes)
    discarded_total: int  # failed oracle attempts behind every episode in the dataset
    seconds: float

    @property
    def episodes_per_min(self) -> float:
        return 60.0 * self.new_episodes / self.seconds if self.seconds > 0 else 0.0


def slot_seed(seed: int, slot: int, attempt: int) -> int:
    return int(np.random.SeedSequence([seed, slot, attempt]).generate_state(1)[0])


_ENVS: dict[str, Any] = {}  # per worker process: (env id, env kwargs as JSON) -> env
_POLICIES: dict[str, Any] = {}  # per worker process: checkpoint -> policy


def _driver(path: str):
    if path not in _POLICIES:
        import torch

        from vla.models.policy.policy import load_policy

        torch.set_num_threads(1)
        _POLICIES[path] = load_policy(path)
    return _POLICIES[path]


def _collect_slot(job: tuple[int, str, CollectConfig, str]) -> tuple[int, int, int, bool]:
    """Worker: roll out slot `slot` until success (once, on-policy), stage it; returns (slot, discarded
    attempts, length, success)."""
    from vla.agent.data import rollout
    from vla.envs import ENV_IDS

    slot, task, cfg, staging = job
    env_id = ENV_IDS[task]
    kwargs = rollout.env_kwargs(cfg.split, cfg.image_size, cfg.wrist)
    key = f"{env_id} {json.dumps(kwargs, sort_keys=True)}"
    if key not in _ENVS:
        _ENVS[key] = rollout.make(env_id, kwargs)
    if cfg.policy:
        driver = _driver(cfg.policy)
        driver.check_action_space(_ENVS[key].action_space)
        episode, ok = rollout.run(_ENVS[key], env_id, kwargs, slot_seed(cfg.seed, slot, 0), None,
                                  driver=driver, expert_share=cfg.expert_share)
        episode.extras.update({"slot": slot, "discarded": 0})
        save_staged(Path(staging) / f"slot-{slot:07d}.npz", episode)
        return slot, 0, episode.length, ok
    for attempt in range(MAX_ATTEMPTS):
        episode, ok = rollout.run(_ENVS[key], env_id, kwargs, slot_seed(cfg.seed, slot, attempt), None,
                                  noise=cfg.noise)
        if ok:
            episode.extras.update({"slot": slot, "discarded": attempt})
            save_staged(Path(staging) / f"slot-{slot:07d}.npz", episode)
            return slot, attempt, episode.length, True
    raise VLAError(f"the {task!r} oracle failed {MAX_ATTEMPTS} times in a row (slot {slot}); the task looks broken.")


def _open(out: Path, cfg: CollectConfig) -> DatasetWriter:
    writer = DatasetWriter(out, robot_features(cfg.image_size, ("front", "wrist") if cfg.wrist else ("front",)), FPS)
    marker = out / COLLECT_PATH
    if marker.is_file():
        before = json.loads(marker.read_text())
        if before != cfg.identity():
            diff = {k: (before.get(k), v) for k, v in cfg.identity().items() if before.get(k) != v}
            raise VLAError(f"{out} was collected with other settings {diff} (was, now); run the same command "
                           "to resume it, or choose a new --out.")
    elif writer.total_episodes:
        raise VLAError(f"{out} is a dataset not made by `vla collect`; choose a new --out.")
    else:
        atomic_write_json(marker, cfg.identity())
    writer.staging.mkdir(exist_ok=True)
    return writer


def _staged(writer: DatasetWriter) -> set[int]:
    """Slots already staged; those a crash left behind after committing them are deleted."""
    slots = set()
    for path in writer.staging.glob("slot-*.npz"):
        slot = int(path.stem[5:])
        if slot < writer.total_episodes:
            path.unlink()
        else:
            slots.add(slot)
    return slots


def _commit_ready(writer: DatasetWriter, staged: set[int], upto: int, force: bool, per_file: int) -> int:
    """Commit contiguous staged slots from the dataset's end, `per_file` at a time (all if `force`)."""
    frames = 0
    while True:
        start = writer.total_episodes
        run = 0
        while start + run in staged and start + run < upto and run < per_file:
            run += 1
        if run == 0 or (run < per_file and not force):
            return frames
        paths = [writer.staging / f"slot-{s:07d}.npz" for s in range(start, start + run)]
        episodes = [load_staged(p) for p in paths]
        writer.commit(episodes)
        frames += sum(e.length for e in episodes)
        for s, p in zip(range(start, start + run), paths):
            staged.discard(s)
            p.unlink()


def collect_episodes(out: str | Path, cfg: CollectConfig,
                     on_progress: Callable[[int, int, int, int], None] | None = None) -> CollectReport:
    """Collect until the dataset at `out` holds `cfg.episodes` episodes;
    `on_progress(done, kept_now, discarded, successes)`."""
    if cfg.episodes < 1 or cfg.workers < 1 or cfg.episodes_per_file < 1:
        raise VLAError("--episodes, --workers and --episodes-per-file must be at least 1.")
    out = Path(out)
    t0 = time.perf_counter()
    writer = _open(out, cfg)
    staged = _staged(writer)
    todo = [s for s in range(writer.total_episodes, cfg.episodes) if s not in staged]
    jobs = [(s, cfg.tasks[s % len(cfg.tasks)], cfg, str(writer.staging)) for s in todo]
    kept = discarded = successes = 0
    done = min(cfg.episodes, writer.total_episodes + len(staged))
    if on_progress:
        on_progress(done, kept, discarded, successes)
    if jobs:
        for slot, fails, _length, ok in _run_jobs(jobs, cfg.workers):
            staged.add(slot)
            kept, discarded, done, successes = kept + 1, discarded + fails, done + 1, successes + ok
            _commit_ready(writer, staged, cfg.episodes, False, cfg.episodes_per_file)
            if on_progress:
                on_progress(done, kept, discarded, successes)
    _commit_ready(writer, staged, cfg.episodes, True, cfg.episodes_per_file)
    if writer.total_episodes >= cfg.episodes:
        writer.clear_staging()
    return CollectReport(str(out), writer.total_episodes, int(writer.info["total_frames"]), kept, discarded,
                         successes, _discarded_total(out), time.perf_counter() - t0)


def _run_jobs(jobs: list, workers: int):
    if workers == 1:
        for job in jobs:
            yield _collect_slot(job)
        return
    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no pybullet state crosses a fork
    with ctx.Pool(workers) as pool:
        yield from pool.imap_unordered(_collect_slot, jobs, chunksize=1)


def _discarded_total(out: Path) -> int:
    from vla.agent.data.meta import DatasetMeta

    meta = DatasetMeta(out)
    return int(sum(ep.get("vla/discarded") or 0 for ep in meta.episodes))
