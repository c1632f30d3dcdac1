"""`evaluate`: closed-loop success rates per task on one split, across worker processes.

Writes `<out>/<split>/<task>/eval_info.json` in LeRobot's eval schema (`per_episode` entries with success and
seed, `aggregated` with `pc_success`) and videos of the first episodes with the instruction drawn on them.
Episode seeds are `seed + i`, far from the seeds demos are collected with, and identical for every policy.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from pathlib import Path

from vla import VLAError, did_you_mean
from vla.agent.eval.rollout import EpisodeJob, run_episodes

EVAL_SEED = 1_000_000
CHUNK = 5  # episodes per worker job (progress granularity)


def resolve_tasks(task: str) -> list[str]:
    from vla.envs import TASKS

    if task == "all":
        return list(TASKS)
    names = [t.strip() for t in task.split(",") if t.strip()]
    for name in names:
        if name not in TASKS:
            raise VLAError(f"unknown task {name!r}; " + did_you_mean(name, ["all", *TASKS]))
    return names


def _jobs(policy: str, task: str, split: str, episodes: int, seed: int, out: Path | None, videos: int,
          **settings) -> list[EpisodeJob]:
    video_dir = str(out / split / task / "videos") if out is not None and videos > 0 else None
    return [EpisodeJob(policy, task, split, [seed + i for i in range(s, min(s + CHUNK, episodes))], s,
                       video_dir, videos, **settings) for s in range(0, episodes, CHUNK)]


def eval_info(per_episode: list[dict], eval_s: float) -> dict:
    n = max(1, len(per_episode))
    return {"per_episode": per_episode,
            "aggregated": {"avg_sum_reward": sum(e["sum_reward"] for e in per_episode) / n,
                           "avg_max_reward": sum(e["max_reward"] for e in per_episode) / n,
                           "pc_success": 100.0 * sum(bool(e["success"]) for e in per_episode) / n,
                           "eval_s": eval_s, "eval_ep_s": eval_s / n},
            "video_paths": [e["video_path"] for e in per_episode if "video_path" in e]}


def per_reference(entries: list[dict]) -> dict[str, float]:
    """Success (%) by how the instruction singled out its object: "plain", "size" or "relation" (twins)."""
    kinds: dict[str, list[bool]] = {}
    for e in entries:
        kinds.setdefault(e.get("reference", "plain"), []).append(bool(e["success"]))
    return {k: 100.0 * sum(v) / len(v) for k, v in sorted(kinds.items())}


def _actions_per_prediction(entries: list[dict]) -> float:
    """Policy steps taken per chunk predicted, over all episodes: `execute` for `replan: chunk`, less when
    adaptive (steps going home between commands are not the policy's)."""
    steps = sum(e["steps"] - e.get("home_steps", 0) for e in entries)
    return steps / max(1, sum(e.get("predictions", 0) for e in entries))


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2))
    tmp.replace(path)


def evaluate(policy: str, tasks: list[str], split: str, episodes: int, workers: int = 1,
             out: Path | None = None, seed: int = EVAL_SEED, videos: int = 2, progress: bool = True,
             decoding: str | None = None, execute: int | None = None, ensemble: float | None = None,
             goal: str | None = None, replan: str | None = None, commands: str | None = None,
             hold: bool | None = None, push_end: bool | None = None) -> dict:
    """Run `episodes` rollouts per task; returns {"policy", "split", "episodes", "pc_success", "per_task"}."""
    from vla.agent.train.progress import progress_bar
    from vla.envs import SPLITS

    if split not in SPLITS:
        raise VLAError(f"unknown split {split!r}; " + did_you_mean(split, SPLITS))
    if episodes < 1:
        raise VLAError(f"--episodes must be at least 1 (got {episodes}).")
    from vla.models.policy.policy import load_policy

    if goal not in (None, "auto", "own", "oracle"):
        raise VLAError(f"unknown goal source {goal!r}; choose auto, own or oracle.")
    loaded = load_policy(policy)              # fail early, in this process, on bad input
    if goal in ("own", "oracle") and not loaded.cfg.model.ground_goal:
        raise VLAError(f"--goal {goal} needs a policy whose grounding token carries a goal (model.ground_goal); "
                       f"{policy!r} has none.")
    loaded.configure(decoding, execute, ensemble, "given" if goal == "oracle" else goal, replan, commands, hold,
                     push_end)
    jobs = [job for task in tasks for job in _jobs(policy, task, split, episodes, seed, out, videos,
                                                   decoding=decoding, execute=execute, ensemble=ensemble,
                                                   goal=goal, replan=replan, commands=commands, hold=hold,
                                                   push_end=push_end)]
    results: dict[str, list[dict]] = {task: [] for task in tasks}
    t0 = {task: time.perf_counter() for task in tasks}
    with progress_bar(progress) as bar:
        bar_job = bar.add_task(f"eval {split}", total=episodes * len(tasks))
        for job, entries in _map(jobs, workers):
            results[job.task].extend(entries)
            bar.advance(bar_job, len(entries))
            done = [e["success"] for t in tasks for e in results[t]]
            bar.update(bar_job, info=f"success {100 * sum(done) / max(1, len(done)):.0f}%")
    per_task = {}
    for task in tasks:
        info = eval_info(sorted(results[task], key=lambda e: e["episode_ix"]), time.perf_counter() - t0[task])
        per_task[task] = info["aggregated"]["pc_success"]
        if out is not None:
            _write_json(out / split / task / "eval_info.json", info)
    entries = [e for task in tasks for e in results[task]]
    summary = {"policy": str(policy), "split": split, "episodes": episodes,
               "pc_success": sum(per_task.values()) / len(per_task), "per_task": per_task,
               "per_reference": per_reference(entries), "actions_per_prediction": _actions_per_prediction(entries)}
    if decoding or execute or ensemble or replan or commands or hold is not None or push_end is not None or \
            goal not in (None, "auto"):
        summary["settings"] = {"decoding": decoding, "execute": execute, "ensemble": ensemble, "goal": goal,
                               "replan": replan, "commands": commands, "hold": hold, "push_end": push_end}
    if out is not None:
        _write_json(out / split / "summary.json", summary)
    return summary


def _map(jobs: list[EpisodeJob], workers: int):
    """Yield (job, results) as jobs finish; in-process when workers <= 1."""
    if workers <= 1:
        for job in jobs:
            yield job, run_episodes(job)
        return
    with mp.get_context("spawn").Pool(workers) as pool:
        for job, entries in zip(jobs, pool.imap(run_episodes, jobs)):
            yield job, entries
