"""Start ROS 2 nodes in this process: one node (`vla ros policy|sim`) or a whole graph (`vla ros up`).

This is what `ros2 launch vla_toolkit <graph>.launch.py` does, without the launch packages: the same
nodes (agent/ros/graph.py), parameters file and remappings, plus `-p name:=value` overrides.
"""
from __future__ import annotations

import os
import signal
import sys
import time

from vla.agent.ros import graph as G
from vla.agent.ros import params as P

NODE_CLASSES = {"vla_policy": "vla.agent.ros.policy_node:PolicyNode",
                "vla_sim_robot": "vla.agent.ros.sim_node:SimRobotNode"}


def node_class(executable: str):
    import importlib

    module, _, cls = NODE_CLASSES[executable].partition(":")
    return getattr(importlib.import_module(module), cls)


def build_nodes(description: dict, **node_kwargs) -> list:
    """The nodes of a `graph.describe()` result (rclpy must be initialised)."""
    nodes = []
    try:
        for spec in description["nodes"]:
            cls = P.NODE_PARAMS[spec["executable"]]
            params = P.build(cls, spec["parameters"])
            remaps = [arg for a, b in spec["remappings"] for arg in ("-r", f"{a}:={b}")]
            kwargs = dict(node_kwargs.get(spec["executable"], {}))
            nodes.append(node_class(spec["executable"])(params, name=spec["name"],
                                                       cli_args=["--ros-args", *remaps], **kwargs))
    except BaseException:
        for node in nodes:
            node.destroy_node()
        raise
    return nodes


def single(executable: str, params_file=None, overrides=()) -> dict:
    """A one-node description (for `vla ros policy` / `vla ros sim`) in the shape `graph.describe` returns."""
    values = P.as_dict(P.resolve(executable, params_file, list(overrides)))
    return {"graph": executable, "params_file": str(params_file or ""), "nodes": [
        {"name": executable, "package": G.PACKAGE, "executable": executable, "remappings": [],
         "parameters": values, "topics": G.topics(values, [])}]}


def run(description: dict, duration: float | None = None, instruction: str = "") -> None:
    """Initialise rclpy, start the nodes, optionally publish one instruction, spin until Ctrl-C or `duration`."""
    import rclpy
    from std_msgs.msg import String

    from vla.agent.ros.rosutil import LATCHED_QOS, Background

    from rclpy.signals import SignalHandlerOptions

    # Ctrl-C (and SIGTERM, as `ros2 launch` sends after SIGINT) end the wait below; the executor is stopped
    # and the nodes destroyed before the context shuts down. rclpy's own handlers would shut the context down
    # under the spinning thread first. Not sys.argv: those are the vla CLI's arguments.
    rclpy.init(args=["vla"], signal_handler_options=SignalHandlerOptions.NO)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    background = None
    try:
        nodes = build_nodes(description)
        background = Background(nodes)
        if instruction:
            topic = next(n["parameters"]["instruction_topic"] for n in description["nodes"])
            nodes[0].create_publisher(String, topic, LATCHED_QOS).publish(String(data=instruction))
        names = ", ".join(n.get_name() for n in nodes)
        print(f"running {description['graph']}: {names} (ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')}); "
              "Ctrl-C to stop", file=sys.stderr)
        end = time.monotonic() + duration if duration else float("inf")
        while background.alive() and time.monotonic() < end:
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        if background is not None:
            background.stop()
        rclpy.try_shutdown()
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame):
    raise KeyboardInterrupt
