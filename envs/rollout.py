"""Run episodes with a named policy ("oracle", "random" or any object with `select_action(obs)`)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np


@dataclass
class EpisodeResult:
    seed: int
    success: bool
    steps: int
    instruction: str
    task: str
    frames: list = field(default_factory=list, repr=False)


def policy_fn(env: gym.Env, policy) -> Callable[[dict], np.ndarray]:
    """An obs -> action callable: the env's oracle, seeded random actions, or `policy.select_action`."""
    if policy == "oracle":
        return lambda obs: env.unwrapped.oracle_action()
    if policy == "random":
        return lambda obs: env.action_space.sample()
    if hasattr(policy, "reset"):
        policy.reset()
    return policy.select_action


def run_episode(env: gym.Env, policy, seed: int, options: dict | None = None, keep_frames: bool = False) -> EpisodeResult:
    """One episode from `reset(seed, options)` until success or the step limit."""
    obs, info = env.reset(seed=seed, options=options)
    env.action_space.seed(seed)
    act = policy_fn(env, policy)
    frames = [obs["front"]] if keep_frames and "front" in obs else []
    done = False
    while not done:
        obs, _, terminated, truncated, info = env.step(act(obs))
        done = terminated or truncated
        if keep_frames and "front" in obs:
            frames.append(obs["front"])
    return EpisodeResult(seed, bool(info["is_success"]), int(info["step"]), info["instruction"], info["task"], frames)
