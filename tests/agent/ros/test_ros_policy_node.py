"""The vla_policy node with real rclpy and a real (tiny, random-init) VLA policy, in one process."""
import json
import time

import numpy as np
import pytest

from conftest import wait_for

pytest.importorskip("rclpy")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402

from vla.agent.ros import image as imgconv  # noqa: E402
from vla.agent.ros.params import PolicyParams  # noqa: E402
from vla.agent.ros.policy_node import Frame, PolicyNode  # noqa: E402
from vla.agent.ros.rosutil import LATCHED_QOS, SENSOR_QOS  # noqa: E402


class Peer:
    """The rest of the robot: publishes frames and instructions, records actions/answers, calls services."""

    def __init__(self, name="peer"):
        self.node = Node(name)
        self.actions, self.answers, self.responses, self.diagnostics = [], [], [], []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self.node.create_subscription(Float64MultiArray, "/vla/action",
                                      lambda m: self.actions.append(list(m.data)), 100)
        self.node.create_subscription(String, "/vla/answer", lambda m: self.answers.append(json.loads(m.data)), 10)
        self.node.create_subscription(String, "/vla/perception/response",
                                      lambda m: self.responses.append(json.loads(m.data)), 10)
        self.image_pub = self.node.create_publisher(Image, "/camera/image_raw", SENSOR_QOS)
        self.instruction_pub = self.node.create_publisher(String, "/vla/instruction", LATCHED_QOS)
        self.request_pub = self.node.create_publisher(String, "/vla/perception/request", 10)

    def frame(self, age=0.0):
        now = self.node.get_clock().now().nanoseconds * 1e-9 - age
        stamp = imgconv.to_msg(np.full((32, 32, 3), 90, np.uint8)).header.stamp
        stamp.sec, stamp.nanosec = int(now), int((now % 1) * 1e9)
        msg = imgconv.to_msg(np.random.default_rng().integers(0, 255, (32, 32, 3), dtype=np.uint8), stamp)
        self.image_pub.publish(msg)

    def say(self, text):
        self.instruction_pub.publish(String(data=text))

    def call(self, srv_type, name, request, timeout=10.0):
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout)
        future = client.call_async(request)
        assert wait_for(future.done, timeout)
        return future.result()


def _node(tiny_policy, **kw):
    # Generous stale timeout: on a loaded CI core one tiny-policy forward can take over a second.
    params = dict(dry_run=False, start_armed=True, control_rate_hz=20.0, stale_image_timeout_sec=4.0,
                  inference_timeout_sec=5.0, halt_repeats=3)
    params.update(kw)
    return PolicyNode(PolicyParams(**params), policy=tiny_policy)


