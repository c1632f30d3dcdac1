"""Append episodes to a LeRobot v3.0 dataset, crash-safely.

Episodes are committed in groups: one group is one new `data/chunk-XXX/file-YYY.parquet`, one MP4 per camera
and one episodes parquet, all written under temporary names and renamed into place, then tasks.parquet,
stats.json and finally info.json (the commit point) are replaced atomically. A file once in place is never
rewritten. Opening an existing dataset resumes it: files a crashed run left beyond info.json are removed.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vla import VLAError
from vla.agent.data import stats as stats_mod
from vla.agent.data import video
from vla.agent.data.episode import Episode
from vla.agent.data.format import (
    EPISODES_PATH,
    EXTRA_PREFIX,
    INFO_PATH,
    STAGING_DIR,
    STATS_PATH,
    TASKS_PATH,
    atomic_write_bytes,
    atomic_write_json,
    chunk_file,
    is_temp,
    new_info,
    read_info,
    temp_path,
    video_keys,
)
from vla.agent.data.meta import column_numpy, read_episodes, read_parquet, read_tasks, tasks_table

NUMERIC_KEYS = ("observation.state", "action", "timestamp", "frame_index", "episode_index", "index", "task_index")


def _spec(features: dict[str, dict[str, Any]]) -> dict[str, tuple[str, tuple]]:
    return {k: (ft["dtype"], tuple(ft["shape"])) for k, ft in features.items()}


def data_schema(features: dict[str, dict[str, Any]]) -> pa.Schema:
    """Arrow schema of the data parquet, as HF `datasets` writes LeRobot's features (no video columns)."""
    fields = []
    for key, ft in features.items():
        if ft["dtype"] in ("video", "image"):
            continue
        dtype = pa.from_numpy_dtype(np.dtype(ft["dtype"]))
        shape = tuple(ft["shape"])
        fields.append(pa.field(key, dtype if shape == (1,) else pa.list_(pa.field("item", dtype), shape[0])))
    return pa.schema(fields)


def extras_columns(extras: list[dict[str, Any]]) -> dict[str, list]:
    """`vla/<name>` columns: ints, floats, bools and strings stay typed, anything else becomes a JSON string."""
    names = sorted({k for e in extras for k in e})
    cols: dict[str, list] = {}
    for name in names:
        values = [e.get(name) for e in extras]
        if not all(v is None or isinstance(v, (int, float, str, bool)) for v in values):
            values = [None if v is None else json.dumps(v, sort_keys=True) for v in values]
        cols[EXTRA_PREFIX + name] = values
    return cols


