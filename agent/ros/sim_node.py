"""`vla_sim_robot`: a task-suite scene run as if it were a robot, so the whole loop runs with no hardware.

Publishes camera frames on `image_topic` and the 12-d robot state as sensor_msgs/JointState on
`joint_states_topic` (names `params.STATE_NAMES`: the end-effector pose as virtual joints, the gripper
opening, the seven arm joints) at `camera_rate_hz`; executes actions from `action_topic` (Float64MultiArray
of 5 per-step deltas, or TwistStamped velocities plus a Float64 gripper command in `input_mode: twist`);
publishes JSON {"episode", "seed", "instruction", "step", "success", "done"} on `status_topic` after every
step and at 1 Hz. A command on `instruction_topic` rebuilds the scene to match it (seed = `seed` + episode).

With `sync: true` the scene steps once per received action, lockstep with the policy, and a frame keeps
its render stamp until the state changes. Only the first frame of a commanded episode (one built for an
instruction) is re-stamped, after a second with no action, so a policy that took the command after that frame
arrived still sees a fresh image. Later frames never are: a frame re-stamped while an action is on its way
would be a second observation of one state. Nor is the scene built at start-up before any command: a policy
taking the first command could meet a re-stamp of it just before the commanded scene replaces it.
With `sync: false` it steps on a `control_rate_hz` timer with the latest command (zero motion, gripper held
when none came), like a real arm.
"""
from __future__ import annotations

import json
import threading

import numpy as np
from rclpy.node import Node
from geometry_msgs.msg import TwistStamped
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, Float64MultiArray, String

from vla import VLAError
from vla.agent.ros import image as imgconv
from vla.agent.ros import instructions, outputs
from vla.agent.ros.params import STATE_NAMES, SimParams
from vla.agent.ros.rosutil import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS, declare, now_sec, overrides

RESTAMP_SEC = 1.0  # sync mode: re-stamp a commanded episode's first frame after this long without an action


