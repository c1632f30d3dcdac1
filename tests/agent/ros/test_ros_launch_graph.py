"""The ROS 2 launch files and `vla ros up` describe the same nodes, parameters and topics.

The launch packages are not installable here, so the launch files are read with `ast`: every `Node(...)`
gives package, executable, name and remappings, and the `params` launch argument's default names the
parameters file, which is then resolved exactly as `vla ros up` resolves it.
"""
import ast
import json
from pathlib import Path

import pytest

from vla import ROOT
from vla.agent.cli import main
from vla.agent.ros import graph as G
from vla.agent.ros import params as P

LAUNCH = ROOT / "launch"


def _literal(node):
    return ast.literal_eval(node)


def _call_name(call: ast.Call) -> str:
    return call.func.id if isinstance(call.func, ast.Name) else call.func.attr


def parse_launch(path: Path) -> dict:
    tree = ast.parse(path.read_text())
    nodes, params_file = [], None
    for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
        kwargs = {k.arg: k.value for k in call.keywords}
        if _call_name(call) == "DeclareLaunchArgument" and _literal(call.args[0]) == "params":
            parts = kwargs["default_value"].args[0].elts  # PathJoinSubstitution([FindPackageShare(pkg), ...])
            assert _call_name(parts[0]) == "FindPackageShare" and _literal(parts[0].args[0]) == G.PACKAGE
            params_file = "/".join(_literal(p) for p in parts[1:])
        elif _call_name(call) == "Node":
            assert [ast.unparse(p) for p in kwargs["parameters"].elts] == ["params"]
            nodes.append({"package": _literal(kwargs["package"]), "executable": _literal(kwargs["executable"]),
                          "name": _literal(kwargs["name"]),
                          "remappings": [list(r) for r in _literal(kwargs.get("remappings", ast.List([])))]})
    return {"params_file": params_file, "nodes": nodes}


@pytest.mark.parametrize("name", sorted(G.GRAPHS))
def test_launch_file_matches_the_graph_vla_ros_up_starts(name, capsys):
    launch = parse_launch(LAUNCH / f"{name}.launch.py")
    assert launch["params_file"] == f"configs/ros/{G.GRAPHS[name].params}"
    assert main(["ros", "graph", name, "--json"]) == 0
    up = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Path(up["params_file"]) == ROOT / launch["params_file"]
    assert [(n["package"], n["executable"], n["name"], n["remappings"]) for n in up["nodes"]] == \
           [(n["package"], n["executable"], n["name"], n["remappings"]) for n in launch["nodes"]]
    for spec, node in zip(launch["nodes"], up["nodes"]):
        # The parameters ros2 launch would hand the node: its section of the same file.
        from_file = P.as_dict(P.build(P.NODE_PARAMS[spec["executable"]],
                                      P.read_file(ROOT / launch["params_file"], spec["name"])))
        assert node["parameters"] == from_file
        assert node["topics"] == G.topics(from_file, spec["remappings"])


def test_every_launch_file_is_a_known_graph_and_every_executable_is_installed():
    assert sorted(p.name.split(".")[0] for p in LAUNCH.glob("*.launch.py")) == sorted(G.GRAPHS)
    scripts = (ROOT / "pyproject.toml").read_text()
    for spec in G.GRAPHS.values():
        for node in spec.nodes:
            assert f'{node.executable} = "vla.agent.ros.' in scripts
    package_xml = (ROOT / "package.xml").read_text()
    assert f"<name>{G.PACKAGE}</name>" in package_xml and "ament_python" in package_xml
    assert (ROOT / "resource" / G.PACKAGE).is_file()


def test_sim_graph_closes_the_loop():
    desc = G.describe("sim")
    sim, policy = ({n["name"]: n for n in desc["nodes"]}[k] for k in ("vla_sim_robot", "vla_policy"))
    assert sim["topics"]["image_topic"] == policy["topics"]["image_topic"]
    assert sim["topics"]["action_topic"] == policy["topics"]["action_topic"]
    assert sim["topics"]["status_topic"] == policy["topics"]["task_status_topic"]
    assert sim["topics"]["joint_states_topic"] == policy["topics"]["joint_states_topic"]


def test_robot_graph_is_safe_by_default():
    (policy,) = G.describe("robot")["nodes"]
    assert policy["parameters"]["dry_run"] is True and policy["parameters"]["start_armed"] is False
    assert policy["topics"]["image_topic"] == "/camera/camera/color/image_raw"