def _stream(peer, seconds, rate=20.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        peer.frame()
        time.sleep(1.0 / rate)


def test_commands_produce_finite_clipped_actions_and_status(rclpy_ctx, spinner, tiny_policy):
    node, peer = _node(tiny_policy), Peer()
    spinner(node, peer.node)
    peer.say("pick up the red block")
    assert wait_for(lambda: node.running(), 5)
    _stream(peer, 2.0)
    assert wait_for(lambda: node.status()["step"] >= 3, 20)
    a = np.array(peer.actions)
    assert np.all(np.isfinite(a)) and a.shape[1] == 5
    assert np.all(a >= np.array(node.p.action_low) - 1e-9) and np.all(a <= np.array(node.p.action_high) + 1e-9)
    status = node.status()
    assert status["armed"] and status["task"]["state"] == "running" and status["step"] >= 3
    assert status["latency_ms"]["p50"] is not None
    assert wait_for(lambda: peer.diagnostics, 3)  # 1 Hz diagnostics
    diag = peer.diagnostics[-1].status[0]
    assert diag.hardware_id == "vla_policy" and {kv.key for kv in diag.values} >= {"armed", "rate_hz", "halts"}


def test_nan_actions_never_cross_the_topic(rclpy_ctx, spinner, tiny_policy):
    node, peer = _node(tiny_policy), Peer()
    spinner(node, peer.node)
    node.start_command("pick up the red block")
    rng = np.random.default_rng(0)
    finite = 0
    for i in range(60):
        action = rng.uniform(-0.04, 0.04, 5)
        if i % 3 == 1:
            action[rng.integers(5)] = [np.nan, np.inf, -np.inf][i % 3]
        else:
            finite += 1
        now = node.get_clock().now().nanoseconds * 1e-9
        node.deliver(action, Frame(np.zeros((8, 8, 3), np.uint8), now), node.generation, now)
    assert wait_for(lambda: len(peer.actions) >= finite, 5)
    time.sleep(0.3)
    assert np.all(np.isfinite(np.array(peer.actions)))
    assert node.status()["rejected_nonfinite"] == 20


def test_stale_images_halt_within_the_timeout_then_silence(rclpy_ctx, spinner, tiny_policy):
    node, peer = _node(tiny_policy, stale_image_timeout_sec=1.0), Peer()
    spinner(node, peer.node)
    peer.say("pick up the red block")
    _stream(peer, 1.5)
    assert wait_for(lambda: node.status()["published"] >= 2, 10)
    stopped = time.monotonic()
    assert wait_for(lambda: node.gate.fault == "stale image", 3)
    assert time.monotonic() - stopped < 1.0 + 0.5  # the timeout + a control period + slack for a busy CPU
    assert wait_for(lambda: node.status()["halts"] >= 3, 2)
    time.sleep(0.5)
    assert len(peer.actions) >= 3 and all(np.allclose(a[:4], 0) for a in peer.actions[-3:])  # halts went out
    count = len(peer.actions)
    time.sleep(0.5)
    assert len(peer.actions) == count  # ... and then the node went silent
    peer.frame(age=2.0)  # a frame that is already old does not wake it up
    time.sleep(0.3)
    assert len(peer.actions) == count


def test_estop_latches_and_reset_clears(rclpy_ctx, spinner, tiny_policy):
    node, peer = _node(tiny_policy), Peer()
    spinner(node, peer.node)
    peer.say("pick up the red block")
    _stream(peer, 1.0)
    assert wait_for(lambda: node.status()["published"] >= 2, 10)
    assert peer.call(Trigger, "/vla/estop", Trigger.Request()).success
    assert node.status()["estopped"] and node.status()["task"]["state"] == "cancelled"
    refused = peer.call(SetBool, "/vla/arm", SetBool.Request(data=True))
    assert not refused.success and "latched" in refused.message
    peer.say("pick up the red block")  # a new command does not move a latched robot
    _stream(peer, 1.0)
    count = len(peer.actions)
    _stream(peer, 0.5)
    assert len(peer.actions) == count and node.status()["estopped"]
    assert peer.call(Trigger, "/vla/reset", Trigger.Request()).success
    status = node.status()
    assert not status["estopped"] and not status["armed"]
    assert peer.call(SetBool, "/vla/arm", SetBool.Request(data=True)).success
    peer.say("lift the blue block")
    _stream(peer, 1.5)
    assert wait_for(lambda: len(peer.actions) > count, 10)


def test_new_instruction_and_cancel_stop_the_old_command_at_once(rclpy_ctx, spinner, tiny_policy):
    node, peer = _node(tiny_policy), Peer()
    spinner(node, peer.node)
    node.start_command("pick up the red block")
    old = node.generation
    node.start_command("lift the blue block")
    now = node.get_clock().now().nanoseconds * 1e-9
    frame = Frame(np.zeros((8, 8, 3), np.uint8), now)
    assert node.deliver([0.01, 0, 0, 0, 0], frame, old, now) is None  # the old command's result is dropped
    assert node.deliver([0.01, 0, 0, 0, 0], frame, node.generation, now).kind == "act"
    peer.say("stop")
    assert wait_for(lambda: node.task.state == "cancelled", 5)
    assert wait_for(lambda: any(a.get("result") == "cancelled" for a in peer.answers), 5)
    assert wait_for(lambda: len(peer.actions) >= 2, 5)
    assert np.allclose(peer.actions[-1][:4], 0)  # the halt went out with the cancel


def test_dry_run_publishes_nothing_but_reports_proposals(rclpy_ctx, spinner, tiny_policy):
    node, peer = _node(tiny_policy, dry_run=True), Peer()
    spinner(node, peer.node)
    peer.say("pick up the red block")
    _stream(peer, 1.5)
    assert wait_for(lambda: node.status()["proposed_action"] is not None, 10)
    time.sleep(0.2)
    assert peer.actions == []


def test_a_thousand_malformed_images_do_not_crash_the_node(rclpy_ctx, spinner, tiny_policy):
    node, peer = _node(tiny_policy), Peer()
    spinner(node, peer.node)
    rng = np.random.default_rng(0)
    kinds = []
    for i in range(1000):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        enc = ["rgb8", "bgr8", "mono16", "rgba8", "yuv422", "", "32FC1", "mono8"][i % 8]
        step = int(w * rng.integers(0, 5))
        msg = Image(height=h, width=w, encoding=enc, step=step, is_bigendian=int(rng.integers(0, 2)),
                    data=rng.integers(0, 255, int(rng.integers(0, 3 * h * w + 8)), dtype=np.uint8).tobytes())
        node.on_image(msg)  # the subscription callback itself, every frame
        if i % 5 == 0:
            peer.image_pub.publish(msg)  # and some over the wire
        kinds.append(enc)
    bad = node.status()["bad_images"]
    assert bad >= 800  # most random frames are malformed; the rest decoded as tiny pictures
    peer.say("pick up the red block")
    _stream(peer, 1.5)
    assert wait_for(lambda: node.status()["published"] >= 1, 10)  # still alive and acting


def test_perception_requests_answer_with_json_even_when_wrong(rclpy_ctx, spinner, tiny_policy):
    node, peer = _node(tiny_policy), Peer()
    spinner(node, peer.node)
    peer.request_pub.publish(String(data="not json"))
    peer.request_pub.publish(String(data=json.dumps({"id": 7, "tool": "teleport", "inputs": {}})))
    assert wait_for(lambda: len(peer.responses) >= 2, 5)
    first, second = peer.responses[:2]
    assert not first["ok"] and "must be JSON" in first["error"]
    assert second["id"] == 7 and not second["ok"] and "unknown perception tool 'teleport'" in second["error"]


@pytest.fixture(scope="module")
def tiny_vlm_dir(tmp_path_factory):
    """A real captioning / VQA model (the project's VLM) at a tiny random-init size."""
    from vla.models.vlm import new_vlm

    cfg = {"vision": {"image_size": 32, "patch_size": 16, "width": 32, "layers": 1, "head_width": 16},
           "bridge": {"num_queries": 4, "hidden_size": 32, "layers": 1, "heads": 2, "intermediate_size": 64},
           "llm": {"hidden_size": 32, "layers": 1, "heads": 2, "kv_heads": 2, "intermediate_size": 64,
                   "max_positions": 64},
           "max_answer_tokens": 8}
    path = tmp_path_factory.mktemp("vlm") / "tiny"
    new_vlm(cfg, ["a red block in a green bowl", "what colour is the block ? red"]).save(path)
    return path


def test_caption_service_without_a_frame_says_so(rclpy_ctx, spinner, tiny_policy):
    node, peer = _node(tiny_policy), Peer()
    spinner(node, peer.node)
    empty = peer.call(Trigger, "/vla/caption", Trigger.Request(), timeout=60)
    assert not empty.success and "no camera frame" in empty.message


def test_caption_service_answers_on_the_latest_frame(rclpy_ctx, spinner, tiny_policy, tiny_vlm_dir):
    node, peer = _node(tiny_policy, vlm_weights=str(tiny_vlm_dir)), Peer()
    spinner(node, peer.node)
    peer.frame()
    assert wait_for(lambda: node.frame is not None, 5)
    reply = peer.call(Trigger, "/vla/caption", Trigger.Request(), timeout=120)
    assert reply.success and isinstance(reply.message, str)
    direct = node.perception.tools["caption"](image=node.frame.rgb)["caption"]
    assert reply.message == direct  # the service's caption is the tool's caption of the latest frame


def test_a_question_is_answered_on_the_answer_topic(rclpy_ctx, spinner, tiny_policy, tiny_vlm_dir):
    node, peer = _node(tiny_policy, vlm_weights=str(tiny_vlm_dir)), Peer()
    spinner(node, peer.node)
    peer.frame()
    assert wait_for(lambda: node.frame is not None, 5)
    peer.say("what colour is the block?")
    assert wait_for(lambda: any(a.get("tool") == "vqa" for a in peer.answers), 120)
    answer = next(a for a in peer.answers if a.get("tool") == "vqa")
    assert answer["ok"] and isinstance(answer["answer"], str) and answer["instruction"] == "what colour is the block?"
    assert node.task is None  # a question does not start the policy
    peer.request_pub.publish(String(data=json.dumps({"id": "q1", "tool": "vqa", "inputs": {"question": "is it red?"}})))
    assert wait_for(lambda: any(r.get("id") == "q1" for r in peer.responses), 60)
    reply = next(r for r in peer.responses if r.get("id") == "q1")
    assert reply["ok"] and "answer" in reply["output"]


def test_instructions_go_through_the_agent_planner_and_plans_continue_after_success(rclpy_ctx, spinner,
                                                                                    tiny_policy):
    node, peer = _node(tiny_policy, task_status_topic="/vla/task_status"), Peer()
    done_pub = peer.node.create_publisher(String, "/vla/task_status", 10)
    spinner(node, peer.node)
    peer.say("hello")
    assert wait_for(lambda: any(a.get("answer", "").startswith("Hello") for a in peer.answers), 5)
    assert node.task is None  # a greeting moves nothing
    peer.say("pick up the red block, then imagine a tower of blocks")
    assert wait_for(lambda: node.running() and node.task.instruction == "pick up the red block", 5)
    assert not any("imagine" in a.get("step", "") for a in peer.answers)  # waits for the manipulation
    done_pub.publish(String(data=json.dumps({"instruction": "lift the blue block", "success": True})))
    time.sleep(0.3)
    assert node.running()  # a success report about another instruction is not ours
    done_pub.publish(String(data=json.dumps({"instruction": "pick up the red block", "success": True})))
    assert wait_for(lambda: node.task.state == "done", 5)
    assert wait_for(lambda: any("can't do that" in a.get("answer", "") for a in peer.answers), 5)


def _joint_sync_setup(tiny_policy, spinner, monkeypatch):
    """A node reading /joint_states, a peer, the states the policy saw, and `joints(x, stamp)` to publish one."""
    from sensor_msgs.msg import JointState

    from vla.agent.ros import policy_node

    monkeypatch.setattr(policy_node, "JOINT_SYNC_WAIT_SEC", 30.0)     # wait as long as the test needs
    seen = []
    real = tiny_policy.select_action
    monkeypatch.setattr(tiny_policy, "select_action", lambda obs: (seen.append(obs["state"].copy()), real(obs))[1])
    node, peer = _node(tiny_policy, joint_states_topic="/joint_states"), Peer()
    joints_pub = peer.node.create_publisher(JointState, "/joint_states", SENSOR_QOS)
    spinner(node, peer.node)

    def joints(x, stamp):
        msg = JointState(name=list(node.p.state_names), position=[x] + [0.0] * (len(node.p.state_names) - 1))
        msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), int((stamp % 1) * 1e9)
        joints_pub.publish(msg)
    return node, peer, seen, joints