class SimRobotNode(Node):
    def __init__(self, params: SimParams | None = None, name: str = "vla_sim_robot", **kwargs):
        super().__init__(name, parameter_overrides=overrides(params) if params else [], **kwargs)
        self.p: SimParams = declare(self, SimParams)
        from vla.envs import make_env

        p = self.p
        self.env = make_env(p.task, p.split, image_size=tuple(p.image_size), max_steps=p.max_steps or None)
        self.lock = threading.RLock()
        self.episode, self.gripper, self.pending = -1, 0.0, None
        self.counts = {"steps": 0, "rejected": 0}
        self.image_pub = self.create_publisher(Image, p.image_topic, SENSOR_QOS)
        self.joint_pub = self.create_publisher(JointState, p.joint_states_topic, SENSOR_QOS)
        self.status_pub = self.create_publisher(String, p.status_topic, RELIABLE_QOS)
        if p.input_mode == "twist":
            self.create_subscription(TwistStamped, p.action_topic, self.on_twist, RELIABLE_QOS)
            self.create_subscription(Float64, p.gripper_topic, self.on_gripper, RELIABLE_QOS)
        else:
            self.create_subscription(Float64MultiArray, p.action_topic, self.on_raw, RELIABLE_QOS)
        self.create_subscription(String, p.instruction_topic, self.on_instruction, LATCHED_QOS)
        self.create_timer(1.0 / p.camera_rate_hz, self.on_camera)
        if not p.sync:
            self.create_timer(1.0 / p.control_rate_hz, self.on_control)
        self.create_timer(1.0, self.publish_status)
        self.new_episode(None)

    # -- episodes --------------------------------------------------------------------------------
    def new_episode(self, instruction: str | None) -> None:
        """Rebuild the scene (matching `instruction` when given) with the next seed."""
        with self.lock:
            seed = self.p.seed + self.episode + 1
            options = {"instruction": instruction} if instruction else None
            self.obs, info = self.env.reset(seed=seed, options=options)  # VLAError: the scene stays as it was
            self.episode += 1
            self.seed, self.step_count, self.success, self.done = seed, 0, False, False
            self.instruction = info.get("instruction", self.obs["instruction"])
            self.gripper, self.pending = 0.0, None
            self.commanded = instruction is not None  # (see the module doc: which frames are re-stamped)
            self.stamp = now_sec(self)
            self.publish_frame()
            self.publish_status()

    def on_instruction(self, msg: String) -> None:
        """A cancel stops executing; a command with a manipulation rebuilds the scene for it; others are ignored."""
        text = msg.data.strip()
        if instructions.is_cancel(text):
            with self.lock:
                self.pending = None
            return
        command = instructions.first_manipulation(text) if text else None
        if command:
            try:
                self.new_episode(command)
            except VLAError as exc:
                self.status_pub.publish(String(data=json.dumps({"instruction": command, "error": str(exc)})))

    # -- actions ---------------------------------------------------------------------------------
    def on_raw(self, msg: Float64MultiArray) -> None:
        self.command(np.asarray(msg.data, dtype=np.float32))

    def on_twist(self, msg) -> None:
        self.command(outputs.twist_to_action(msg, self.p.control_rate_hz, self.gripper))

    def on_gripper(self, msg: Float64) -> None:
        with self.lock:
            self.gripper = float(msg.data)

    def command(self, action: np.ndarray) -> None:
        with self.lock:
            if action.shape != (5,) or not np.all(np.isfinite(action)):
                self.counts["rejected"] += 1
                self.get_logger().warning(f"rejected action {action.tolist()}", throttle_duration_sec=5.0)
                return
            self.gripper = float(action[4])
            if self.p.sync:
                self.step(action)
            else:
                self.pending = action

    def on_control(self) -> None:
        with self.lock:
            action, self.pending = self.pending, None
            if action is None:
                action = np.array([0, 0, 0, 0, self.gripper], dtype=np.float32)
            self.step(action)

    def step(self, action: np.ndarray) -> None:
        if self.done:
            return
        low, high = self.env.action_space.low, self.env.action_space.high
        self.obs, _, terminated, truncated, info = self.env.step(np.clip(action, low, high).astype(np.float32))
        self.step_count += 1
        self.counts["steps"] += 1
        self.success = bool(info.get("is_success", False))
        self.done = bool(terminated or truncated)
        self.stamp = now_sec(self)
        self.publish_frame()
        self.publish_status()

    # -- outputs ---------------------------------------------------------------------------------
    def on_camera(self) -> None:
        with self.lock:
            now = now_sec(self)
            if not self.p.sync or (self.commanded and self.step_count == 0 and now - self.stamp > RESTAMP_SEC):
                self.stamp = now
            self.publish_frame()

    def publish_frame(self) -> None:
        stamp = _stamp(self.stamp)
        # the state first: a policy node pairs each frame with the newest joint_states it holds, and the small
        # message published first is (almost always) there before the frame it belongs to
        joints = JointState(name=list(STATE_NAMES), position=[float(v) for v in self.obs["state"]])
        joints.header.stamp = stamp
        self.joint_pub.publish(joints)
        self.image_pub.publish(imgconv.to_msg(self.obs["front"], stamp, self.p.frame_id, self.p.encoding))

    def status(self) -> dict:
        with self.lock:
            return {"episode": self.episode, "seed": self.seed, "task": self.p.task, "instruction": self.instruction,
                    "step": self.step_count, "success": self.success, "done": self.done,
                    "rejected_actions": self.counts["rejected"]}

    def publish_status(self) -> None:
        self.status_pub.publish(String(data=json.dumps(self.status())))


def _stamp(seconds: float):
    from builtin_interfaces.msg import Time

    nanos = int(round(seconds * 1e9))
    return Time(sec=nanos // 1_000_000_000, nanosec=nanos % 1_000_000_000)


def main(args=None) -> None:
    """`ros2 run vla_toolkit vla_sim_robot --ros-args --params-file configs/ros/sim.yaml`."""
    import rclpy

    from vla.agent.ros.rosutil import spin

    rclpy.init(args=args)
    spin([SimRobotNode()])
