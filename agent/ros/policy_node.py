"""`vla_policy`: the VLA policy as a ROS 2 node (camera + instruction in, safe actions out).

Frames arrive on `image_topic` (SensorDataQoS, depth 1: only the latest counts); an instruction on
`instruction_topic` (reliable, transient local) is a question (answered on `answer_topic` by the VQA tool),
a cancel, or a command, which the policy runs until the robot reports success on `task_status_topic`,
a cancel or a new command arrives, or `task_timeout_sec` passes. Inference runs on a worker thread, never
on the executor; every output passes the `SafetyGate` before `output_mode` turns it into a message.
Services: arm (SetBool), estop (Trigger, latching), reset (Trigger), caption (Trigger on the latest frame);
`perception_request_topic` takes JSON {"id", "tool", "inputs"} for any registered tool and answers on
`perception_response_topic` with {"id", "tool", "ok", "output" | "error"}.
"""
from __future__ import annotations

import json
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from vla import VLAError
from vla.agent.ros import image as imgconv
from vla.agent.ros import instructions, outputs
from vla.agent.ros.params import PolicyParams
from vla.agent.ros.perception import Perception
from vla.agent.ros.rosutil import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS, declare, now_sec, overrides, stamp_to_sec
from vla.agent.ros.safety import ACT, HALT, SafetyConfig, SafetyGate, Verdict
from vla.agent.ros.status import RunStats, diagnostics, status_json

#: how long a camera frame may wait for joint_states at least as new as itself before it is used anyway
JOINT_SYNC_WAIT_SEC = 0.2


@dataclass
class Frame:
    rgb: np.ndarray  # uint8 (H, W, 3) as received
    stamp: float  # header stamp, seconds
    arrived: float = 0.0  # time.monotonic() at arrival


@dataclass
class Task:
    instruction: str
    generation: int
    started: float
    state: str = "running"  # running | done | cancelled | timed_out | replaced | failed
    steps: int = 0


