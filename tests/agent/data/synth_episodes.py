"""Synthetic episodes for the dataset tests: real arrays with structure (a gradient and a moving square)."""
from __future__ import annotations

import numpy as np

from vla.agent.data.episode import Episode
from vla.agent.data.format import robot_features

TASKS = ["pick up the red block", "push the blue block to the left", "put the green block in the bowl"]
SIZE = (48, 32)  # (W, H)


def synth_episode(seed: int, length: int | None = None, size=SIZE, cameras=("front",)) -> Episode:
    rng = np.random.default_rng(seed)
    n = length or int(rng.integers(4, 20))
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    frames = {}
    for c, cam in enumerate(cameras):
        base = np.stack([xx * 255 // w, yy * 255 // h, np.full_like(xx, 60 + 50 * c)], -1).astype(np.uint8)
        video = np.repeat(base[None], n, axis=0)  # (T, H, W, 3)
        for t in range(n):
            y0, x0 = (2 * t + seed) % (h - 8), (3 * t + 2 * seed) % (w - 8)
            video[t, y0:y0 + 8, x0:x0 + 8] = [240, 20, 20]
        frames[f"observation.images.{cam}"] = video
    state = rng.normal(size=(n, 12)).astype(np.float32)
    action = rng.uniform(-0.05, 0.05, size=(n, 5)).astype(np.float32)
    extras = {"seed": seed, "env_id": "vla/Pick-v0", "options": {"instruction": TASKS[seed % 3]},
              "scene_first": {"objects": [{"id": 1, "color": "red", "shape": "block"}]}}
    return Episode(TASKS[seed % 3], frames, state, action, extras)


def features(size=SIZE, cameras=("front",)):
    return robot_features(size, cameras)
