"""The ROS 2 graphs `vla ros up` starts, written once: which nodes, their parameters file and remappings.

`launch/<graph>.launch.py` declares the same graphs for `ros2 launch`; a test parses the launch files and
checks they describe exactly these nodes, parameters and topics.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vla import ROOT, VLAError, did_you_mean

PACKAGE = "vla_toolkit"  # the ament package name (package.xml)
CONFIG_DIR = ROOT / "configs" / "ros"


@dataclass(frozen=True)
class NodeSpec:
    name: str  # node name, also its section in the parameters file
    executable: str  # console script (`ros2 run vla_toolkit <executable>`)
    remappings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class GraphSpec:
    params: str  # file name under configs/ros/
    nodes: tuple[NodeSpec, ...] = field(default_factory=tuple)


GRAPHS: dict[str, GraphSpec] = {
    "sim": GraphSpec("sim.yaml", (NodeSpec("vla_sim_robot", "vla_sim_robot"), NodeSpec("vla_policy", "vla_policy"))),
    # A RealSense driver (realsense2_camera) publishes colour frames here; any camera works via this remap.
    "robot": GraphSpec("robot.yaml", (
        NodeSpec("vla_policy", "vla_policy", (("/camera/image_raw", "/camera/camera/color/image_raw"),)),)),
}


def graph(name: str) -> GraphSpec:
    if name not in GRAPHS:
        raise VLAError(f"unknown graph {name!r}; " + did_you_mean(name, GRAPHS))
    return GRAPHS[name]


def default_params_file(name: str) -> Path:
    return CONFIG_DIR / graph(name).params


def topics(values: dict, remappings) -> dict[str, str]:
    """Every `*_topic` parameter, after remapping: parameter -> the name on the wire."""
    remap = dict(remappings)
    return {k: remap.get(v, v) for k, v in sorted(values.items()) if k.endswith("_topic") and v}


def describe(name: str, params_file: str | Path | None = None, overrides: list[str] = ()) -> dict:
    """{"graph", "params_file", "nodes": [{name, package, executable, remappings, parameters, topics}]}."""
    from vla.agent.ros import params as P

    spec = graph(name)
    path = Path(params_file) if params_file else CONFIG_DIR / spec.params
    nodes = []
    for node in spec.nodes:
        cls = P.NODE_PARAMS[node.executable]
        mine = [o for o in overrides if P.parse_override(o)[0] in P.field_names(cls)]
        values = P.as_dict(P.resolve(node.executable, path, mine, node=node.name))
        nodes.append({"name": node.name, "package": PACKAGE, "executable": node.executable,
                      "remappings": [list(r) for r in node.remappings], "parameters": values,
                      "topics": topics(values, node.remappings)})
    unused = [o for o in overrides if not any(P.parse_override(o)[0] in P.field_names(P.NODE_PARAMS[n.executable])
                                              for n in spec.nodes)]
    if unused:
        raise VLAError(f"override {unused[0]!r} names no parameter of the {name} graph's nodes.")
    return {"graph": name, "params_file": str(path), "nodes": nodes}