class PolicyNode(Node):
    def __init__(self, params: PolicyParams | None = None, policy=None, name: str = "vla_policy", **kwargs):
        super().__init__(name, parameter_overrides=overrides(params) if params else [], **kwargs)
        self.p: PolicyParams = declare(self, PolicyParams)
        self.policy = policy if policy is not None else _load_policy(self.p)
        self.gate = SafetyGate(_safety_config(self.p), armed=self.p.start_armed)
        self.lock = threading.RLock()
        self.worker = ThreadPoolExecutor(1, thread_name_prefix="vla-infer")
        self.closing = False  # set by destroy_node: callbacks still in flight submit nothing more
        self.perception = Perception(self.p.device, self._latest_rgb,
                                     {"vlm": self.p.vlm_weights, "clip": self.p.clip_weights})
        self.stats = RunStats()
        self.frame: Frame | None = None
        self.task: Task | None = None
        self.generation = 0
        self.busy_since: float | None = None  # ROS time the running inference started
        self.last_submitted = -1.0  # stamp of the last frame sent to inference
        self.joints: dict[str, float] = {}
        self.joint_stamp = 0.0  # header stamp of the newest joint_states, seconds
        self.last_command_mono = -1.0  # monotonic time the last command (act or halt) was published
        self.proposed: list[float] | None = None  # raw policy output, shown in status (useful in dry run)
        self.plan: deque = deque()  # the remaining `instructions.Routed` steps of the current command
        self.plan_text, self.plan_id = "", 0
        self._make_interfaces()
        if self.p.instruction:
            self.start_command(self.p.instruction)

    # -- wiring ----------------------------------------------------------------------------------
    def _make_interfaces(self) -> None:
        p = self.p
        action_type = {"twist": TwistStamped, "joint": JointTrajectory, "raw": Float64MultiArray}[p.output_mode]
        self.action_pub = self.create_publisher(action_type, p.action_topic, RELIABLE_QOS)
        self.gripper_pub = self.create_publisher(Float64, p.gripper_topic, RELIABLE_QOS) \
            if p.output_mode == "twist" else None
        self.status_pub = self.create_publisher(String, p.status_topic, RELIABLE_QOS)
        self.answer_pub = self.create_publisher(String, p.answer_topic, RELIABLE_QOS)
        self.perception_pub = self.create_publisher(String, p.perception_response_topic, RELIABLE_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", RELIABLE_QOS)
        self.create_subscription(Image, p.image_topic, self.on_image, SENSOR_QOS)
        self.create_subscription(String, p.instruction_topic, self.on_instruction, LATCHED_QOS)
        self.create_subscription(String, p.perception_request_topic, self.on_perception_request, RELIABLE_QOS)
        if p.joint_states_topic:
            self.create_subscription(JointState, p.joint_states_topic, self.on_joint_states, SENSOR_QOS)
        if p.task_status_topic:
            self.create_subscription(String, p.task_status_topic, self.on_task_status, RELIABLE_QOS)
        self.create_service(SetBool, p.arm_service, self.on_arm)
        self.create_service(Trigger, p.estop_service, self.on_estop)
        self.create_service(Trigger, p.reset_service, self.on_reset)
        # Captioning blocks its callback while the tool runs, so it gets its own group.
        self.create_service(Trigger, p.caption_service, self.on_caption,
                            callback_group=MutuallyExclusiveCallbackGroup())
        self.create_timer(1.0 / p.control_rate_hz, self.on_tick)
        self.create_timer(1.0, self.on_heartbeat)

    def destroy_node(self):
        if hasattr(self, "perception"):  # fully constructed
            with self.lock:
                self.closing = True
            self.worker.shutdown(wait=True, cancel_futures=True)
            self.perception.close()
        return super().destroy_node()

    # -- inputs ----------------------------------------------------------------------------------
    def on_image(self, msg: Image) -> None:
        try:
            rgb = imgconv.decode_msg(msg)
        except imgconv.ImageError as exc:
            self.stats.bad_images += 1
            self.get_logger().warning(f"dropped a camera frame: {exc}", throttle_duration_sec=5.0)
            return
        with self.lock:
            self.frame = Frame(rgb, stamp_to_sec(msg.header.stamp), time.monotonic())
            self.stats.frames += 1
            self._maybe_submit()

    def on_joint_states(self, msg: JointState) -> None:
        with self.lock:
            self.joints.update(zip(msg.name, (float(v) for v in msg.position)))
            self.joint_stamp = max(self.joint_stamp, stamp_to_sec(msg.header.stamp))
            self._maybe_submit()

    def on_instruction(self, msg: String) -> None:
        """Cancel at once, or plan with the agent's planner: a plan with a manipulation replaces the running
        one; questions and other tool-only plans are answered without interrupting it."""
        text = msg.data.strip()
        if not text:
            return
        if instructions.is_cancel(text):
            self.cancel("cancelled")
            return
        steps = instructions.route(text)
        if any(step.kind == "manipulate" for step in steps):
            with self.lock:
                self.plan_id += 1
                self.plan, self.plan_text = deque(steps), text
                self._advance()
        else:
            for step in steps:
                self._run_step(text, step, then=None)

    def _advance(self) -> None:
        """Run the current plan's next steps: tools and sentences in turn, up to the next manipulation."""
        with self.lock:
            if self.plan:
                step = self.plan.popleft()
                if step.kind == "manipulate":
                    self.start_command(step.text)
                else:
                    plan_id = self.plan_id
                    self._run_step(self.plan_text, step, then=lambda: self.plan_id == plan_id and self._advance())

    def _run_step(self, text: str, step, then) -> None:
        def reply(out: dict) -> None:
            self._answer(text, step, out)
            if then is not None:
                then()

        if step.kind == "tool":
            self.perception.submit(step.tool, step.inputs, reply)
        else:
            reply({"ok": True, "output": {"say": step.text}})

    def on_task_status(self, msg: String) -> None:
        try:
            status = json.loads(msg.data)
        except json.JSONDecodeError:
            return
        if not isinstance(status, dict) or not status.get("success"):
            return
        with self.lock:  # a success report about another instruction (e.g. the previous one) is not ours
            if self.running() and status.get("instruction", self.task.instruction) == self.task.instruction:
                self.finish("done")

    def on_perception_request(self, msg: String) -> None:
        def reply(out: dict) -> None:
            self.perception_pub.publish(String(data=json.dumps(out, default=_jsonable)))

        self.perception.request(msg.data, reply)

    # -- tasks -----------------------------------------------------------------------------------
    def start_command(self, text: str) -> None:
        """A new command replaces the running one at once: in-flight results of the old one are dropped."""
        with self.lock:
            if self.task is not None and self.task.state == "running":
                self.task.state = "replaced"
            self.generation += 1
            self.task = Task(text, self.generation, now_sec(self))
            # Act only on frames newer than the command: stamped after it came (the clocks agree to well under
            # the stale-image timeout, which assumes that already) and newer than any frame held.
            self.last_submitted = max(self.frame.stamp if self.frame else -1.0, self.task.started)
            self._reset_policy()
            self._publish_status()

    def _reset_policy(self) -> None:
        """Reset on the worker, after any inference in flight, so an old chunk cannot refill the action queue."""
        self.worker.submit(self.policy.reset)

    def cancel(self, state: str = "cancelled", halt: bool = True) -> None:
        """Stop the running command and drop the rest of its plan."""
        with self.lock:
            self.plan.clear()
            self.plan_id += 1
            self.finish(state, halt)

    def finish(self, state: str, halt: bool = True) -> None:
        with self.lock:
            if self.task is None or self.task.state != "running":
                return
            self.task.state = state
            self.generation += 1
            if halt:
                self._emit(self.gate.halt(state))
            self.answer_pub.publish(String(data=json.dumps(
                {"instruction": self.task.instruction, "result": state, "steps": self.task.steps})))
            self._publish_status()
            if state == "done":
                self._advance()
            else:
                self.plan.clear()

    def running(self) -> bool:
        return self.task is not None and self.task.state == "running"

    # -- control ---------------------------------------------------------------------------------
    def on_tick(self) -> None:
        with self.lock:
            now = now_sec(self)
            if self.running() and now - self.task.started > self.p.task_timeout_sec:
                self.finish("timed_out")
            ref = self.frame.stamp if self.frame else (self.task.started if self.running() else None)
            verdict = self.gate.watchdog(now, ref, self.busy_since, self.running())
            if verdict is not None:
                self._emit(verdict)
            self._maybe_submit()

    def _maybe_submit(self) -> None:
        """Send the newest unseen frame to the worker when idle, at most `control_rate_hz` times a second."""
        if self.closing or not self.running() or self.busy_since is not None or self.gate.estopped:
            return
        if self.frame is None:
            return
        if self.frame.stamp <= self.last_submitted:
            return
        # Pair the image with the arm's state of the same moment: a camera frame published just before its
        # joint_states would otherwise meet the previous step's state, and one before any joint_states at all a
        # state of zeros. Unstamped joint states (stamp 0) are not waited for once one has come, nor is any for
        # longer than JOINT_SYNC_WAIT_SEC.
        joints_behind = not self.joints or 0.0 < self.joint_stamp < self.frame.stamp
        if self.p.joint_states_topic and joints_behind and time.monotonic() - self.frame.arrived < JOINT_SYNC_WAIT_SEC:
            return
        # Act only on a frame that arrived after the last command went out: an older one shows the robot before
        # that command, and acting on it would count one observation twice (e.g. a camera driver or simulator
        # that re-publishes an unchanged frame with a new stamp while the command is on its way).
        if self.frame.arrived <= self.last_command_mono:
            return
        # Rate limit: a frame is due once its stamp, or the wall clock, is 3/4 of a period past the last one
        # sent. Stamps let a camera at the control rate be served on arrival, whatever the timer's phase; the
        # wall clock keeps a lockstep robot (which re-sends one stamp until it moves) going.
        period = 0.75 / self.p.control_rate_hz
        if self.frame.stamp - self.last_submitted < period and time.monotonic() - self.stats.last_submit_mono < period:
            return
        frame, task = self.frame, self.task
        self.last_submitted, self.busy_since = frame.stamp, now_sec(self)
        self.stats.last_submit_mono = time.monotonic()
        obs = {"front": imgconv.resize(frame.rgb, tuple(self.p.image_size)) if self.p.image_size else frame.rgb,
               "state": self._state(), "instruction": task.instruction}
        self.worker.submit(self._infer, obs, frame, task.generation, self.busy_since)

    def _infer(self, obs: dict, frame: Frame, generation: int, started: float) -> None:
        """Worker thread: run the policy, then hand the result to the gate (dropped if the task changed)."""
        try:
            action = np.asarray(self.policy.select_action(obs), dtype=np.float64)
        except Exception as exc:  # a failing policy must halt the robot, not kill the node
            self.get_logger().error(f"policy inference failed: {exc}", throttle_duration_sec=5.0)
            action = np.full(len(self.p.action_low), np.nan)
        self.deliver(action, frame, generation, started)

    def deliver(self, action, frame: Frame, generation: int, started: float) -> Verdict | None:
        """One policy output for `frame` -> safety gate -> topic. Returns the verdict (None if dropped)."""
        with self.lock:
            self.busy_since = None
            if generation != self.generation or not self.running():
                return None
            self.proposed = [float(v) for v in np.asarray(action, dtype=np.float64).reshape(-1)]
            now = now_sec(self)
            verdict = self.gate.filter(action, now, frame.stamp, started)
            self._emit(verdict)
            if verdict.kind == ACT:
                self.task.steps += 1
                self.stats.record_action(now - frame.stamp)  # camera stamp -> action published
            return verdict

    def _emit(self, verdict: Verdict) -> None:
        """Publish an ACT or HALT command in the configured output mode (nothing in dry run)."""
        if verdict.kind not in (ACT, HALT):
            return
        if verdict.kind == HALT:
            self.stats.halts += 1
        if self.p.dry_run:
            return
        a, p = verdict.action, self.p
        if not np.all(np.isfinite(a)):  # the gate never lets one through; this is the last line
            raise VLAError("refusing to publish a non-finite action.")
        stamp = self.get_clock().now().to_msg()
        self.last_command_mono = time.monotonic()
        if p.output_mode == "twist":
            self.action_pub.publish(outputs.twist(a, p.control_rate_hz, stamp, p.frame_id))
            if verdict.kind == ACT:
                self.gripper_pub.publish(outputs.gripper(a))
        elif p.output_mode == "joint":
            positions = np.array([self.joints.get(n, np.nan) for n in p.joint_names])
            if np.all(np.isfinite(positions)):
                self.action_pub.publish(outputs.joint_trajectory(a, p.joint_names, positions, p.control_rate_hz,
                                                                 stamp, p.frame_id))
        else:
            self.action_pub.publish(outputs.raw(a))
        self.stats.published += 1

    def _state(self) -> np.ndarray:
        return np.array([self.joints.get(n, 0.0) for n in self.p.state_names], dtype=np.float32)  # (S,)

    def _latest_rgb(self) -> np.ndarray | None:
        with self.lock:
            return None if self.frame is None else self.frame.rgb

    # -- services --------------------------------------------------------------------------------
    def on_arm(self, request, response):
        with self.lock:
            response.success, response.message = self.gate.arm(request.data)
            self._publish_status()
        return response

    def on_estop(self, request, response):
        with self.lock:
            self.gate.estop()
            self.cancel("cancelled", halt=False)
            self._emit(self.gate.halt("e-stop"))
            self._publish_status()
        response.success, response.message = True, "e-stop latched; call reset to clear it"
        return response

    def on_reset(self, request, response):
        with self.lock:
            self.cancel("cancelled")
            self.gate.reset()
            self._reset_policy()
            self._publish_status()
        response.success, response.message = True, "reset: e-stop cleared, disarmed, no task"
        return response

    def on_caption(self, request, response):
        out = self.perception.call("caption", {})
        response.success = bool(out.get("ok"))
        response.message = out["output"]["caption"] if response.success else out.get("error", "caption failed")
        return response

    # -- reporting -------------------------------------------------------------------------------
    def _answer(self, instruction: str, step, out: dict) -> None:
        """Publish a step's outcome on the answer topic: {"instruction", "step", "tool", "ok", "answer"|"error"}."""
        body = {"instruction": instruction, "step": step.text, "tool": step.tool, "ok": bool(out.get("ok"))}
        if out.get("ok"):
            body["answer"] = _answer_text(out["output"])
            if step.tool == "locate":
                body["output"] = {k: out["output"][k] for k in ("box", "center", "score") if k in out["output"]}
        else:
            body["error"] = out.get("error", "")
        self.answer_pub.publish(String(data=json.dumps(body, default=_jsonable)))

    def status(self) -> dict:
        with self.lock:
            return status_json(self.gate, self.task, self.stats, self.p, self.proposed)

    def _publish_status(self) -> None:
        self.status_pub.publish(String(data=json.dumps(self.status(), default=_jsonable)))

    def on_heartbeat(self) -> None:
        self._publish_status()
        self.diag_pub.publish(diagnostics(self.status(), self.get_name(), self.get_clock().now().to_msg()))


def _safety_config(p: PolicyParams) -> SafetyConfig:
    n = len(p.action_low)
    if p.output_mode == "joint":
        joints = tuple(range(min(len(p.joint_names), n)))
        lin, ang, hold = (), joints, tuple(range(len(joints), n))
    else:
        lin, ang, hold = (0, 1, 2), (3,), tuple(range(4, n))
    return SafetyConfig(tuple(p.action_low), tuple(p.action_high), tuple(p.max_action_delta), p.control_rate_hz,
                        p.max_linear_velocity, p.max_angular_velocity, lin, ang, hold, p.stale_image_timeout_sec,
                        p.inference_timeout_sec, p.halt_repeats)


def _load_policy(p: PolicyParams):
    from vla.models import load_policy

    return load_policy(p.policy, device=p.device)


def _answer_text(output: dict) -> str:
    for key in ("answer", "caption", "say"):
        if key in output:
            return str(output[key])
    if "box" in output:
        return f"at pixels {output['box']} (centre {output['center']}, score {output['score']:.2f})"
    return json.dumps(output, default=_jsonable)


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def main(args=None) -> None:
    """`ros2 run vla_toolkit vla_policy --ros-args --params-file configs/ros/sim.yaml`."""
    import rclpy

    from vla.agent.ros.rosutil import spin

    rclpy.init(args=args)
    spin([PolicyNode()])
