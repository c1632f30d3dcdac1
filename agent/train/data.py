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
    waypoint: torch.Tensor | None = None        # (N, 6) float32 oracle labels (see vla.agent.train.labels)
    waypoint_valid: torch.Tensor | None = None  # (N,) bool
    goal_pixel: torch.Tensor | None = None      # (N, 2) float32: the skill goal in the front image (column, row)
    n_scenes: int = 0           # the last n_scenes frames are start-of-episode scenes (vla.agent.train.scenes)
    buffer: torch.Tensor | None = None  # storage `images` is the start of, with room for scenes (no copy)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def indices(self, seed: int, step: int, micro: int, accum: int, batch: int, rank: int = 0,
                world: int = 1, scene_share: float = 0.0) -> torch.Tensor:
        """Sample indices of one micro-batch: epochs are seeded permutations, consumed in order; with scenes
        attached, round(batch * scene_share) of them come from the scenes (their own permutations)."""
        k = round(batch * scene_share) if self.n_scenes else 0
        demos = len(self) - self.n_scenes
        u = step * accum + micro
        idx = _draw(demos, batch - k, u, rank, world, seed * 100_003)
        if k:
            idx = torch.cat([idx, demos + _draw(self.n_scenes, k, u, rank, world, seed * 100_003 + 50_000_017)])
        return idx

    def attach_scenes(self, scenes: dict) -> None:
        """Append start-of-episode scenes (see vla.agent.train.scenes) as frames with oracle labels and no
        actions (every action padded). Call after attach_oracle_labels."""
        if self.waypoint is None:
            raise VLAError("start-of-episode scenes need the oracle labels attached first.")
        images = torch.as_tensor(scenes["images"])
        if images.shape[1:] != self.images.shape[1:]:
            raise VLAError(f"scenes are {tuple(images.shape[1:])} images; the dataset's are "
                           f"{tuple(self.images.shape[1:])}.")
        n = len(images)
        labels = torch.as_tensor(scenes["labels"], dtype=torch.float32)
        tasks = {t: i for i, t in enumerate(self.tasks)}
        index = torch.tensor([tasks.setdefault(t, len(tasks)) for t in scenes["task"]], dtype=torch.long)
        self.tasks = list(tasks)
        from vla.agent.train.labels import goal_pixels

        h, w = self.images.shape[1:3]
        pixel = torch.as_tensor(goal_pixels(labels.numpy(), int(w), int(h)), dtype=torch.float32)
        end = len(self) + n
        if self.buffer is not None and self.buffer.shape[0] >= end \
                and self.images.data_ptr() == self.buffer.data_ptr():
            self.buffer[len(self): end] = images                # in place: no second copy of every frame
            self.images = self.buffer[:end]
        else:
            self.images = torch.cat([self.images, images])
        self.state = torch.cat([self.state, torch.as_tensor(scenes["state"], dtype=torch.float32)])
        self.action = torch.cat([self.action, torch.zeros(n, *self.action.shape[1:])])
        pad = torch.ones(n, self.action_is_pad.shape[1], dtype=torch.bool)
        self.action_is_pad = torch.cat([self.action_is_pad, pad])
        self.task_index = torch.cat([self.task_index, index])
        self.waypoint = torch.cat([self.waypoint, labels])
        self.waypoint_valid = torch.cat([self.waypoint_valid, torch.ones(n, dtype=torch.bool)])
        self.goal_pixel = torch.cat([self.goal_pixel, pixel])
        self.n_scenes += n

    def batch(self, idx: torch.Tensor, shift: int = 0, generator: torch.Generator | None = None,
              color_aug: float = 0.0) -> dict:
        """The documented dataset batch for `idx`, images kept uint8 (B, H, W, 3), optionally shifted and, for a
        share `color_aug` of them, recoloured (see random_color_matrices; the matrices go in "aug.color_matrix")."""
        images, offsets, out = self.images[idx], None, {}
        if shift > 0:
            images, offsets = random_shift(images, shift, generator, return_offsets=True)
        if color_aug > 0:
            matrix = random_color_matrices(len(idx), color_aug, generator)
            images = recolor(images, matrix)
            out["aug.color_matrix"] = matrix
        out |= {"observation.images.front": images, "observation.state": self.state[idx],
               "action": self.action[idx], "action_is_pad": self.action_is_pad[idx],
               "task": [self.tasks[i] for i in self.task_index[idx].tolist()]}
        if self.waypoint is not None:
            out["oracle.waypoint"], out["oracle.valid"] = self.waypoint[idx], self.waypoint_valid[idx]
            pixel = self.goal_pixel[idx]
            out["oracle.pixel"] = pixel if offsets is None else pixel - (offsets.flip(-1).float() - shift)
        return out

    def attach_oracle_labels(self, labels, valid) -> None:
        """Add the per-frame oracle labels and their normalisation statistics (stats["waypoint"])."""
        labels, valid = torch.as_tensor(labels, dtype=torch.float32), torch.as_tensor(valid, dtype=torch.bool)
        if labels.shape[0] != len(self) or valid.shape[0] != len(self):
            raise VLAError(f"oracle labels cover {labels.shape[0]} frames; the dataset has {len(self)}.")
        if not bool(valid.any()):
            raise VLAError("no episode of this dataset could be replayed for oracle labels (it lacks the replay "
                           "info `vla collect` records); set model.aux_waypoint=0 model.grounding=false.")
        good = labels[valid]
        self.waypoint, self.waypoint_valid = labels, valid
        from vla.agent.train.labels import goal_pixels

        h, w = self.images.shape[1:3]
        self.goal_pixel = torch.as_tensor(goal_pixels(labels.numpy(), int(w), int(h)), dtype=torch.float32)
        self.stats["waypoint"] = {"mean": good.mean(0).tolist(), "std": good.std(0).clamp_min(1e-3).tolist()}