class DatasetWriter:
    """Create (or resume) a dataset at `root` and append groups of episodes to it."""

    def __init__(self, root: str | Path, features: dict[str, dict[str, Any]], fps: int, robot_type: str = "panda"):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise VLAError(f"{self.root} is a file, not a directory; give a dataset directory.")
        if (self.root / INFO_PATH).is_file():
            self.info = read_info(self.root)
            self._check_compatible(features, fps)
            self._resume()
        elif self.root.exists() and any(self.root.iterdir()):
            raise VLAError(f"{self.root} is not empty and is not a dataset (no meta/info.json); refusing to write into it.")
        else:
            self.info = new_info(features, fps, robot_type)
            self.tasks: list[str] = []
            self.group = 0
            self._image_stats: dict[str, list] = {}
            atomic_write_json(self.root / INFO_PATH, self.info)
        self.fps = int(self.info["fps"])
        self.video_keys = video_keys(self.info)
        self.schema = data_schema(self.info["features"])

    @property
    def staging(self) -> Path:
        return self.root / STAGING_DIR

    @property
    def total_episodes(self) -> int:
        return int(self.info["total_episodes"])

    def _check_compatible(self, features: dict[str, dict[str, Any]], fps: int) -> None:
        have = _spec({k: v for k, v in self.info["features"].items() if k not in new_info({}, fps)["features"]})
        want = _spec(features)
        if have != want or int(self.info["fps"]) != int(fps):
            raise VLAError(
                f"{self.root} holds a dataset with features {have} at {self.info['fps']} fps; this run would write "
                f"{want} at {fps} fps (e.g. another --image-size); use a new --out directory."
            )

    def _resume(self) -> None:
        """Load committed state and delete whatever a crashed run wrote beyond it."""
        n = self.total_episodes
        rows = read_episodes(self.root, n) if n else []
        self.tasks = read_tasks(self.root)[: int(self.info["total_tasks"])] if n else []
        self._image_stats = {k: [stats_mod.unflatten(r)[k] for r in rows] for k in video_keys(self.info)}
        keep: set[Path] = set()
        for r in rows:
            keep.add(self.root / EPISODES_PATH.format(chunk_index=r["meta/episodes/chunk_index"],
                                                      file_index=r["meta/episodes/file_index"]))
            keep.add(self.root / self.info["data_path"].format(chunk_index=r["data/chunk_index"],
                                                                file_index=r["data/file_index"]))
            for key in video_keys(self.info):
                keep.add(self.root / self.info["video_path"].format(
                    video_key=key, chunk_index=r[f"videos/{key}/chunk_index"], file_index=r[f"videos/{key}/file_index"]))
        for pattern in ("data/*/*", "meta/episodes/*/*", "videos/*/*/*", "meta/.*"):
            for path in self.root.glob(pattern):
                if path.is_file() and (path not in keep or is_temp(path)):
                    path.unlink()
        size = int(self.info["chunks_size"])
        groups = [int(p.parent.name[6:]) * size + int(p.stem[5:]) for p in keep]
        self.group = max(groups) + 1 if groups else 0

    def commit(self, episodes: list[Episode]) -> None:
        """Append `episodes` as one new file group; returns once everything is renamed into place."""
        if not episodes:
            return
        for ep in episodes:
            self._check_episode(ep)
        first_ep, first_frame = self.total_episodes, int(self.info["total_frames"])
        chunk, file = chunk_file(self.group, int(self.info["chunks_size"]))
        tasks = list(self.tasks)
        for ep in episodes:
            if ep.task not in tasks:
                tasks.append(ep.task)
        table = self._data_table(episodes, first_ep, first_frame, tasks)
        staged: list[tuple[Path, Path]] = []
        data_path = self.root / self.info["data_path"].format(chunk_index=chunk, file_index=file)
        staged.append(self._write_table(table, data_path))
        rows = self._episode_rows(episodes, first_ep, first_frame, chunk, file, tasks)
        for key in self.video_keys:
            path = self.root / self.info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
            path.parent.mkdir(parents=True, exist_ok=True)
            video.encode(temp_path(path), [ep.frames[key] for ep in episodes], self.fps)
            staged.append((temp_path(path), path))
        ep_path = self.root / EPISODES_PATH.format(chunk_index=chunk, file_index=file)
        staged.append(self._write_table(pa.Table.from_pylist(rows), ep_path))
        for tmp, final in staged:  # episodes parquet last: data and videos exist before anything points at them
            os.replace(tmp, final)
        for key in self.video_keys:
            self._image_stats.setdefault(key, []).extend(stats_mod.unflatten(r)[key] for r in rows)
        self._finish(tasks, len(episodes), len(table))

    def _check_episode(self, ep: Episode) -> None:
        feats = self.info["features"]
        want = {k: tuple(feats[k]["shape"]) for k in self.video_keys}
        have = {k: tuple(v.shape[1:]) for k, v in ep.frames.items()}
        dims = (ep.state.shape[1:], ep.action.shape[1:])
        if have != want or dims != (tuple(feats["observation.state"]["shape"]), tuple(feats["action"]["shape"])):
            raise VLAError(f"episode {ep.task!r} has streams {have}, state {dims[0]}, action {dims[1]}; this "
                           f"dataset holds {want}, state {feats['observation.state']['shape']}, action "
                           f"{feats['action']['shape']}.")

    def _data_table(self, episodes: list[Episode], first_ep: int, first_frame: int, tasks: list[str]) -> pa.Table:
        lengths = [ep.length for ep in episodes]
        frame_index = np.concatenate([np.arange(n) for n in lengths])
        cols = {
            "observation.state": np.concatenate([ep.state for ep in episodes]).astype(np.float32),
            "action": np.concatenate([ep.action for ep in episodes]).astype(np.float32),
            "timestamp": (frame_index / self.fps).astype(np.float32),
            "frame_index": frame_index.astype(np.int64),
            "episode_index": np.repeat(np.arange(first_ep, first_ep + len(episodes)), lengths).astype(np.int64),
            "index": np.arange(first_frame, first_frame + sum(lengths), dtype=np.int64),
            "task_index": np.repeat([tasks.index(ep.task) for ep in episodes], lengths).astype(np.int64),
        }
        arrays = []
        for field in self.schema:
            value = cols[field.name]
            if pa.types.is_fixed_size_list(field.type):
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(value.reshape(-1)), type=field.type))
            else:
                arrays.append(pa.array(value, type=field.type))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _episode_rows(self, episodes, first_ep, first_frame, chunk, file, tasks) -> list[dict[str, Any]]:
        rows, start = [], first_frame
        extras = extras_columns([ep.extras for ep in episodes])
        for i, ep in enumerate(episodes):
            n, t0 = ep.length, (start - first_frame) / self.fps
            row: dict[str, Any] = {
                "episode_index": first_ep + i, "tasks": [ep.task], "length": n,
                "data/chunk_index": chunk, "data/file_index": file,
                "dataset_from_index": start, "dataset_to_index": start + n,
            }
            for key in self.video_keys:
                row.update({f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                            f"videos/{key}/from_timestamp": t0, f"videos/{key}/to_timestamp": t0 + n / self.fps})
            row.update({"meta/episodes/chunk_index": chunk, "meta/episodes/file_index": file})
            ep_stats = self._episode_stats(ep, first_ep + i, start, tasks.index(ep.task))
            row.update(stats_mod.flatten(ep_stats))
            row.update({name: values[i] for name, values in extras.items()})
            rows.append(row)
            start += n
        return rows

    def _episode_stats(self, ep: Episode, ep_index: int, start: int, task_index: int) -> dict[str, dict[str, np.ndarray]]:
        n = ep.length
        out = {key: stats_mod.image_stats(ep.frames[key]) for key in self.video_keys}
        out["observation.state"] = stats_mod.vector_stats(ep.state)
        out["action"] = stats_mod.vector_stats(ep.action)
        out["timestamp"] = stats_mod.vector_stats(np.arange(n) / self.fps)
        out["frame_index"] = stats_mod.vector_stats(np.arange(n))
        out["episode_index"] = stats_mod.vector_stats(np.full(n, ep_index))
        out["index"] = stats_mod.vector_stats(np.arange(start, start + n))
        out["task_index"] = stats_mod.vector_stats(np.full(n, task_index))
        return out

    def _write_table(self, table: pa.Table, path: Path) -> tuple[Path, Path]:
        path.parent.mkdir(parents=True, exist_ok=True)
        # list fields keep HF datasets' "item" name (as LeRobot's own files have), not parquet's "element"
        pq.write_table(table, temp_path(path), compression="snappy", use_compliant_nested_type=False)
        return temp_path(path), path

    def _finish(self, tasks: list[str], n_episodes: int, n_frames: int) -> None:
        """Rewrite tasks, stats and finally info.json (the commit point)."""
        self.tasks = tasks
        self.group += 1
        info = dict(self.info)
        info["total_episodes"] += n_episodes
        info["total_frames"] += n_frames
        info["total_tasks"] = len(tasks)
        info["splits"] = {"train": f"0:{info['total_episodes']}"}
        for key in self.video_keys:
            if not info["features"][key].get("info"):
                ep0 = self.root / info["video_path"].format(video_key=key, chunk_index=0, file_index=0)
                info["features"][key] = {**info["features"][key], "info": video.probe(ep0)}
        buf = pa.BufferOutputStream()
        pq.write_table(tasks_table(tasks), buf)
        atomic_write_bytes(self.root / TASKS_PATH, buf.getvalue().to_pybytes())
        atomic_write_json(self.root / STATS_PATH, stats_mod.to_json(self._stats(info)))
        atomic_write_json(self.root / INFO_PATH, info)
        self.info = info

    def _stats(self, info: dict) -> dict[str, dict[str, np.ndarray]]:
        """Exact statistics of every numeric column over all committed frames; camera statistics aggregated
        from the per-episode ones as LeRobot's aggregate_stats does."""
        out = {key: stats_mod.aggregate(self._image_stats[key]) for key in self.video_keys}
        total = int(info["total_frames"])
        paths = sorted((self.root / "data").glob("*/*.parquet"))
        tables = [read_parquet(p, columns=list(NUMERIC_KEYS)) for p in paths]
        index = np.concatenate([np.asarray(t.column("index")) for t in tables])
        keep = index < total
        for key in NUMERIC_KEYS:
            values = np.concatenate([column_numpy(t, key) for t in tables])
            out[key] = stats_mod.vector_stats(values[keep])
        return out

    def clear_staging(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
