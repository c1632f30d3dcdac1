"""Reading a dataset's metadata: info.json, stats.json, tasks.parquet and the episodes parquet files.

`info.json` is the commit point: only the first `total_episodes` episodes (and `total_frames` frames) count,
so a writer that crashed between renaming its files and rewriting info.json leaves nothing a reader sees.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vla import VLAError
from vla.agent.data import stats as stats_mod
from vla.agent.data.format import (
    EPISODES_DIR,
    STATS_PATH,
    TASKS_PATH,
    read_info,
    video_keys,
)

TASK_INDEX_COLUMN = "__index_level_0__"  # pandas writes DataFrame(index=task strings) this way


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read a parquet file; a missing, truncated or corrupt file is one VLAError naming it."""
    if not path.is_file():
        raise VLAError(f"{path} is missing.")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as exc:
        raise VLAError(f"{path} is not a readable parquet file (truncated or corrupt: {exc}).") from None


def column_numpy(table: pa.Table, key: str) -> np.ndarray:
    """A parquet column as numpy: (N, D) for list columns (state, action), (N,) for scalars."""
    col = table.column(key).combine_chunks()
    if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
        return np.asarray(col.flatten()).reshape(len(col), -1)  # (N, D)
    return np.asarray(col)  # (N,)


def tasks_table(tasks: list[str]) -> pa.Table:
    """meta/tasks.parquet exactly as LeRobot's pandas `DataFrame({"task_index": ...}, index=tasks)` writes it."""
    pandas_meta = {
        "index_columns": [TASK_INDEX_COLUMN],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": None, "field_name": TASK_INDEX_COLUMN, "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    schema = pa.schema([("task_index", pa.int64()), (TASK_INDEX_COLUMN, pa.string())],
                       metadata={b"pandas": json.dumps(pandas_meta).encode()})
    return pa.table({"task_index": list(range(len(tasks))), TASK_INDEX_COLUMN: tasks}, schema=schema)


def read_tasks(root: Path) -> list[str]:
    path = root / TASKS_PATH
    table = read_parquet(path)
    names = [c for c in (TASK_INDEX_COLUMN, "task") if c in table.column_names]
    if "task_index" not in table.column_names or not names:
        raise VLAError(f"{path} needs a task_index column and the task strings as its index.")
    order = table.column("task_index").to_pylist()
    texts = table.column(names[0]).to_pylist()
    tasks = [""] * len(order)
    for i, text in zip(order, texts):
        if not 0 <= i < len(order):
            raise VLAError(f"{path} has task_index {i} outside 0..{len(order) - 1}.")
        tasks[i] = text
    return tasks


def read_episodes(root: Path, total_episodes: int) -> list[dict[str, Any]]:
    """Committed episode rows (episode_index < total_episodes), sorted, each a dict of column -> value."""
    rows: list[dict[str, Any]] = []
    for path in sorted((root / EPISODES_DIR).glob("*/*.parquet")):
        rows.extend(r for r in read_parquet(path).to_pylist() if r["episode_index"] < total_episodes)
    rows.sort(key=lambda r: r["episode_index"])
    if [r["episode_index"] for r in rows] != list(range(total_episodes)):
        have = len(rows)
        raise VLAError(
            f"{root / EPISODES_DIR} holds {have} of the {total_episodes} episodes meta/info.json promises; "
            "an episodes parquet file is missing."
        )
    return rows


class DatasetMeta:
    """info, stats, tasks and episodes of a LeRobot v3.0 dataset on disk (ours or from the hub)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.info = read_info(self.root)
        self.fps = int(self.info["fps"])
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        self.video_keys = video_keys(self.info)
        n = int(self.info["total_episodes"])
        self.tasks = read_tasks(self.root) if n else []
        self.episodes = read_episodes(self.root, n) if n else []
        stats_path = self.root / STATS_PATH
        self.stats = stats_mod.from_json(json.loads(stats_path.read_text())) if stats_path.is_file() else {}
        self._check_files()

    @property
    def total_episodes(self) -> int:
        return int(self.info["total_episodes"])

    @property
    def total_frames(self) -> int:
        return int(self.info["total_frames"])

    def data_file(self, ep: dict[str, Any]) -> Path:
        return self.root / self.info["data_path"].format(
            chunk_index=ep["data/chunk_index"], file_index=ep["data/file_index"])

    def video_file(self, ep: dict[str, Any], key: str) -> Path:
        return self.root / self.info["video_path"].format(
            video_key=key, chunk_index=ep[f"videos/{key}/chunk_index"], file_index=ep[f"videos/{key}/file_index"])

    def _check_files(self) -> None:
        for ep in self.episodes:
            if not self.data_file(ep).is_file():
                raise VLAError(f"{self.data_file(ep)} is missing (episode {ep['episode_index']}'s frames).")
            for key in self.video_keys:
                path = self.video_file(ep, key)
                if not path.is_file():
                    raise VLAError(f"{path} is missing (episode {ep['episode_index']}'s {key} video).")
