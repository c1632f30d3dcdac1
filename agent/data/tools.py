"""Dataset tools: merge datasets, re-render a collected dataset at another image size, summarise and check one.

Merging and re-rendering decode episodes and write them through `DatasetWriter`, so their outputs are
ordinary, crash-safe datasets. Re-rendering replays each episode from its recorded (env id, kwargs, seed,
options) with its recorded actions and refuses to write an episode whose states do not reproduce.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from vla import VLAError
from vla.agent.data.dataset import LeRobotDataset
from vla.agent.data.episode import Episode
from vla.agent.data.format import DEFAULT_FEATURES, image_key
from vla.agent.data.meta import DatasetMeta
from vla.agent.data.writer import DatasetWriter

Progress = Callable[[int], None]


def _own_features(meta: DatasetMeta) -> dict[str, dict[str, Any]]:
    """Features minus LeRobot's defaults and the per-file video `info` (the writer fills those in)."""
    return {k: {f: v for f, v in ft.items() if f != "info"} for k, ft in meta.features.items()
            if k not in DEFAULT_FEATURES}


def _write(out: Path, features: dict, fps: int, robot_type: str | None, episodes: Iterable[Episode],
           per_file: int, progress: Progress | None) -> DatasetWriter:
    """Write all `episodes` to the new dataset `out`; on any error the half-made dataset is removed."""
    if out.exists() and any(out.iterdir()):
        raise VLAError(f"{out} is not empty; write merged or re-rendered datasets to a new directory.")
    try:
        writer = DatasetWriter(out, features, fps, robot_type or "panda")
        group: list[Episode] = []
        for done, episode in enumerate(episodes, start=1):
            group.append(episode)
            if len(group) == per_file:
                writer.commit(group)
                group = []
            if progress:
                progress(done)
        writer.commit(group)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return writer


def merge_datasets(sources: list[str | Path], out: str | Path, per_file: int = 100,
                   progress: Progress | None = None) -> DatasetMeta:
    """Concatenate datasets with the same features and fps into a new dataset at `out`."""
    if len(sources) < 2:
        raise VLAError("merging needs at least two source datasets.")
    metas = [DatasetMeta(s) for s in sources]
    features, fps = _own_features(metas[0]), metas[0].fps
    for meta in metas[1:]:
        if _own_features(meta) != features or meta.fps != fps:
            raise VLAError(f"{meta.root} has other features or fps than {metas[0].root}; only datasets with the "
                           "same keys, shapes and fps can be merged.")

    def episodes():
        for meta in metas:
            ds = LeRobotDataset(meta.root)
            for ep in range(meta.total_episodes):
                episode = ds.episode(ep)
                episode.extras.update({"merged_from": str(meta.root), "merged_episode_index": ep})
                yield episode

    _write(Path(out), features, fps, metas[0].info.get("robot_type"), episodes(), per_file, progress)
    return DatasetMeta(out)


def rerender_dataset(source: str | Path, out: str | Path, image_size: int, per_file: int = 100,
                     progress: Progress | None = None) -> DatasetMeta:
    """Replay every episode of a collected dataset at `image_size` and write the result to `out`."""
    from vla.agent.data import rollout

    ds = LeRobotDataset(source)
    meta = ds.meta
    for key in ("vla/env_id", "vla/env_kwargs", "vla/seed"):
        if meta.episodes and key not in meta.episodes[0]:
            raise VLAError(f"{meta.root} has no {key!r} episode column; only datasets from `vla collect` can be "
                           "re-rendered.")
    features = _own_features(meta)
    for key in meta.video_keys:
        features[key]["shape"] = [image_size, image_size, 3]
    envs: dict[str, Any] = {}

    def episodes():
        for ep in range(meta.total_episodes):
            row = meta.episodes[ep]
            kwargs = {**json.loads(row["vla/env_kwargs"]), "image_size": [image_size, image_size]}
            env_id = row["vla/env_id"]
            env = envs.setdefault(json.dumps([env_id, kwargs], sort_keys=True), rollout.make(env_id, kwargs))
            lo, hi = ds._ep_from[ep], ds._ep_to[ep]
            options = json.loads(row["vla/options"]) if row.get("vla/options") else None
            episode, _ = rollout.run(env, env_id, kwargs, int(row["vla/seed"]), options, ds.columns["action"][lo:hi],
                                     noise=float(row.get("vla/noise") or 0.0))
            if episode.length != hi - lo or not np.allclose(episode.state, ds.columns["observation.state"][lo:hi],
                                                            atol=1e-4):
                raise VLAError(f"episode {ep} of {meta.root} does not replay exactly from its seed and actions "
                               "(the simulator changed since it was collected); it cannot be re-rendered.")
            keep = {k: v for k, v in row.items() if k.startswith("vla/") and k[4:] not in episode.extras}
            episode.extras.update({k[4:]: v for k, v in keep.items()})
            yield episode

    try:
        _write(Path(out), features, meta.fps, meta.info.get("robot_type"), episodes(), per_file, progress)
    finally:
        for env in envs.values():
            env.close()
    return DatasetMeta(out)


def describe(root: str | Path) -> dict[str, Any]:
    """A summary of the dataset at `root`, after checking that every file it references is readable."""
    import av

    meta = DatasetMeta(root)
    if meta.total_episodes:
        LeRobotDataset(root)  # reads every data parquet: a truncated one is reported here
    for ep in meta.episodes:
        for key in meta.video_keys:
            path = meta.video_file(ep, key)
            try:
                with av.open(str(path)) as container:
                    stream = container.streams.video[0]
                    duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
            except (av.error.FFmpegError, OSError) as exc:
                raise VLAError(f"{path} is not a readable video ({exc}).") from None
            if duration + 1e-6 < ep[f"videos/{key}/to_timestamp"]:
                raise VLAError(f"{path} lasts {duration:.2f}s but episode {ep['episode_index']} ends at "
                               f"{ep[f'videos/{key}/to_timestamp']:.2f}s in it; the video is truncated.")
    per_task: dict[str, int] = {}
    for ep in meta.episodes:
        name = ep.get("vla/task_name") or "?"
        per_task[name] = per_task.get(name, 0) + 1
    size = sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file())
    return {
        "root": str(meta.root), "codebase_version": meta.info["codebase_version"], "fps": meta.fps,
        "episodes": meta.total_episodes, "frames": meta.total_frames, "tasks": len(meta.tasks),
        "features": {k: {"dtype": ft["dtype"], "shape": list(ft["shape"])} for k, ft in meta.features.items()},
        "episodes_per_task": per_task,
        "discarded": int(sum(ep.get("vla/discarded") or 0 for ep in meta.episodes)),
        "bytes": size, "bytes_per_frame": round(size / max(meta.total_frames, 1), 1),
        "cameras": [k for k in meta.video_keys if k.startswith(image_key(""))],
    }
