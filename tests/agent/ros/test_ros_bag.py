"""Record the sim loop to a rosbag2 MCAP with real rclpy, read it back, convert it to a LeRobot dataset."""
import threading

import numpy as np
import pytest

from conftest import wait_for

pytest.importorskip("rclpy")

from rclpy.node import Node  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from vla.agent.ros.bag import msgdef, read_messages  # noqa: E402
from vla.agent.ros.params import PolicyParams, SimParams  # noqa: E402
from vla.agent.ros.rosutil import LATCHED_QOS  # noqa: E402

TOPICS = ["/camera/image_raw", "/joint_states", "/vla/action", "/vla/instruction", "/vla/task_status"]


def test_msgdef_carries_every_dependency_once():
    text = msgdef("sensor_msgs/msg/Image")
    assert text.startswith("# This message contains an uncompressed image")
    assert text.count("MSG: std_msgs/Header") == 1 and text.count("MSG: builtin_interfaces/Time") == 1


@pytest.mark.slow
def test_record_loop_then_convert_to_lerobot(rclpy_ctx, spinner, tiny_policy, tmp_path):
    from mcap.reader import make_reader

    from vla.agent.data import LeRobotDataset
    from vla.agent.ros.bag2lerobot import bag_to_lerobot
    from vla.agent.ros.policy_node import PolicyNode
    from vla.agent.ros.recorder import record
    from vla.agent.ros.sim_node import SimRobotNode

    sim = SimRobotNode(SimParams(task="pick", seed=2, image_size=[64, 64], camera_rate_hz=20.0))
    policy = PolicyNode(PolicyParams(dry_run=False, start_armed=True, joint_states_topic="/joint_states",
                                     task_status_topic="/vla/task_status", task_timeout_sec=4.0,
                                     stale_image_timeout_sec=5.0, inference_timeout_sec=5.0), policy=tiny_policy)
    talker = Node("talker")
    say = talker.create_publisher(String, "/vla/instruction", LATCHED_QOS)
    spinner(sim, policy, talker)
    bag = tmp_path / "loop.mcap"
    counts, stop = {}, threading.Event()
    recorder = threading.Thread(target=lambda: counts.update(record(bag, TOPICS, None, stop)))
    recorder.start()
    try:
        wait_for(lambda: False, 1.0)  # let the recorder discover the topics
        for text in ("pick up the red block", "lift the blue block"):
            say.publish(String(data=text))
            assert wait_for(lambda: policy.task is not None and policy.task.instruction == text, 10)
            assert wait_for(lambda: policy.task.state == "timed_out", 15)
    finally:
        stop.set()
        recorder.join(10)
    assert bag.is_file() and not (tmp_path / "loop.mcap.partial").exists()
    assert all(counts.get(t, 0) > 0 for t in TOPICS), counts
    with open(bag, "rb") as f:
        reader = make_reader(f)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
    assert {s.encoding for s in summary.schemas.values()} == {"ros2msg"}
    assert {c.message_encoding for c in summary.channels.values()} == {"cdr"}
    actions = [m for t, _, m in read_messages(bag, ["/vla/action"])]
    assert len(actions) == counts["/vla/action"] and all(len(m.data) == 5 for m in actions)

    out = tmp_path / "dataset"
    result = bag_to_lerobot(bag, out)
    assert result["episodes"] == 2 and result["frames"] >= 2
    data = LeRobotDataset(out)
    assert list(data.meta.tasks) == ["pick up the red block", "lift the blue block"]
    item = data[0]
    assert tuple(item["observation.images.front"].shape) == (3, 64, 64)
    assert np.all(np.isfinite(item["action"].numpy()))