def test_a_frame_waits_for_joint_states_as_new_as_itself(rclpy_ctx, spinner, tiny_policy, monkeypatch):
    """The sim robot publishes the image just before its joint_states; the policy must see the state of the
    image's moment, not the previous step's."""
    node, peer, seen, joints = _joint_sync_setup(tiny_policy, spinner, monkeypatch)
    node.start_command("pick up the red block")
    now = node.get_clock().now().nanoseconds * 1e-9
    joints(0.1, now - 1.0)
    assert wait_for(lambda: node.joint_stamp > 0, 5)
    peer.frame()                                                      # stamped now: newer than the joints
    assert wait_for(lambda: node.frame is not None, 5)
    time.sleep(0.5)
    assert seen == []                                                 # held back, not paired with x = 0.1
    joints(0.2, now + 1.0)
    assert wait_for(lambda: len(seen) >= 1, 10)
    assert seen[0][0] == pytest.approx(0.2)


def test_the_first_frame_waits_for_the_first_joint_states(rclpy_ctx, spinner, tiny_policy, monkeypatch):
    """Before any joint_states has arrived the state would read as zeros: the frame is held back for it."""
    node, peer, seen, joints = _joint_sync_setup(tiny_policy, spinner, monkeypatch)
    node.start_command("pick up the red block")
    peer.frame()
    assert wait_for(lambda: node.frame is not None, 5)
    time.sleep(0.5)
    assert seen == []                                                 # no joint_states yet: held back
    joints(0.3, node.get_clock().now().nanoseconds * 1e-9)
    assert wait_for(lambda: len(seen) >= 1, 10)
    assert seen[0][0] == pytest.approx(0.3)


def test_a_frame_that_arrived_before_the_last_command_is_not_acted_on(rclpy_ctx, tiny_policy):
    """It shows the robot before that command; acting on it would count one observation twice."""
    node = _node(tiny_policy)
    try:
        node.start_command("pick up the red block")
        node.worker.submit(lambda: None).result()                     # the reset has run
        rgb = np.zeros((32, 32, 3), np.uint8)
        now = node.get_clock().now().nanoseconds * 1e-9
        arrived = time.monotonic()
        node.last_command_mono = arrived + 0.001                      # a command went out after it arrived
        node.frame = Frame(rgb, now + 1.0, arrived)                   # (a newer stamp than anything sent)
        node._maybe_submit()
        assert node.busy_since is None
        time.sleep(0.01)
        node.frame = Frame(rgb, now + 1.0, time.monotonic())          # the same frame, arriving after it
        node._maybe_submit()
        assert node.busy_since is not None
    finally:
        node.destroy_node()
