"""Tiny policies and inputs shared by the policy tests (not a test module)."""
from __future__ import annotations

import numpy as np
import torch

from vla.models.policy.config import load_config
from vla.models.policy.policy import VLAPolicy

STATS = {"action": {"q01": [-0.05, -0.05, -0.05, -0.3, 0.0], "q99": [0.05, 0.05, 0.05, 0.3, 1.0]},
         "state": {"mean": [0.0] * 12, "std": [1.0] * 12},
         "action_space": {"low": [-0.05, -0.05, -0.05, -0.3, 0.0], "high": [0.05, 0.05, 0.05, 0.3, 1.0]},
         "waypoint": {"mean": [0.5, 0.0, 0.1, 0.0, 0.5, 0.0], "std": [0.1, 0.15, 0.05, 0.6, 0.1, 0.15]}}
SENTENCES = ["pick up the red block", "put the blue block in the green bowl"]
# Shrinks any preset to seconds while keeping its structure (decoding, bridge kind, LM type, GQA, tying).
TINY = ["model.vision.arch=null", "model.vision.image_size=32", "model.vision.patch_size=16",
        "model.vision.width=32", "model.vision.layers=1", "model.vision.head_width=16",
        "model.bridge.num_queries=4", "model.bridge.hidden_size=32", "model.bridge.layers=2", "model.bridge.heads=2",
        "model.bridge.intermediate_size=64", "model.llm.hidden_size=32", "model.llm.layers=1",
        "model.llm.heads=2", "model.llm.kv_heads=1", "model.llm.intermediate_size=64", "model.action.n_bins=16",
        "model.action.horizon=2", "model.action.execute=2"]


def tiny_policy(preset: str = "debug", extra: tuple[str, ...] = ()) -> VLAPolicy:
    torch.manual_seed(0)
    return VLAPolicy.create(load_config(preset, TINY + list(extra)), STATS, SENTENCES)


def batch(policy: VLAPolicy, b: int = 3) -> dict:
    K = policy.cfg.model.action.horizon
    g = torch.Generator().manual_seed(1)
    action = torch.rand(b, K, 5, generator=g) * 0.1 - 0.05
    action[..., 4] = (torch.rand(b, K, generator=g) > 0.5).float()
    return {"observation.images.front": torch.rand(b, 3, 48, 48, generator=g),
            "observation.state": torch.randn(b, 12, generator=g), "action": action,
            "action_is_pad": torch.zeros(b, K, dtype=torch.bool), "task": [SENTENCES[i % 2] for i in range(b)],
            # oracle labels (used by presets with model.aux_waypoint / model.grounding, ignored otherwise)
            "oracle.waypoint": torch.rand(b, 6, generator=g) * 0.2 + 0.4,
            "oracle.valid": torch.ones(b, dtype=torch.bool),
            "oracle.pixel": torch.rand(b, 2, generator=g) * 48}


def obs(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"front": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8),
            "state": rng.standard_normal(12).astype(np.float32), "instruction": "pick up the red block"}
