"""A recorded loop (rosbag2 MCAP) -> a LeRobot v3.0 dataset for fine-tuning on real-robot data.

Each action message becomes one frame: the latest camera image and joint state before it, and the action
(raw Float64MultiArray, or TwistStamped velocities / rate plus the latest gripper command). Episodes start
at each command on the instruction topic (or a new episode number on the sim's status topic) and carry
that instruction as their task; the last status of an episode gives its `success`. The dataset itself is
written by `vla.agent.data.DatasetWriter`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla import VLAError
from vla.agent.ros import image as imgconv
from vla.agent.ros import instructions
from vla.agent.ros.bag import read_messages
from vla.agent.ros.params import STATE_NAMES


@dataclass
class Topics:
    image: str = "/camera/image_raw"
    action: str = "/vla/action"
    gripper: str = "/vla/gripper"
    joint_states: str = "/joint_states"
    instruction: str = "/vla/instruction"
    status: str = "/vla/task_status"


@dataclass
class _Open:
    task: str
    episode: int | None = None  # the sim's episode number, when episodes come from its status
    frames: list = field(default_factory=list)
    states: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    success: bool = False


def _action(msg, rate_hz: float, gripper: float) -> np.ndarray | None:
    if hasattr(msg, "twist"):
        t = msg.twist
        return np.array([t.linear.x, t.linear.y, t.linear.z, t.angular.z], np.float32) / rate_hz
    data = np.asarray(list(msg.data), dtype=np.float32)
    return data if data.shape == (5,) else None


def read_episodes(path: str | Path, topics: Topics = Topics(), rate_hz: float = 10.0,
                  image_size: tuple[int, int] | None = None, only_success: bool = False) -> list:
    """Split the bag into `vla.agent.data.Episode`s (frames resized to `image_size` (W, H), default the first)."""
    from vla.agent.data import Episode

    state_index = {n: i for i, n in enumerate(STATE_NAMES)}
    done: list[_Open] = []
    cur, image, state, gripper = None, None, np.zeros(len(STATE_NAMES), np.float32), 0.0
    # Commands on the instruction topic mark episodes; a bag without any falls back to the sim's episode numbers.
    commands = (m.data for _, _, m in read_messages(path, [topics.instruction]))
    by_instruction = any(instructions.first_manipulation(text) for text in commands)
    wanted = [topics.image, topics.action, topics.gripper, topics.joint_states, topics.instruction, topics.status]
    for topic, _, msg in read_messages(path, wanted):
        if topic == topics.image:
            try:
                image = imgconv.decode_msg(msg)
            except imgconv.ImageError:
                continue  # a malformed frame is skipped, the previous one stays current
            if image_size is None:
                image_size = (image.shape[1], image.shape[0])
        elif topic == topics.joint_states:
            for name, pos in zip(msg.name, msg.position):
                if name in state_index:
                    state[state_index[name]] = pos
        elif topic == topics.gripper:
            gripper = float(msg.data)
        elif topic == topics.instruction and by_instruction and instructions.first_manipulation(msg.data):
            cur = _start(done, cur, instructions.first_manipulation(msg.data))
        elif topic == topics.status:
            status = _json(msg.data)
            if "episode" not in status or not status.get("instruction"):
                continue
            if not by_instruction and (cur is None or status["episode"] != cur.episode):
                cur = _start(done, cur, status["instruction"])
                cur.episode = status["episode"]
            if cur is not None and status["instruction"] == cur.task and "success" in status:
                cur.success = bool(status["success"])
        elif topic == topics.action and cur is not None and image is not None:
            a = _action(msg, rate_hz, gripper)
            if a is not None and a.shape[0] == 4:
                a = np.append(a, np.float32(gripper))
            if a is not None and np.all(np.isfinite(a)):
                cur.frames.append(imgconv.resize(image, image_size))
                cur.states.append(state.copy())
                cur.actions.append(a.astype(np.float32))
    _start(done, cur, None)
    kept = [e for e in done if e.actions and (e.success or not only_success)]
    return [Episode(task=e.task, frames={"observation.images.front": np.stack(e.frames)},  # (T, H, W, 3)
                    state=np.stack(e.states), action=np.stack(e.actions),  # (T, 12), (T, 5)
                    extras={"source": "rosbag", "bag": Path(path).name, "success": e.success})
            for e in kept]


def _start(done: list, cur: _Open | None, task: str | None) -> _Open | None:
    if cur is not None:
        done.append(cur)
    return _Open(task) if task else None


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def bag_to_lerobot(path: str | Path, out: str | Path, topics: Topics = Topics(), rate_hz: float = 10.0,
                   image_size: tuple[int, int] | None = None, only_success: bool = False) -> dict:
    """Convert; returns {"episodes", "frames", "root"}."""
    from vla.agent.data import DatasetWriter
    from vla.agent.data.format import robot_features

    episodes = read_episodes(path, topics, rate_hz, image_size, only_success)
    if not episodes:
        raise VLAError(f"bag {str(path)!r} holds no episode: no action on {topics.action!r} after a command on "
                       f"{topics.instruction!r} (or a status on {topics.status!r}) and an image on {topics.image!r}.")
    height, width = episodes[0].frames["observation.images.front"].shape[1:3]
    writer = DatasetWriter(out, robot_features((width, height)), fps=int(round(rate_hz)))
    writer.commit(episodes)
    return {"episodes": len(episodes), "frames": sum(e.length for e in episodes), "root": str(out)}
