"""Training data in memory: every frame of a LeRobot dataset decoded once into tensors, batched by step number.

Batches are a pure function of (seed, step, micro-batch, rank), so a resumed run sees exactly the batches an
uninterrupted run would have seen, and DDP ranks see disjoint slices of each global batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from vla import VLAError


@dataclass
class TrainingData:
    images: torch.Tensor        # (N, H, W, 3) uint8
    state: torch.Tensor         # (N, S) float32
    action: torch.Tensor        # (N, K, D) float32
    action_is_pad: torch.Tensor  # (N, K) bool
    task_index: torch.Tensor    # (N,) long into `tasks`
    tasks: list[str]
    stats: dict                 # {"action": {"q01", "q99", ...}, "state": {"mean", "std", ...}}

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def indices(self, seed: int, step: int, micro: int, accum: int, batch: int, rank: int = 0,
                world: int = 1) -> torch.Tensor:
        """Sample indices of one micro-batch: epochs are seeded permutations, consumed in order."""
        per_epoch = len(self) // (batch * world)
        if per_epoch < 1:
            raise VLAError(f"the dataset has {len(self)} frames, fewer than one global batch "
                           f"({batch} x {world} ranks); lower train.batch_size.")
        u = step * accum + micro
        epoch, j = divmod(u, per_epoch)
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
        start = (j * world + rank) * batch
        return perm[start: start + batch]

    def batch(self, idx: torch.Tensor, shift: int = 0, generator: torch.Generator | None = None) -> dict:
        """The documented dataset batch for `idx`, images kept uint8 (B, H, W, 3) and optionally shifted."""
        images = self.images[idx]
        if shift > 0:
            images = random_shift(images, shift, generator)
        return {"observation.images.front": images, "observation.state": self.state[idx],
                "action": self.action[idx], "action_is_pad": self.action_is_pad[idx],
                "task": [self.tasks[i] for i in self.task_index[idx].tolist()]}


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None) -> torch.Tensor:
    """Shift each uint8 image (B, H, W, 3) by up to `pad` pixels (edge-replicated), as in DrQ."""
    B, H, W, _ = images.shape
    x = F.pad(images.permute(0, 3, 1, 2).float(), (pad, pad, pad, pad), mode="replicate")  # (B, 3, H+2p, W+2p)
    offs = torch.randint(0, 2 * pad + 1, (B, 2), generator=generator)
    out = torch.stack([x[b, :, oy: oy + H, ox: ox + W] for b, (oy, ox) in enumerate(offs.tolist())])
    return out.round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _stats(meta_stats: dict) -> dict:
    """Action/state statistics for the checkpoint, plus the env action space they belong to (ee control)."""
    from vla.envs.env import ACTION_HIGH, ACTION_LOW

    out = {}
    for feature, name in (("action", "action"), ("observation.state", "state")):
        if feature not in meta_stats:
            raise VLAError(f"the dataset's meta/stats.json has no {feature!r} entry.")
        out[name] = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in meta_stats[feature].items()}
    if len(out["action"]["q01"]) == len(ACTION_LOW):
        out["action_space"] = {"low": ACTION_LOW.tolist(), "high": ACTION_HIGH.tolist()}
    return out


def load_training_data(root: str | Path, horizon: int, max_episodes: int | None = None,
                       progress: bool = True) -> TrainingData:
    """Decode a LeRobot dataset (see vla.agent.data) into memory once."""
    from torch.utils.data import DataLoader

    from vla.agent.data import LeRobotDataset

    root = Path(root)
    if not root.exists():
        raise VLAError(f"dataset {str(root)!r} does not exist; collect one with `vla collect` first.")
    episodes = None if max_episodes is None else list(range(max_episodes))
    ds = LeRobotDataset(root, action_horizon=horizon, episodes=episodes)
    loader = DataLoader(ds, batch_size=256, shuffle=False, num_workers=0)
    parts: dict[str, list] = {k: [] for k in ("img", "state", "action", "pad", "task")}
    tasks: dict[str, int] = {}
    from vla.agent.train.progress import progress_bar

    with progress_bar(progress) as bar:
        job = bar.add_task("decoding dataset", total=len(ds))
        for item in loader:
            bar.advance(job, len(item["task"]))
            parts["img"].append((item["observation.images.front"] * 255).round().to(torch.uint8).permute(0, 2, 3, 1))
            parts["state"].append(item["observation.state"].float())
            parts["action"].append(item["action"].float())
            parts["pad"].append(item["action_is_pad"].bool())
            parts["task"].append(torch.tensor([tasks.setdefault(t, len(tasks)) for t in item["task"]]))
    return TrainingData(torch.cat(parts["img"]), torch.cat(parts["state"]), torch.cat(parts["action"]),
                        torch.cat(parts["pad"]), torch.cat(parts["task"]), list(tasks), _stats(ds.meta.stats))
