"""A torch Dataset over a LeRobot v3.0 dataset (ours or one from the hub with the same version and keys).

Each item is one frame with the next `action_horizon` actions (padded at the episode end with the last action
and flagged in `action_is_pad`), and optionally `history` frames of observation ending at this one (padded at
the episode start with the first frame, flagged in `<key>_is_pad`). Numeric columns are read once into
memory; camera frames are decoded from the MP4 files on demand through a per-process LRU frame cache.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from vla import VLAError
from vla.agent.data.episode import Episode
from vla.agent.data.format import EXTRA_PREFIX
from vla.agent.data.meta import DatasetMeta, column_numpy, read_parquet
from vla.agent.data.video import FrameDecoder


class LeRobotDataset(torch.utils.data.Dataset):
    """Frames of the dataset at `root` as dicts of tensors, with action chunks and observation history."""

    def __init__(self, root: str | Path, action_horizon: int = 1, history: int = 1,
                 episodes: list[int] | None = None, cache_mb: float = 512.0, readahead: int = 16,
                 image_transforms: Callable[[torch.Tensor], torch.Tensor] | None = None):
        if action_horizon < 1 or history < 1:
            raise VLAError(f"action_horizon and history must be >= 1 (got {action_horizon}, {history}).")
        self.meta = DatasetMeta(root)
        self.root = self.meta.root
        self.action_horizon, self.history = action_horizon, history
        self.image_transforms = image_transforms
        self.cache_mb, self.readahead = cache_mb, readahead
        self._decoder: FrameDecoder | None = None
        if self.meta.total_episodes == 0:
            raise VLAError(f"{self.root} holds no episodes yet.")
        self._load_columns()
        chosen = range(self.meta.total_episodes) if episodes is None else episodes
        if len(chosen) == 0:
            raise VLAError("episodes=[] selects nothing; pass None for all episodes or a list of indices.")
        for e in chosen:
            if not 0 <= e < self.meta.total_episodes:
                raise VLAError(f"episode {e} is not in {self.root} (it has {self.meta.total_episodes}).")
        self._positions = np.concatenate([np.arange(self._ep_from[e], self._ep_to[e]) for e in chosen])

    def __getstate__(self) -> dict[str, Any]:
        # open video files and decoded frames stay with this process; a worker opens its own on first use
        return {**self.__dict__, "_decoder": None}

    def _load_columns(self) -> None:
        images = [k for k, ft in self.meta.features.items() if ft["dtype"] == "image"]
        if images:
            raise VLAError(f"{self.root} stores {', '.join(images)} as images inside parquet; this loader reads "
                           "camera streams stored as video only.")
        keys = [k for k, ft in self.meta.features.items() if ft["dtype"] != "video"]
        files = list(dict.fromkeys(self.meta.data_file(ep) for ep in self.meta.episodes))
        parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for path in files:
            table = read_parquet(path)
            missing = [k for k in keys if k not in table.column_names]
            if missing:
                raise VLAError(f"{path} lacks the column(s) {', '.join(missing)} that meta/info.json declares.")
            for k in keys:
                parts[k].append(column_numpy(table, k))
        columns = {k: np.concatenate(v) for k, v in parts.items()}
        index = columns["index"]
        order = np.argsort(index, kind="stable")
        keep = order[index[order] < self.meta.total_frames]
        self.columns = {k: v[keep] for k, v in columns.items()}
        if not np.array_equal(self.columns["index"], np.arange(self.meta.total_frames)):
            raise VLAError(f"the data files of {self.root} do not hold frames 0..{self.meta.total_frames - 1} "
                           "that meta/info.json promises; a data parquet file is truncated or missing.")
        self._ep_from = np.array([ep["dataset_from_index"] for ep in self.meta.episodes])
        self._ep_to = np.array([ep["dataset_to_index"] for ep in self.meta.episodes])

    @property
    def fps(self) -> int:
        return self.meta.fps

    @property
    def num_frames(self) -> int:
        return len(self._positions)

    @property
    def num_episodes(self) -> int:
        return self.meta.total_episodes

    def __len__(self) -> int:
        return len(self._positions)

    def __getitem__(self, i: int) -> dict[str, Any]:
        p = int(self._positions[i])
        ep = int(self.columns["episode_index"][p])
        lo, hi = int(self._ep_from[ep]), int(self._ep_to[ep])
        item: dict[str, Any] = {}
        hist = np.arange(p - self.history + 1, p + 1)  # (T,)
        hist_rows = np.clip(hist, lo, hi - 1)
        for key in self.meta.video_keys:
            frames = self._frames(key, ep, hist_rows)  # (T, 3, H, W)
            item[key] = frames[0] if self.history == 1 else frames
            if self.history > 1:
                item[f"{key}_is_pad"] = torch.from_numpy(hist < lo)
        ahead = np.arange(p, p + self.action_horizon)  # (K,)
        for key, values in self.columns.items():
            if key == "action":
                item[key] = torch.from_numpy(values[np.clip(ahead, lo, hi - 1)])  # (K, A)
                item["action_is_pad"] = torch.from_numpy(ahead >= hi)
            elif key.startswith("observation.") and self.history > 1:
                item[key] = torch.from_numpy(values[hist_rows])  # (T, D)
                item[f"{key}_is_pad"] = torch.from_numpy(hist < lo)
            else:
                item[key] = torch.as_tensor(values[p])
        item["task"] = self.meta.tasks[int(self.columns["task_index"][p])]
        return item

    def _frames(self, key: str, ep: int, rows: np.ndarray) -> torch.Tensor:
        meta_ep = self.meta.episodes[ep]
        numbers = self._frame_numbers(key, ep, rows)
        end = int(round(meta_ep[f"videos/{key}/to_timestamp"] * self.fps)) - 1
        until = min(end, numbers[-1] + self.readahead)
        frames = self._video().frames(self.meta.video_file(meta_ep, key), numbers, self.fps, until)  # (T, H, W, 3)
        # numpy, not torch, for the conversion: torch's intra-op threads crawl on a busy 2-core machine
        out = torch.from_numpy(frames.transpose(0, 3, 1, 2).astype(np.float32) * np.float32(1 / 255))  # (T, 3, H, W)
        if self.image_transforms is not None:
            out = self.image_transforms(out)
        return out

    def _video(self) -> FrameDecoder:
        if self._decoder is None:
            self._decoder = FrameDecoder(self.cache_mb)
        return self._decoder

    def _frame_numbers(self, key: str, ep: int, rows: np.ndarray) -> list[int]:
        """File-global frame numbers of `rows`: (from_timestamp + timestamp) * fps, as LeRobot queries them."""
        start = self.meta.episodes[ep][f"videos/{key}/from_timestamp"]
        return [int(round((start + float(self.columns["timestamp"][r])) * self.fps)) for r in rows]

    def episode_info(self, ep: int) -> dict[str, Any]:
        """The episode's metadata row (replay info and scene annotations under `vla/...`)."""
        return self.meta.episodes[ep]

    def episode(self, ep: int) -> Episode:
        """Episode `ep` whole: decoded frames (T, H, W, 3) uint8, state, action, task and `vla/` extras."""
        lo, hi = int(self._ep_from[ep]), int(self._ep_to[ep])
        rows = np.arange(lo, hi)
        frames = {}
        row = self.meta.episodes[ep]
        for key in self.meta.video_keys:
            frames[key] = self._video().frames(self.meta.video_file(row, key), self._frame_numbers(key, ep, rows),
                                               self.fps)  # (T, H, W, 3) uint8
        extras = {k[len(EXTRA_PREFIX):]: v for k, v in row.items() if k.startswith(EXTRA_PREFIX)}
        return Episode(self.meta.tasks[int(self.columns["task_index"][lo])], frames,
                       self.columns["observation.state"][lo:hi], self.columns["action"][lo:hi], extras)
