"""Closed-loop rollouts of a policy checkpoint in one process (a worker of `evaluate`)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class EpisodeJob:
    policy: str          # checkpoint path or "default"
    task: str
    split: str
    seeds: list[int]
    first_index: int     # episode index of seeds[0] within the task
    video_dir: str | None
    videos: int          # episodes with index < videos are recorded
    image_size: int = 128
    device: str = "cpu"
    decoding: str | None = None   # override the checkpoint's decoding ("parallel" | "autoregressive")
    execute: int | None = None    # override how many actions of each chunk are executed
    ensemble: float | None = None  # temporal ensembling decay (0 = off)
    goal: str | None = None       # the grounding token's goal: None/"auto", "own" or "oracle" (diagnostic)
    replan: str | None = None     # override when the next chunk is predicted ("chunk" | "adaptive")
    commands: str | None = None   # override how a chained instruction is followed ("whole" | "steps")
    hold: bool | None = None      # override whether a grasp is kept rather than reopened away from the goal
    push_end: bool | None = None  # override whether a push's goal is where the expert's push would end


def run_episodes(job: EpisodeJob) -> list[dict]:
    """Roll the policy out once per seed; returns LeRobot `per_episode` entries (plus instruction and steps)."""
    import torch

    from vla.envs import make_env
    from vla.models.policy.policy import load_policy

    torch.set_num_threads(1)
    policy = load_policy(job.policy, device=job.device)
    policy.configure(decoding=job.decoding, execute=job.execute, ensemble=job.ensemble,
                     goal="given" if job.goal == "oracle" else job.goal, replan=job.replan, commands=job.commands,
                     hold=job.hold, push_end=job.push_end)
    env = make_env(job.task, job.split, image_size=job.image_size)
    policy.check_action_space(env.action_space)
    results = []
    try:
        for offset, seed in enumerate(job.seeds):
            index = job.first_index + offset
            record = job.video_dir is not None and index < job.videos
            results.append(_episode(env, policy, seed, index, record, job))
    finally:
        env.close()
    return results


def _oracle_goal(env) -> np.ndarray:
    """The scripted expert's current skill goal (x, y) for the state the policy drove into (NaN without a plan):
    what a perfect grounding would tell the policy (`vla eval --goal oracle`, a diagnostic)."""
    from vla.agent.train.labels import current_label

    inner = env.unwrapped
    inner.oracle_action(on_policy=True)
    label = current_label(inner)
    return np.full(2, np.nan, np.float32) if label is None else label[4:6]


def _episode(env, policy, seed: int, index: int, record: bool, job: EpisodeJob) -> dict:
    obs, info = env.reset(seed=seed)
    policy.reset()
    predictions = policy.predictions
    frames = [obs["front"]] if record else []
    total, best, success, steps, t0 = 0.0, -np.inf, False, 0, time.perf_counter()
    while True:
        goal = _oracle_goal(env) if job.goal == "oracle" and policy.wants_observation else None
        obs, reward, terminated, truncated, info = env.step(policy.select_action(obs, goal))
        steps += 1
        total += float(reward)
        best = max(best, float(reward))
        success = success or bool(info.get("is_success", False))
        if record:
            frames.append(obs["front"])
        if terminated or truncated or success:
            break
    entry = {"episode_ix": index, "sum_reward": total, "max_reward": best, "success": success, "seed": seed,
             "instruction": str(info.get("instruction", obs["instruction"])), "steps": steps,
             "reference": env.unwrapped.task.reference_kind(env.unwrapped.goal),
             "time_s": time.perf_counter() - t0, "predictions": policy.predictions - predictions}
    if policy.steps.active:                      # `commands: steps`: the commands, and why each was judged done
        entry["commands"], entry["commands_done"] = list(policy.steps.commands), list(policy.steps.done)
        entry["home_steps"] = policy.steps.home_steps
    if policy.cfg.model.action.hold:             # how often a reopening became a lift
        entry["lifts"] = policy.hold.total
    if record:
        from vla.agent.eval.video import write_episode_video

        path = Path(job.video_dir) / f"eval_episode_{index}.mp4"
        entry["video_path"] = str(write_episode_video(path, frames, entry["instruction"], success))
    return entry
