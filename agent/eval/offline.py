"""Offline validation of a policy on a held-out LeRobot dataset: next-token loss, action-token accuracy, action
L1, and how much the prediction relies on the camera (the same metrics with the images of a batch shuffled
between its frames: a policy that ignores the camera scores the same on both).
"""
from __future__ import annotations

from pathlib import Path

import torch

from vla import VLAError


@torch.no_grad()
def offline_metrics(policy, data, frames: int = 1024, batch: int = 64, seed: int = 0) -> dict:
    """-> {"plain": {metric: value}, "images_shuffled": {...}, "frames": n} over `frames` random frames."""
    net = policy.net.eval()
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(data), generator=g)[: min(frames, len(data))]
    out = {}
    for name in ("plain", "images_shuffled"):
        totals: dict[str, float] = {}
        for i in range(0, len(idx), batch):
            b = data.batch(idx[i: i + batch])
            if name == "images_shuffled":
                images = b["observation.images.front"]
                b["observation.images.front"] = images[torch.randperm(len(images), generator=g)]
            b = {k: v.to(policy.device) if torch.is_tensor(v) else v for k, v in b.items()}
            _, metrics = net(b)
            for key, value in metrics.items():
                totals[key] = totals.get(key, 0.0) + float(value) * len(b["task"])
        out[name] = {k: round(v / len(idx), 5) for k, v in totals.items()}
    out["frames"] = int(len(idx))
    return out


def evaluate_offline(policy_path: str, root: str | Path, frames: int = 1024, labels: bool = True) -> dict:
    from vla.agent.train.data import load_training_data
    from vla.models.policy.policy import load_policy

    root = Path(root)
    if not root.exists():
        raise VLAError(f"dataset {str(root)!r} does not exist.")
    policy = load_policy(policy_path)
    data = load_training_data(root, policy.cfg.model.action.horizon, progress=False)
    if labels and (policy.net.aux_head is not None or policy.net.ground is not None):
        from vla.agent.train.labels import oracle_labels

        data.attach_oracle_labels(*oracle_labels(root, progress=False))   # the net keeps its own statistics
    result = offline_metrics(policy, data, frames)
    result.update(policy=str(policy_path), data=str(root))
    return result
