"""Roll out the env's scripted oracle into an `Episode`, and replay a recorded episode exactly.

An episode is reproduced from (env id, env kwargs, seed, options): `gymnasium.make(env_id, **kwargs)`,
`reset(seed=seed, options=options)`, then the recorded actions. Row t holds the observation before action t;
the scene annotations are taken after reset ("scene_first") and after the last action ("scene_last").
"""
from __future__ import annotations

from typing import Any

import numpy as np

from vla.agent.data.episode import Episode
from vla.agent.data.format import image_key


def env_kwargs(split: str, image_size: tuple[int, int], wrist: bool) -> dict[str, Any]:
    return {"split": split, "image_size": list(image_size), "wrist": bool(wrist)}


def make(env_id: str, kwargs: dict[str, Any]):
    import gymnasium

    import vla.envs  # noqa: F401  (registers the vla/<Task>-v0 ids)

    kw = dict(kwargs)
    kw["image_size"] = tuple(kw["image_size"])
    return gymnasium.make(env_id, **kw)


def _cameras(obs: dict) -> list[str]:
    return [cam for cam in ("front", "wrist") if cam in obs]


def run(env, env_id: str, kwargs: dict[str, Any], seed: int, options: dict | None,
        actions: np.ndarray | None = None) -> tuple[Episode, bool]:
    """One episode with the oracle (or the given actions); returns (episode, success)."""
    obs, info = env.reset(seed=seed, options=options)
    scene_first = env.unwrapped.scene_annotation()
    cams = _cameras(obs)
    frames: dict[str, list[np.ndarray]] = {c: [] for c in cams}
    states, acts = [], []
    limit = len(actions) if actions is not None else env.unwrapped.max_steps
    success = False
    for t in range(limit):
        action = actions[t] if actions is not None else env.unwrapped.oracle_action()
        for c in cams:
            frames[c].append(obs[c])
        states.append(obs["state"])
        acts.append(np.asarray(action, dtype=np.float32))
        obs, _, terminated, truncated, info = env.step(action)
        success = bool(info["is_success"])
        if terminated or truncated:
            break
    extras = {
        "env_id": env_id, "env_kwargs": kwargs, "seed": int(seed), "options": options or {},
        "task_name": info["task"], "split": info["split"],
        "scene_first": scene_first, "scene_last": env.unwrapped.scene_annotation(),
    }
    episode = Episode(
        task=info["instruction"],
        frames={image_key(c): np.stack(v) for c, v in frames.items()},  # (T, H, W, 3) uint8
        state=np.stack(states).astype(np.float32),  # (T, 12)
        action=np.stack(acts),  # (T, 5)
        extras=extras,
    )
    return episode, success
