"""Safe action vectors -> the ROS 2 messages of each `output_mode`.

- `twist`: geometry_msgs/TwistStamped for servoing (e.g. moveit_servo `delta_twist_cmds`); per-step deltas
  become velocities (x rate), the gripper goes out separately as std_msgs/Float64.
- `joint`: trajectory_msgs/JointTrajectory with one point `1 / rate` ahead: current positions + deltas.
- `raw`: std_msgs/Float64MultiArray carrying the action as is.
"""
from __future__ import annotations

import numpy as np


def twist(action: np.ndarray, rate_hz: float, stamp, frame_id: str):
    from geometry_msgs.msg import TwistStamped

    msg = TwistStamped()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    dx, dy, dz, dyaw = (float(v) * rate_hz for v in action[:4])
    msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = dx, dy, dz
    msg.twist.angular.z = dyaw
    return msg


def twist_to_action(msg, rate_hz: float, gripper: float) -> np.ndarray:
    """The inverse, for a robot (the sim node) that executes twists: (5,) per-step deltas + gripper."""
    t = msg.twist
    return np.array([t.linear.x / rate_hz, t.linear.y / rate_hz, t.linear.z / rate_hz,
                     t.angular.z / rate_hz, gripper], dtype=np.float32)


def joint_trajectory(action: np.ndarray, names: list[str], positions: np.ndarray, rate_hz: float, stamp,
                     frame_id: str):
    from builtin_interfaces.msg import Duration
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    msg = JointTrajectory()
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    msg.joint_names = list(names)
    point = JointTrajectoryPoint()
    n = len(names)
    point.positions = [float(p) for p in positions[:n] + action[:n]]
    nanos = int(1e9 / rate_hz)
    point.time_from_start = Duration(sec=nanos // 1_000_000_000, nanosec=nanos % 1_000_000_000)
    msg.points = [point]
    return msg


def raw(action: np.ndarray):
    from std_msgs.msg import Float64MultiArray

    return Float64MultiArray(data=[float(v) for v in action])


def gripper(action: np.ndarray):
    from std_msgs.msg import Float64

    return Float64(data=float(action[-1]))
