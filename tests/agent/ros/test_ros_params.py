"""Node parameters: dataclass defaults <- ROS 2 YAML file <- `-p name:=value`, checked with clear errors."""
import pytest

from vla import VLAError
from vla.agent.cli import main
from vla.agent.ros import params as P


def _yaml(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_file_then_overrides_with_ros_yaml_typing(tmp_path):
    path = _yaml(tmp_path, "/**:\n  ros__parameters:\n    control_rate_hz: 5\n"
                           "vla_policy:\n  ros__parameters:\n    output_mode: twist\n"
                           "    action_low: [-1, -1, -1, -1, 0]\n")
    p = P.resolve("vla_policy", path, ["dry_run:=false", "control_rate_hz:=30", "joint_names:=[a, b]"])
    assert p.output_mode == "twist" and p.dry_run is False
    assert p.control_rate_hz == 30.0 and isinstance(p.control_rate_hz, float)
    assert p.action_low == [-1.0, -1.0, -1.0, -1.0, 0.0] and p.joint_names == ["a", "b"]
    assert P.resolve("vla_policy").dry_run is True and P.resolve("vla_policy").start_armed is False


@pytest.mark.parametrize("overrides, words", [
    (["dryrun:=false"], "unknown parameter 'dryrun'.*Did you mean 'dry_run'"),
    (["dry_run:=maybe"], "'dry_run' must be bool"),
    (["output_mode:=servo"], "output_mode 'servo' is not known"),
    (["output_mode:=joint"], "needs joint_names"),
    (["control_rate_hz:=0"], "control_rate_hz must be > 0"),
    (["action_low:=[1, 1, 1, 1, 1]"], "action_low entry must be <="),
    (["dry_run"], "must look like name:=value"),
])
def test_bad_overrides_name_the_problem(overrides, words):
    with pytest.raises(VLAError, match=words):
        P.resolve("vla_policy", None, overrides)


def test_bad_files_name_the_problem(tmp_path):
    with pytest.raises(VLAError, match="does not exist"):
        P.read_file(tmp_path / "nope.yaml", "vla_policy")
    with pytest.raises(VLAError, match="not valid YAML"):
        P.read_file(_yaml(tmp_path, "a: [1,"), "vla_policy")
    with pytest.raises(VLAError, match="ros__parameters mapping"):
        P.read_file(_yaml(tmp_path, "vla_policy: [1, 2]"), "vla_policy")


def test_node_reads_parameters_as_ros2_run_passes_them(rclpy_ctx, tmp_path):
    """`ros2 run ... --ros-args --params-file F -p x:=y`: the node's own declarations pick them up."""
    from rclpy.node import Node

    from vla.agent.ros.rosutil import declare, overrides

    path = _yaml(tmp_path, "vla_sim_robot:\n  ros__parameters:\n    task: stack\n    image_size: [32, 48]\n")
    node = Node("vla_sim_robot", cli_args=["--ros-args", "--params-file", str(path), "-p", "camera_rate_hz:=25"])
    try:
        values = declare(node, P.SimParams)
    finally:
        node.destroy_node()
    assert (values.task, values.image_size, values.camera_rate_hz) == ("stack", [32, 48], 25.0)
    node = Node("probe", parameter_overrides=overrides(P.SimParams(task="push", sync=False)))
    try:
        values = declare(node, P.SimParams)
    finally:
        node.destroy_node()
    assert (values.task, values.sync, values.split) == ("push", False, "seen")


def test_cli_errors_exit_2_without_traceback(capsys):
    assert main(["ros", "graph", "-p", "output_mode:=servo"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: output_mode 'servo'") and "Traceback" not in err
    assert main(["ros", "graph", "moon"]) == 2
    assert "unknown graph 'moon'" in capsys.readouterr().err
    assert main(["ros", "bag2lerobot", "/nonexistent.mcap", "/tmp/x"]) == 2
    assert "does not exist" in capsys.readouterr().err
