"""One recorded episode in memory, and its staging file (a finished episode waiting to be committed).

Staging files are plain `.npz` archives read with `allow_pickle=False`; the metadata travels as a JSON string.
They are written to a temporary name and renamed, so a staged episode is either whole or absent.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vla import VLAError
from vla.agent.data.format import atomic_write_bytes


@dataclass
class Episode:
    """A successful demonstration: row t holds the observation before action t.

    `frames` maps a feature key (e.g. "observation.images.front") to uint8 (T, H, W, 3); `state` is float32
    (T, 12); `action` float32 (T, 5); `task` the instruction string; `extras` the JSON-serialisable replay
    info and scene annotations stored in `vla/<name>` episode columns.
    """

    task: str
    frames: dict[str, np.ndarray]
    state: np.ndarray
    action: np.ndarray
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        n = len(self.action)
        lengths = {k: len(v) for k, v in self.frames.items()} | {"observation.state": len(self.state)}
        bad = {k: m for k, m in lengths.items() if m != n}
        if n == 0 or bad:
            raise VLAError(f"an episode needs the same number (>0) of frames in every stream; action has {n}, {bad}.")

    @property
    def length(self) -> int:
        return len(self.action)


def save_staged(path: Path, episode: Episode) -> None:
    meta = {"task": episode.task, "extras": episode.extras, "frame_keys": sorted(episode.frames)}
    arrays = {f"frames_{i}": episode.frames[k] for i, k in enumerate(meta["frame_keys"])}
    buf = io.BytesIO()
    np.savez(buf, state=episode.state, action=episode.action, meta=np.array(json.dumps(meta)), **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_staged(path: Path) -> Episode:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            frames = {k: z[f"frames_{i}"] for i, k in enumerate(meta["frame_keys"])}
            return Episode(meta["task"], frames, z["state"], z["action"], meta["extras"])
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise VLAError(f"staged episode {path} is unreadable ({exc}); delete it and run again.") from None
