"""Fixtures for the ROS 2 tests: real rclpy on a ROS domain of this process's own, a tiny real policy."""
from __future__ import annotations

import os
import time

import pytest

# Before rclpy is imported anywhere: a domain per test process, so parallel runs never cross-talk.
os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 101)

ACTION_LOW = [-0.05, -0.05, -0.05, -0.3, 0.0]
ACTION_HIGH = [0.05, 0.05, 0.05, 0.3, 1.0]


@pytest.fixture(scope="session")
def rclpy_ctx():
    rclpy = pytest.importorskip("rclpy")
    rclpy.init()
    yield rclpy
    rclpy.try_shutdown()


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory):
    """A real VLA policy at the `debug` preset size, random init, saved as a checkpoint directory."""
    from vla.models.policy.config import load_config
    from vla.models.policy.policy import VLAPolicy

    stats = {"action": {"q01": ACTION_LOW, "q99": ACTION_HIGH}, "state": {"mean": [0.0] * 12, "std": [1.0] * 12}}
    policy = VLAPolicy.create(load_config("debug"), stats, ["pick up the red block", "lift the blue block"])
    path = tmp_path_factory.mktemp("policy") / "tiny"
    policy.save(path)
    return path


@pytest.fixture(scope="session")
def tiny_policy(tiny_policy_dir):
    from vla.models.policy.policy import load_policy

    return load_policy(tiny_policy_dir)


def wait_for(cond, timeout: float, step: float = 0.02) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(step)
    return bool(cond())


@pytest.fixture
def spinner():
    """`spinner(node, ...)` spins real nodes in the background for the test; stopped and destroyed after."""
    from vla.agent.ros.rosutil import Background

    made = []

    def make(*nodes):
        made.append(Background(nodes))
        return made[-1]

    yield make
    for background in made:
        background.stop()
