"""rosbag2-compatible MCAP files in pure Python (the `mcap` and `mcap-ros2-support` packages).

Writing takes messages already serialised to CDR (as rclpy's raw subscriptions deliver them, the bytes
rosbag2 stores) and the `.msg` definitions found under the ROS 2 share directories, so `ros2 bag info/play`
read the file. Reading decodes with the schemas stored in the file and needs no ROS 2 install.
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Iterator

from vla import VLAError

PRIMITIVES = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
              "int64", "uint64", "string", "wstring", "time", "duration"}
_SEPARATOR = "=" * 80


def _share_dirs() -> list[Path]:
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    return [Path(p) / "share" for p in prefixes]


def _msg_text(package: str, name: str) -> str:
    for share in _share_dirs():
        path = share / package / "msg" / f"{name}.msg"
        if path.is_file():
            return path.read_text()
    raise VLAError(f"cannot find the definition of {package}/msg/{name} under any share/ directory "
                   f"(AMENT_PREFIX_PATH or {sys.prefix}); is the message package installed?")


def split_type(type_name: str) -> tuple[str, str]:
    """"sensor_msgs/msg/Image" or "sensor_msgs/Image" -> ("sensor_msgs", "Image")."""
    parts = type_name.split("/")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[1] != "msg"):
        raise VLAError(f"message type {type_name!r} must look like package/msg/Type.")
    return parts[0], parts[-1]


def _field_types(text: str, package: str) -> list[tuple[str, str]]:
    """Complex field types of a .msg text as (package, Type), in order."""
    found = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        base = re.sub(r"(\[[^\]]*\])|(<=\d+)", "", line.split()[0])
        if base in PRIMITIVES or "=" in line.split(None, 1)[-1].split()[0]:
            continue
        if base == "Header":
            found.append(("std_msgs", "Header"))
        elif "/" in base:
            found.append(split_type(base))
        else:
            found.append((package, base))
    return found


def msgdef(type_name: str) -> str:
    """The full definition rosbag2 stores as a schema: the type's text, then each dependency once."""
    package, name = split_type(type_name)
    parts, seen = [_msg_text(package, name)], set()
    stack = list(reversed(_field_types(parts[0], package)))
    while stack:
        dep = stack.pop()
        if dep in seen:
            continue
        seen.add(dep)
        text = _msg_text(*dep)
        parts.append(f"{_SEPARATOR}\nMSG: {dep[0]}/{dep[1]}\n{text}")
        stack.extend(reversed(_field_types(text, dep[0])))
    return "\n".join(p.rstrip("\n") for p in parts) + "\n"


class BagWriter:
    """Write CDR messages to a `.mcap` file with the ros2 profile (schema encoding ros2msg, messages cdr)."""

    def __init__(self, path: str | Path):
        from mcap.writer import CompressionType, Writer

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(self.path.name + ".partial")
        self._file = open(self._tmp, "wb")
        self._writer = Writer(self._file, compression=CompressionType.ZSTD)
        self._writer.start(profile="ros2", library="vla-toolkit")
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._seq: dict[str, int] = {}
        self.count = 0

    def add_topic(self, topic: str, type_name: str, qos_yaml: str = "") -> None:
        if topic in self._channels:
            return
        package, name = split_type(type_name)
        full = f"{package}/msg/{name}"
        if full not in self._schemas:
            self._schemas[full] = self._writer.register_schema(full, "ros2msg", msgdef(full).encode())
        self._channels[topic] = self._writer.register_channel(
            topic, "cdr", self._schemas[full], {"offered_qos_profiles": qos_yaml})
        self._seq[topic] = 0

    def write(self, topic: str, data: bytes, log_time_ns: int, publish_time_ns: int | None = None) -> None:
        self._writer.add_message(self._channels[topic], log_time=log_time_ns, data=data,
                                 publish_time=publish_time_ns or log_time_ns, sequence=self._seq[topic])
        self._seq[topic] += 1
        self.count += 1

    def close(self) -> Path:
        """Finish the file and move it into place (a half-written bag is never left under the final name)."""
        self._writer.finish()
        self._file.close()
        os.replace(self._tmp, self.path)
        return self.path


def read_messages(path: str | Path, topics: list[str] | None = None) -> Iterator[tuple[str, int, object]]:
    """(topic, log_time_ns, decoded message) in log-time order, decoded with the bag's own schemas."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    path = Path(path)
    if path.is_dir():  # a rosbag2 directory: its .mcap file(s)
        files = sorted(path.glob("*.mcap"))
        if not files:
            raise VLAError(f"bag directory {str(path)!r} holds no .mcap file.")
    elif path.is_file():
        files = [path]
    else:
        raise VLAError(f"bag {str(path)!r} does not exist.")
    for file in files:
        with open(file, "rb") as stream:
            try:
                reader = make_reader(stream, decoder_factories=[DecoderFactory()])
                for _, channel, message, msg in reader.iter_decoded_messages(topics=topics, log_time_order=True):
                    yield channel.topic, message.log_time, msg
            except VLAError:
                raise
            except Exception as exc:  # corrupt or foreign files: one sentence, not a traceback
                raise VLAError(f"cannot read bag {str(file)!r} as ROS 2 MCAP ({exc}).") from None
