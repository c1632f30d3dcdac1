"""`vla ros record`: subscribe (raw, no deserialisation) to topics and write them to a rosbag2 MCAP file.

Topics are discovered as they appear; each is subscribed with a QoS its publishers can serve (reliable and
transient local only when every publisher offers it), like `ros2 bag record`.
"""
from __future__ import annotations

import importlib
import threading
import time
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from vla.agent.ros.bag import BagWriter, split_type


class Recorder(Node):
    def __init__(self, out: str | Path, topics: list[str], name: str = "vla_recorder"):
        super().__init__(name)
        self.writer, self.wanted = BagWriter(out), list(topics)
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.discover()
        self.create_timer(0.5, self.discover)

    def discover(self) -> None:
        for topic, types in self.get_topic_names_and_types():
            if topic in self.wanted and topic not in self.counts and types:
                self._subscribe(topic, types[0])

    def _subscribe(self, topic: str, type_name: str) -> None:
        package, name = split_type(type_name)
        msg_type = getattr(importlib.import_module(f"{package}.msg"), name)
        pubs = self.get_publishers_info_by_topic(topic)
        reliable = bool(pubs) and all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE for p in pubs)
        latched = bool(pubs) and all(p.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for p in pubs)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                         reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)
        with self.lock:
            self.writer.add_topic(topic, f"{package}/msg/{name}", _qos_yaml(reliable, latched))
            self.counts[topic] = 0
        self.create_subscription(msg_type, topic, lambda data, t=topic: self._write(t, data), qos, raw=True)

    def _write(self, topic: str, data: bytes) -> None:
        with self.lock:
            self.writer.write(topic, data, self.get_clock().now().nanoseconds)
            self.counts[topic] += 1

    def close(self) -> Path:
        with self.lock:
            return self.writer.close()


def _qos_yaml(reliable: bool, latched: bool) -> str:
    return (f"- history: 1\n  depth: 1\n  reliability: {1 if reliable else 2}\n"
            f"  durability: {1 if latched else 2}\n  deadline:\n    sec: 0\n    nsec: 0\n"
            "  lifespan:\n    sec: 0\n    nsec: 0\n  liveliness: 1\n  liveliness_lease_duration:\n"
            "    sec: 0\n    nsec: 0\n  avoid_ros_namespace_conventions: false\n")


def record(out: str | Path, topics: list[str], duration: float | None, stop: threading.Event | None = None,
           executor=None) -> dict[str, int]:
    """Record `topics` into `out` for `duration` seconds (None: until `stop` is set or Ctrl-C)."""
    from rclpy.executors import SingleThreadedExecutor

    recorder = Recorder(out, topics)
    executor = executor or SingleThreadedExecutor()
    executor.add_node(recorder)
    end = time.monotonic() + duration if duration else None
    try:
        while (end is None or time.monotonic() < end) and not (stop and stop.is_set()):
            executor.spin_once(timeout_sec=0.05)
    except KeyboardInterrupt:
        pass
    finally:
        executor.remove_node(recorder)
        recorder.close()
        recorder.destroy_node()
    return dict(recorder.counts)
