"""Small rclpy helpers shared by the nodes: QoS profiles, stamps, parameter declaration, spinning.

Imports rclpy, so only the node modules import this file.
"""
from __future__ import annotations

import dataclasses
import os

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from vla import VLAError
from vla.agent.ros import params as P

#: Camera frames: best effort, latest only (the SensorDataQoS preset with depth 1).
SENSOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE)
#: Instructions: reliable and latched, so a late-joining node still gets the last command.
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
RELIABLE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)


def stamp_to_sec(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def now_sec(node) -> float:
    return node.get_clock().now().nanoseconds * 1e-9


def overrides(params) -> list[Parameter]:
    """A resolved params dataclass -> rclpy parameter overrides for `Node(parameter_overrides=...)`."""
    defaults = dataclasses.asdict(type(params)())
    # An empty list cannot carry its array type; where the default is empty too, leaving it out is the same.
    return [Parameter(k, value=v) for k, v in dataclasses.asdict(params).items() if v != [] or defaults[k] != []]


def declare(node, cls: type):
    """Declare every field of `cls` on `node` (defaults from the dataclass) and return the checked values.

    Values come from `--params-file`/`-p` ROS args or `parameter_overrides`, whichever started the node.
    """
    from rclpy.exceptions import ParameterException

    values = {}
    for name, default in dataclasses.asdict(cls()).items():
        try:
            if isinstance(default, list) and not default:
                # An empty list has no ROS type of its own: declare the array type; unset means the default.
                param = node.declare_parameter(name, _array_type(cls, name))
                values[name] = default if param.type_ == Parameter.Type.NOT_SET else param.value
            else:
                values[name] = node.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True)).value
        except ParameterException as exc:
            raise VLAError(f"parameter {name!r} of node {node.get_name()!r}: {exc}") from None
    return P.build(cls, values, f" for node {node.get_name()!r}")


def _array_type(cls: type, name: str):
    import typing

    (item,) = typing.get_args(typing.get_type_hints(cls)[name])
    return {str: Parameter.Type.STRING_ARRAY, int: Parameter.Type.INTEGER_ARRAY,
            float: Parameter.Type.DOUBLE_ARRAY}[item]


def domain_from_pid() -> int:
    """A ROS_DOMAIN_ID derived from the process id, so concurrent test runs do not cross-talk."""
    return 1 + os.getpid() % 101


def spin(nodes, *, threads: int = 3) -> None:
    """Spin `nodes` on a multi-threaded executor until Ctrl-C, then destroy them and shut down."""
    from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

    executor = MultiThreadedExecutor(num_threads=threads)
    for node in nodes:
        executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in nodes:
            node.destroy_node()
        if rclpy.ok():
            rclpy.try_shutdown()


class Background:
    """Spin `nodes` on a multi-threaded executor in a daemon thread; `stop()` joins it, then destroys them."""

    def __init__(self, nodes, threads: int = 4):
        import threading

        from rclpy.executors import MultiThreadedExecutor

        self.nodes = list(nodes)
        self.stopping = False
        self.executor = MultiThreadedExecutor(num_threads=threads)
        for node in self.nodes:
            self.executor.add_node(node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass
        except Exception:
            if self.executor.context.ok() and not self.stopping:
                raise
            # the context was shut down under the executor (a signal handler, rclpy.shutdown), or stop() shut the
            # executor down while a callback of its last spin was still finishing (it then meets the executor's
            # destroyed guard condition, rclpy's InvalidHandle): a normal end

    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        # Join the spin thread before destroying nodes, or its last wait touches destroyed handles.
        self.stopping = True
        self.executor.shutdown(timeout_sec=10.0)
        self.thread.join(timeout=10.0)
        for node in self.nodes:
            node.destroy_node()

