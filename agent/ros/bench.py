"""What `vla bench ros` measures, through real rclpy in this process:

- latency: camera frames (a real scene render, fresh stamps) at a given rate into `vla_policy`; the node's
  own record of camera stamp -> action published, p50/p99, and the action rate;
- soak: the same at 30 Hz for minutes, resident memory sampled throughout; growth = last - first sample
  after a warm-up tenth;
- closed loop: `vla_sim_robot` + `vla_policy` over ROS 2 vs the same (seed, instruction) episodes run
  directly (env.reset -> select_action -> env.step), success rates side by side.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from vla.agent.ros import params as P
from vla.agent.ros.graph import default_params_file
from vla.agent.ros.params import PolicyParams, SimParams
from vla.agent.ros.rosutil import Background


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class Camera:
    """A node publishing one image at `rate_hz`, stamped with the time of publishing."""

    def __init__(self, rgb: np.ndarray, rate_hz: float, topic: str = "/camera/image_raw"):
        from rclpy.node import Node
        from sensor_msgs.msg import Image

        from vla.agent.ros import image as imgconv
        from vla.agent.ros.rosutil import SENSOR_QOS

        self.node = Node("bench_camera")
        self.fields = imgconv.encode(rgb)
        self.pub = self.node.create_publisher(Image, topic, SENSOR_QOS)
        self.Image, self.sent = Image, 0
        self.node.create_timer(1.0 / rate_hz, self.tick)

    def tick(self) -> None:
        msg = self.Image(**self.fields)
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.pub.publish(msg)
        self.sent += 1


def _scene_image(size: int = 128) -> np.ndarray:
    from vla.envs import make_env

    env = make_env("pick", image_size=size)
    obs, _ = env.reset(seed=0)
    env.close()
    return obs["front"]


def run_stream(policy, rate_hz: float, seconds: float, on_sample=None, sample_every: float = 5.0) -> dict:
    """Frames at `rate_hz` into an armed policy node for `seconds`; latency, rate and RSS samples."""
    from vla.agent.ros.policy_node import PolicyNode

    rgb = _scene_image()
    policy.reset()
    policy.select_action({"front": rgb, "state": np.zeros(12, np.float32), "instruction": "pick up the red block"})
    node = PolicyNode(PolicyParams(dry_run=False, start_armed=True, task_timeout_sec=seconds + 60,
                                   stale_image_timeout_sec=5.0, inference_timeout_sec=10.0), policy=policy)
    camera = Camera(rgb, rate_hz)
    node.stats.latencies = __import__("collections").deque(maxlen=10**6)
    background = Background([node, camera.node])
    node.start_command("pick up the red block")
    start, samples, next_sample = time.monotonic(), [], 0.0
    try:
        while (elapsed := time.monotonic() - start) < seconds:
            if elapsed >= next_sample:
                samples.append((elapsed, rss_mb()))
                next_sample += sample_every
                if on_sample:
                    on_sample(elapsed)
            time.sleep(0.05)
        samples.append((time.monotonic() - start, rss_mb()))
    finally:
        background.stop()
        actions = node.task.steps if node.task else 0
        ms = np.array(node.stats.latencies) * 1e3
    return {"camera_hz": rate_hz, "frames_sent": camera.sent, "actions": int(actions),
            "rate_hz": round(actions / seconds, 2),
            "p50_ms": round(float(np.percentile(ms, 50)), 2) if len(ms) else None,
            "p99_ms": round(float(np.percentile(ms, 99)), 2) if len(ms) else None,
            "rss_samples": samples}


def rss_growth(samples: list[tuple[float, float]]) -> float:
    """MB between the first sample after the warm-up tenth and the last one."""
    end = samples[-1][0]
    warm = [mb for t, mb in samples if t >= end / 10] or [samples[-1][1]]
    return round(samples[-1][1] - warm[0], 2)


def episodes(task: str, n: int, seed: int) -> list[tuple[int, str]]:
    """(seed, instruction) pairs: the env's own sampled instruction for each seed."""
    from vla.envs import make_env

    env = make_env(task, image_size=0)
    out = []
    for k in range(n):
        _, info = env.reset(seed=seed + k)
        out.append((seed + k, info["instruction"]))
    env.close()
    return out


def run_direct(policy, task: str, eps: list[tuple[int, str]], image_size: int, progress=None) -> list[bool]:
    from vla.envs import make_env

    env = make_env(task, image_size=image_size)
    results = []
    for seed, text in eps:
        obs, info = env.reset(seed=seed, options={"instruction": text})
        policy.reset()
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(np.asarray(policy.select_action(obs), np.float32))
            done = terminated or truncated
        results.append(bool(info.get("is_success")))
        if progress:
            progress()
    env.close()
    return results


def run_ros(policy, task: str, eps: list[tuple[int, str]], image_size: int, progress=None) -> list[bool]:
    """The same episodes through vla_sim_robot <-> vla_policy; instruction k makes the sim use seed eps[k][0]."""
    from rclpy.node import Node
    from std_msgs.msg import String

    from vla.agent.ros.policy_node import PolicyNode
    from vla.agent.ros.rosutil import LATCHED_QOS
    from vla.agent.ros.sim_node import SimRobotNode

    seeds = [s for s, _ in eps]
    if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
        raise ValueError("episodes must use consecutive seeds")
    sim = SimRobotNode(SimParams(task=task, seed=seeds[0] - 1, image_size=[image_size, image_size],
                                 camera_rate_hz=10.0))
    # The policy node as `vla ros up sim` configures it (configs/ros/sim.yaml: limits that reshape nothing the
    # env's action box allows), with the bench's generous timeouts.
    sim_params = P.resolve("vla_policy", default_params_file("sim"))
    node = PolicyNode(dataclasses.replace(sim_params, task_timeout_sec=600.0, stale_image_timeout_sec=5.0,
                                          inference_timeout_sec=10.0), policy=policy)
    talker = Node("bench_talker")
    say = talker.create_publisher(String, "/vla/instruction", LATCHED_QOS)
    background = Background([sim, node, talker])
    results = []
    try:
        for seed, text in eps:
            episode = sim.episode
            say.publish(String(data=text))
            _wait(lambda: sim.status()["episode"] == episode + 1, 30)  # status() waits for the reset to finish
            if sim.status()["seed"] != seed:
                raise RuntimeError(f"the sim robot reset with seed {sim.status()['seed']}, expected {seed}")
            _wait(lambda: sim.status()["done"], 900)
            results.append(sim.status()["success"])
            # Between episodes, as an operator would: stop the command (a timed-out episode leaves it running)
            # and let its halt commands land on the finished scene, not on the next one's first frames.
            node.cancel("cancelled")
            _wait(lambda: node.gate.halts_left == 0 and not node.running(), 30)
            time.sleep(0.3)
            if progress:
                progress()
    finally:
        background.stop()
    return results


def _wait(cond, timeout: float) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError("the ROS 2 loop stopped making progress")
        time.sleep(0.01)
