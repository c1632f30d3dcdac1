"""The LeRobot v3.0 on-disk layout: path templates, feature specs, `info.json`, and atomic file writes.

Mirrors LeRobot's `datasets/utils.py` (DEFAULT_FEATURES, create_empty_dataset_info, CHUNK_FILE_PATTERN) so a
dataset written here loads with LeRobot's own reader. Everything that touches disk writes a temporary file
next to its target and renames it into place, so a reader never sees a half-written file.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from vla import VLAError

CODEBASE_VERSION = "v3.0"
DEFAULT_CHUNK_SIZE = 1000  # files per chunk folder
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200

INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
EPISODES_DIR = "meta/episodes"
CHUNK_FILE_PATTERN = "chunk-{chunk_index:03d}/file-{file_index:03d}"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK_FILE_PATTERN + ".parquet"
DATA_PATH = "data/" + CHUNK_FILE_PATTERN + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE_PATTERN + ".mp4"

#: Our own episode columns carry this prefix; LeRobot's use data/, videos/, stats/, meta/episodes/.
EXTRA_PREFIX = "vla/"
#: Collected-but-not-yet-committed episodes wait here (inside the dataset root, ignored by LeRobot).
STAGING_DIR = ".vla-staging"

DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}

STATE_NAMES = ["ee_x", "ee_y", "ee_z", "ee_yaw", "gripper_opening", "q1", "q2", "q3", "q4", "q5", "q6", "q7"]
ACTION_NAMES = ["dx", "dy", "dz", "dyaw", "gripper"]
CAMERAS = ("front", "wrist")


def image_key(camera: str) -> str:
    return f"observation.images.{camera}"


def robot_features(image_size: tuple[int, int], cameras=("front",)) -> dict[str, dict[str, Any]]:
    """Feature spec for our env's frames: cameras as video, 12-dim state, 5-dim action. `image_size` is (W, H)."""
    width, height = image_size
    features: dict[str, dict[str, Any]] = {}
    for cam in cameras:
        features[image_key(cam)] = {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
        }
    features["observation.state"] = {"dtype": "float32", "shape": [len(STATE_NAMES)], "names": STATE_NAMES}
    features["action"] = {"dtype": "float32", "shape": [len(ACTION_NAMES)], "names": ACTION_NAMES}
    return features


def new_info(features: dict[str, dict[str, Any]], fps: int, robot_type: str | None = "panda") -> dict[str, Any]:
    """An empty dataset's info.json, field for field as LeRobot's `create_empty_dataset_info`."""
    features = {**features, **DEFAULT_FEATURES}
    has_video = any(ft["dtype"] == "video" for ft in features.values())
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": 0,
        "total_frames": 0,
        "total_tasks": 0,
        "chunks_size": DEFAULT_CHUNK_SIZE,
        "data_files_size_in_mb": DEFAULT_DATA_FILE_SIZE_IN_MB,
        "video_files_size_in_mb": DEFAULT_VIDEO_FILE_SIZE_IN_MB,
        "fps": int(fps),
        "splits": {},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if has_video else None,
        "features": features,
    }


def video_keys(info: dict[str, Any]) -> list[str]:
    return [k for k, ft in info["features"].items() if ft["dtype"] == "video"]


def chunk_file(group: int, chunks_size: int) -> tuple[int, int]:
    """The (chunk_index, file_index) of the `group`-th file, as LeRobot's update_chunk_file_indices counts."""
    return group // chunks_size, group % chunks_size


REQUIRED_INFO_KEYS = ("codebase_version", "fps", "features", "total_episodes", "total_frames", "data_path")


def read_info(root: str | Path) -> dict[str, Any]:
    """Load and check `meta/info.json`; any problem is one VLAError naming the file."""
    path = Path(root) / INFO_PATH
    if not path.is_file():
        raise VLAError(f"{path} does not exist; {root} is not a LeRobot dataset (expected meta/info.json).")
    try:
        info = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VLAError(f"{path} is not valid JSON ({exc}).") from None
    if not isinstance(info, dict):
        raise VLAError(f"{path} must hold a JSON object, not {type(info).__name__}.")
    missing = [k for k in REQUIRED_INFO_KEYS if k not in info]
    if missing:
        raise VLAError(f"{path} lacks the field(s) {', '.join(missing)}; it is not a LeRobot v3.0 info.json.")
    version = info["codebase_version"]
    if version != CODEBASE_VERSION:
        raise VLAError(
            f"{path} has codebase_version {version!r}; only {CODEBASE_VERSION!r} datasets are supported "
            "(convert older ones with LeRobot's datasets/v30/convert_dataset_v21_to_v30.py)."
        )
    return info


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to a temporary sibling, fsync it, and rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=4, ensure_ascii=False) + "\n").encode())


def temp_path(path: Path) -> Path:
    """A hidden sibling of `path` that no LeRobot glob (`*/*.parquet`, `*.mp4`) matches."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def is_temp(path: Path) -> bool:
    return path.name.startswith(".") and ".tmp-" in path.name
