"""Roll out the env's scripted oracle into an `Episode`, and replay a recorded episode exactly.

An episode is reproduced from (env id, env kwargs, seed, options): `gymnasium.make(env_id, **kwargs)`,
`reset(seed=seed, options=options)`, then the recorded actions (plus the episode's perturbation, if any).

Perturbed demonstrations (DART, Laskey et al. 2017): with `noise` > 0 the action *executed* at a step is, with
probability 1/2, the oracle's plus Gaussian noise on dx, dy, dz (std `noise` metres), drawn from a stream seeded
by the episode seed, while the oracle's clean action is what is *recorded*. (Noise on every step would keep the
oracle from ever arriving at a waypoint; clean steps let it.) The expert is thus shown recovering from the small
errors a learned policy makes, and the episode still replays exactly from (seed, recorded actions, noise).

On-policy episodes (DAgger, Ross et al. 2011; `driver` given): a learned policy drives the arm (or, on a share
`expert_share` of the steps drawn from the episode's stream, the expert does), while what is *recorded* is the
expert's action for each state it reached (`oracle_action(on_policy=True)`). The executed actions are stored in
the episode (`vla/executed`) so the episode replays exactly, and failed episodes are kept: the states a policy
fails from are what it needs labels for.

Row t holds the observation before action t;
the scene annotations are taken after reset ("scene_first") and after the last action ("scene_last").
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from vla import VLAError
from vla.agent.data.episode import Episode
from vla.agent.data.format import image_key


def env_kwargs(split: str, image_size: tuple[int, int], wrist: bool) -> dict[str, Any]:
    return {"split": split, "image_size": list(image_size), "wrist": bool(wrist)}


def make(env_id: str, kwargs: dict[str, Any]):
    import gymnasium

    import vla.envs  # noqa: F401  (registers the vla/<Task>-v0 ids)

    kw = dict(kwargs)
    kw["image_size"] = tuple(kw["image_size"]) if isinstance(kw["image_size"], (list, tuple)) else kw["image_size"]
    return gymnasium.make(env_id, **kw)


NOISE_STREAM = 0x5EED
NOISE_PROB = 0.5  # share of steps perturbed


class Perturbation:
    """The executed action for a recorded one: on a random half of the steps + N(0, noise^2) on the translation,
    from a per-episode stream (one uniform and three normals drawn every step, so the stream stays aligned)."""

    def __init__(self, seed: int, noise: float):
        self.noise = float(noise)
        self.rng = np.random.default_rng([int(seed), NOISE_STREAM]) if self.noise > 0 else None

    def __call__(self, action: np.ndarray) -> np.ndarray:
        if self.rng is None:
            return action
        hit = self.rng.random() < NOISE_PROB
        delta = self.rng.normal(0.0, self.noise, 3).astype(np.float32)
        executed = np.array(action, dtype=np.float32, copy=True)
        if hit:
            executed[:3] += delta
        return executed


def _cameras(obs: dict) -> list[str]:
    return [cam for cam in ("front", "wrist") if cam in obs]


EXPERT_STREAM = 0xDA66E5


def run(env, env_id: str, kwargs: dict[str, Any], seed: int, options: dict | None,
        actions: np.ndarray | None = None, noise: float = 0.0, driver=None,
        expert_share: float = 0.0) -> tuple[Episode, bool]:
    """One episode with the oracle (or the given actions), executed with the episode's perturbation when
    `noise` > 0, or driven by `driver` (a policy with reset/select_action) with on-policy expert labels;
    returns (episode, success)."""
    if not (noise >= 0 and np.isfinite(noise)):
        raise VLAError(f"noise must be a finite number >= 0 (got {noise}).")
    perturb = Perturbation(seed, noise)
    share = np.random.default_rng([int(seed), EXPERT_STREAM]) if driver is not None else None
    executed: list[list[float]] = []
    obs, info = env.reset(seed=seed, options=options)
    if driver is not None:
        driver.reset()
    scene_first = env.unwrapped.scene_annotation()
    cams = _cameras(obs)
    frames: dict[str, list[np.ndarray]] = {c: [] for c in cams}
    states, acts = [], []
    limit = len(actions) if actions is not None else env.unwrapped.max_steps
    success = False
    for t in range(limit):
        if driver is not None:
            action = env.unwrapped.oracle_action(on_policy=True)
            proposed = np.asarray(driver.select_action(obs), dtype=np.float32)
            run_expert = share.random() < expert_share
            done = np.asarray(action if run_expert else proposed, dtype=np.float32)
            executed.append(done.tolist())
        else:
            action = actions[t] if actions is not None else env.unwrapped.oracle_action()
            done = perturb(action)
        for c in cams:
            frames[c].append(obs[c])
        states.append(obs["state"])
        acts.append(np.asarray(action, dtype=np.float32))
        obs, _, terminated, truncated, info = env.step(done)
        success = bool(info["is_success"])
        if terminated or truncated:
            break
    extras = {
        "env_id": env_id, "env_kwargs": kwargs, "seed": int(seed), "options": options or {},
        "task_name": info["task"], "split": info["split"],
        "scene_first": scene_first, "scene_last": env.unwrapped.scene_annotation(),
    }
    if noise > 0:
        extras["noise"] = float(noise)
    if driver is not None:
        extras.update({"expert": "on_policy", "executed": json.dumps(executed), "success": success})
    episode = Episode(
        task=info["instruction"],
        frames={image_key(c): np.stack(v) for c, v in frames.items()},  # (T, H, W, 3) uint8
        state=np.stack(states).astype(np.float32),  # (T, 12)
        action=np.stack(acts),  # (T, 5)
        extras=extras,
    )
    return episode, success