def _draw(n: int, batch: int, u: int, rank: int, world: int, seed: int) -> torch.Tensor:
    """Micro-batch u of a stream of seeded permutations of range(n), consumed in order."""
    per_epoch = n // (batch * world)
    if per_epoch < 1:
        raise VLAError(f"the dataset has {n} frames, fewer than one global batch "
                       f"({batch} x {world} ranks); lower train.batch_size.")
    epoch, j = divmod(u, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
    start = (j * world + rank) * batch
    return perm[start: start + batch]


LUMA = torch.tensor([0.299, 0.587, 0.114])


def random_color_matrices(n: int, p: float, generator: torch.Generator | None) -> torch.Tensor:
    """(n, 3, 3) colour transforms, the identity except for a share `p`: b * ((1 - s) * P + s * luma), with P a
    random channel permutation, s in [0, 1] a desaturation and b in [0.7, 1.2] a brightness.

    Linear, so a surface of colour c shaded k renders as k * (M c): recolouring the image and the colour words'
    RGB values with the same M keeps every instruction true, and shows colours (greys, dark and pale ones) that
    the training scenes never had.
    """
    eye = torch.eye(3).expand(n, 3, 3).clone()
    perm = torch.stack([torch.eye(3)[torch.randperm(3, generator=generator)] for _ in range(n)])
    s = torch.rand(n, 1, 1, generator=generator)
    b = 0.7 + 0.5 * torch.rand(n, 1, 1, generator=generator)
    matrix = b * ((1 - s) * perm + s * LUMA.expand(3, 3))
    on = torch.rand(n, generator=generator) < p
    return torch.where(on[:, None, None], matrix, eye)


def recolor(images: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """uint8 (B, H, W, 3) images through per-image colour matrices (B, 3, 3), clamped to the uint8 range."""
    out = torch.einsum("bij,bhwj->bhwi", matrix, images.float())
    return out.round().clamp(0, 255).to(torch.uint8)


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None, return_offsets: bool = False):
    """Shift each uint8 image (B, H, W, 3) by up to `pad` pixels (edge-replicated), as in DrQ.

    With `return_offsets`, also the crop offsets (B, 2) as (row, column): content at (r, c) moves to
    (r - row + pad, c - column + pad).
    """
    B, H, W, _ = images.shape
    x = F.pad(images.permute(0, 3, 1, 2).float(), (pad, pad, pad, pad), mode="replicate")  # (B, 3, H+2p, W+2p)
    offs = torch.randint(0, 2 * pad + 1, (B, 2), generator=generator)
    out = torch.stack([x[b, :, oy: oy + H, ox: ox + W] for b, (oy, ox) in enumerate(offs.tolist())])
    out = out.round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return (out, offs) if return_offsets else out


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


def load_training_sets(roots: list[str | Path], horizon: int, max_episodes: int | None = None,
                       progress: bool = True, reserve: int = 0) -> TrainingData:
    """Decode several LeRobot datasets with the same features and concatenate them in order (e.g. oracle demos
    and on-policy DAgger episodes). The normalisation statistics are the first dataset's; `max_episodes`
    applies to each. Frames are decoded straight into one image buffer with room for `reserve` more frames
    (the start-of-episode scenes, see TrainingData.attach_scenes), so memory peaks at the images' own size."""
    from vla.agent.data import LeRobotDataset

    sets = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise VLAError(f"dataset {str(root)!r} does not exist; collect one with `vla collect` first.")
        episodes = None if max_episodes is None else list(range(max_episodes))
        sets.append(LeRobotDataset(root, action_horizon=horizon, episodes=episodes))
    features = sets[0].meta.features
    for root, ds in zip(roots[1:], sets[1:]):
        for key in ("observation.images.front", "observation.state", "action"):
            if ds.meta.features[key]["shape"] != features[key]["shape"]:
                raise VLAError(f"{root} has another {key} shape than {roots[0]}; only datasets with the same "
                               "features train together.")
    total = sum(len(ds) for ds in sets)
    buffer = torch.empty(total + reserve, *features["observation.images.front"]["shape"], dtype=torch.uint8)
    tasks: dict[str, int] = {}
    parts, offset = [], 0
    for ds in sets:
        parts.append(_decode(ds, buffer[offset: offset + len(ds)], tasks, progress))
        offset += len(ds)
    state, action, pad, task_index = (torch.cat(column) for column in zip(*parts))
    return TrainingData(buffer[:total], state, action, pad, task_index, list(tasks), _stats(sets[0].meta.stats),
                        buffer=buffer)


def load_training_data(root: str | Path, horizon: int, max_episodes: int | None = None,
                       progress: bool = True) -> TrainingData:
    """Decode a LeRobot dataset (see vla.agent.data) into memory once."""
    return load_training_sets([root], horizon, max_episodes, progress)


def _decode(ds, images: torch.Tensor, tasks: dict[str, int], progress: bool) -> tuple[torch.Tensor, ...]:
    """Every frame of `ds`: its images written into `images` (N, H, W, 3) uint8; returns (state, action,
    action_is_pad, task index), the task strings indexed in `tasks` (shared across datasets)."""
    from torch.utils.data import DataLoader

    from vla.agent.train.progress import progress_bar

    loader = DataLoader(ds, batch_size=256, shuffle=False, num_workers=0)
    parts: dict[str, list] = {k: [] for k in ("state", "action", "pad", "task")}
    at = 0
    with progress_bar(progress) as bar:
        job = bar.add_task("decoding dataset", total=len(ds))
        for item in loader:
            n = len(item["task"])
            bar.advance(job, n)
            images[at: at + n] = (item["observation.images.front"] * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
            at += n
            parts["state"].append(item["observation.state"].float())
            parts["action"].append(item["action"].float())
            parts["pad"].append(item["action_is_pad"].bool())
            parts["task"].append(torch.tensor([tasks.setdefault(t, len(tasks)) for t in item["task"]]))
    return tuple(torch.cat(parts[k]) for k in ("state", "action", "pad", "task"))
