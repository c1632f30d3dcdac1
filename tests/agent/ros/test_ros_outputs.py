"""Output modes on the wire: TwistStamped (+ gripper), JointTrajectory from joint_states, raw arrays."""
import time

import numpy as np
import pytest

from conftest import wait_for

pytest.importorskip("rclpy")

from geometry_msgs.msg import TwistStamped  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from vla.agent.ros import outputs  # noqa: E402
from vla.agent.ros.params import PolicyParams  # noqa: E402
from vla.agent.ros.policy_node import Frame, PolicyNode  # noqa: E402


def _deliver(node, action):
    now = node.get_clock().now().nanoseconds * 1e-9
    return node.deliver(action, Frame(np.zeros((8, 8, 3), np.uint8), now), node.generation, now)


def test_twist_mode_publishes_velocities_and_a_gripper_command(rclpy_ctx, spinner, tiny_policy):
    node = PolicyNode(PolicyParams(dry_run=False, start_armed=True, output_mode="twist", frame_id="panda_link0",
                                   control_rate_hz=10.0), policy=tiny_policy)
    peer = Node("twist_peer")
    twists, grippers = [], []
    peer.create_subscription(TwistStamped, "/vla/action", twists.append, 10)
    peer.create_subscription(Float64, "/vla/gripper", grippers.append, 10)
    spinner(node, peer)
    time.sleep(0.3)
    node.start_command("pick up the red block")
    assert _deliver(node, [0.01, -0.02, 0.03, 0.1, 1.0]).kind == "act"
    assert wait_for(lambda: twists and grippers, 5)
    t = twists[0]
    assert t.header.frame_id == "panda_link0"
    assert (t.twist.linear.x, t.twist.linear.y, t.twist.linear.z) == pytest.approx((0.1, -0.2, 0.3))
    assert t.twist.angular.z == pytest.approx(1.0) and grippers[0].data == 1.0
    back = outputs.twist_to_action(t, 10.0, grippers[0].data)  # what the sim robot executes
    np.testing.assert_allclose(back, [0.01, -0.02, 0.03, 0.1, 1.0], atol=1e-6)


def test_joint_mode_adds_deltas_to_the_measured_joint_positions(rclpy_ctx, spinner, tiny_policy):
    names = ["j1", "j2"]
    node = PolicyNode(PolicyParams(dry_run=False, start_armed=True, output_mode="joint", joint_names=names,
                                   joint_states_topic="/test_joint_states", action_low=[-0.1, -0.1, 0.0],
                                   action_high=[0.1, 0.1, 1.0], max_action_delta=[0.1, 0.1, 1.0],
                                   max_angular_velocity=1.0, control_rate_hz=10.0), policy=tiny_policy)
    peer = Node("joint_peer")
    trajectories = []
    peer.create_subscription(JointTrajectory, "/vla/action", trajectories.append, 10)
    joints = peer.create_publisher(JointState, "/test_joint_states", 10)
    spinner(node, peer)
    assert wait_for(lambda: peer.count_subscribers("/test_joint_states") > 0, 5)
    joints.publish(JointState(name=["j2", "j1", "other"], position=[0.5, -0.2, 9.0]))
    assert wait_for(lambda: node.joints.get("j1") == -0.2, 5)
    node.start_command("pick up the red block")
    assert _deliver(node, [0.05, 0.5, 0.0]).kind == "act"  # j2's delta is capped at 1 rad/s / 10 Hz
    assert wait_for(lambda: trajectories, 5)
    msg = trajectories[0]
    assert list(msg.joint_names) == names
    assert list(msg.points[0].positions) == pytest.approx([-0.15, 0.6])
    assert msg.points[0].time_from_start.nanosec == 100_000_000
