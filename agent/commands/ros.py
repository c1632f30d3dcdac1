"""`vla ros ACTION`: run the ROS 2 nodes and tools without the ROS 2 CLI.

  vla ros up [sim|robot] [--params F] [-p name:=value ...]   the graph `ros2 launch` starts
  vla ros policy | sim [--params F] [-p name:=value ...]     one node
  vla ros graph [sim|robot] [--json]                         what `up` would start
  vla ros record OUT.mcap [--topics ...] [--duration S]      record the graph's topics to a rosbag2 (MCAP)
  vla ros bag2lerobot BAG OUT_DIR                            a bag -> LeRobot v3.0 dataset

Every action takes --params FILE and -p name:=value; record and bag2lerobot read topic names from them.
"""
from __future__ import annotations

import argparse
import json

from vla import VLAError

ACTIONS = ("up", "policy", "sim", "graph", "record", "bag2lerobot")


def _node_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", metavar="FILE", help="ROS 2 parameters YAML (default: configs/ros/<graph>.yaml "
                                                    "for up/graph, built-in defaults for a single node)")
    p.add_argument("-p", dest="overrides", metavar="NAME:=VALUE", action="append", default=[],
                   help="override one parameter, e.g. -p dry_run:=false (repeatable)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    p.add_argument("--instruction", default="", help="publish this command once the nodes are up")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="start a whole graph (sim: sim robot + policy; robot: policy on a camera)")
    up.add_argument("graph", nargs="?", default="sim")
    _node_options(up)
    for name, help_ in (("policy", "start the vla_policy node"), ("sim", "start the vla_sim_robot node")):
        _node_options(sub.add_parser(name, help=help_))
    graph = sub.add_parser("graph", help="print the nodes, parameters and topics `up` would start")
    graph.add_argument("graph", nargs="?", default="sim")
    graph.add_argument("--params", metavar="FILE")
    graph.add_argument("-p", dest="overrides", metavar="NAME:=VALUE", action="append", default=[])
    graph.add_argument("--json", action="store_true")
    rec = sub.add_parser("record", help="record the graph's topics (or --topics) to a rosbag2 MCAP file")
    rec.add_argument("out", help="output .mcap file")
    rec.add_argument("--topics", nargs="+", default=None, help="default: every topic of the graph's nodes")
    rec.add_argument("--duration", type=float, default=None, help="seconds (default: until Ctrl-C)")
    conv = sub.add_parser("bag2lerobot", help="convert a recorded bag into a LeRobot v3.0 dataset")
    conv.add_argument("bag", help=".mcap file or rosbag2 directory")
    conv.add_argument("out", help="dataset directory (new or an existing dataset to append to)")
    conv.add_argument("--image-size", type=int, nargs=2, metavar=("W", "H"), default=None)
    conv.add_argument("--only-success", action="store_true", help="keep only episodes that ended in success")
    for p in (rec, conv):  # topic names and the control rate come from the same parameters as the nodes
        p.add_argument("--graph", default="sim", help="graph whose parameters name the topics (sim|robot)")
        p.add_argument("--params", metavar="FILE")
        p.add_argument("-p", dest="overrides", metavar="NAME:=VALUE", action="append", default=[])


def run(args: argparse.Namespace) -> int:
    from vla.agent.ros import graph as G
    from vla.agent.ros import launcher

    if args.action in ("up", "graph"):
        description = G.describe(args.graph, args.params, args.overrides)
        if args.action == "graph":
            _print_graph(description, args.json)
            return 0
        launcher.run(description, args.duration, args.instruction)
        return 0
    if args.action in ("policy", "sim"):
        executable = {"policy": "vla_policy", "sim": "vla_sim_robot"}[args.action]
        launcher.run(launcher.single(executable, args.params, args.overrides), args.duration, args.instruction)
        return 0
    if args.action == "record":
        return _record(args)
    return _convert(args)


def _print_graph(description: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(description))
        return
    print(f"graph {description['graph']} (parameters: {description['params_file']})")
    for node in description["nodes"]:
        remaps = ", ".join(f"{a} -> {b}" for a, b in node["remappings"]) or "none"
        print(f"  {node['package']}/{node['executable']} as {node['name']} (remappings: {remaps})")
        for key, topic in node["topics"].items():
            print(f"    {key:28s} {topic}")


def _record(args) -> int:
    import rclpy

    from vla.agent.ros import graph as G
    from vla.agent.ros.recorder import record

    if not args.out.endswith(".mcap"):
        raise VLAError(f"the output bag must be a .mcap file, got {args.out!r}.")
    description = G.describe(args.graph, args.params, args.overrides)
    topics = args.topics or sorted({t for n in description["nodes"] for t in n["topics"].values()})
    rclpy.init(args=["vla"])
    try:
        counts = record(args.out, topics, args.duration)
    finally:
        rclpy.try_shutdown()
    print(f"wrote {args.out}: " + (", ".join(f"{t} {n}" for t, n in counts.items()) or "no messages"))
    return 0


def _convert(args) -> int:
    from vla.agent.ros import graph as G
    from vla.agent.ros.bag2lerobot import Topics, bag_to_lerobot

    nodes = {n["executable"]: n for n in G.describe(args.graph, args.params, args.overrides)["nodes"]}
    p = nodes["vla_policy"]["parameters"]
    topics = Topics(image=p["image_topic"], action=p["action_topic"], gripper=p["gripper_topic"],
                    joint_states=p["joint_states_topic"] or Topics.joint_states,
                    instruction=p["instruction_topic"], status=p["task_status_topic"] or Topics.status)
    size = tuple(args.image_size) if args.image_size else None
    result = bag_to_lerobot(args.bag, args.out, topics, p["control_rate_hz"], size, args.only_success)
    print(f"wrote {result['episodes']} episodes, {result['frames']} frames to {result['root']}")
    return 0
