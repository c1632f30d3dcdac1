"""`vla ros up sim` as a separate process: the whole graph talks to this process over DDS."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import wait_for

pytest.importorskip("rclpy")

from rclpy.node import Node  # noqa: E402
from std_msgs.msg import Float64MultiArray, String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402


@pytest.mark.slow
def test_vla_ros_up_sim_runs_the_loop_in_another_process(rclpy_ctx, spinner, tiny_policy_dir):
    cmd = [sys.executable, "-m", "vla.agent.cli", "ros", "up", "sim", "-p", f"policy:={tiny_policy_dir}",
           "-p", "task_timeout_sec:=120.0", "-p", "image_size:=[64, 64]", "--instruction", "pick up the red block",
           "--duration", "120"]
    proc = subprocess.Popen(cmd, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    probe = Node("probe")
    status, task_status, actions = [], [], []
    probe.create_subscription(String, "/vla/status", lambda m: status.append(json.loads(m.data)), 10)
    probe.create_subscription(String, "/vla/task_status", lambda m: task_status.append(json.loads(m.data)), 10)
    probe.create_subscription(Float64MultiArray, "/vla/action", lambda m: actions.append(list(m.data)), 100)
    spinner(probe)
    try:
        assert wait_for(lambda: any(s["step"] >= 3 for s in status), 90), proc.poll()
        assert any(s.get("instruction") == "pick up the red block" and s["step"] > 0 for s in task_status)
        assert np.all(np.isfinite(np.array(actions)))
        client = probe.create_client(Trigger, "/vla/estop")
        assert client.wait_for_service(timeout_sec=10)
        future = client.call_async(Trigger.Request())
        assert wait_for(future.done, 10) and future.result().success
        assert wait_for(lambda: status[-1]["estopped"] and status[-1]["task"]["state"] == "cancelled", 10)
        # commands in flight, then the e-stop's halts (halt_repeats: 3, on top of those of a fault before it,
        # such as an inference overrun on a loaded machine), then silence: halts last and 1.5 s without a
        # message, within 20 s (on a loaded machine the last halt's timer tick can come more than 1.5 s late)
        seen = {"n": -1, "since": time.monotonic()}

        def settled() -> bool:
            if len(actions) != seen["n"]:
                seen["n"], seen["since"] = len(actions), time.monotonic()
            halted = len(actions) >= 3 and np.allclose(np.array(actions[-3:])[:, :4], 0)
            return halted and time.monotonic() - seen["since"] >= 1.5

        assert wait_for(settled, 20), actions[-6:]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out[-2000:]
    assert "Traceback" not in out, out[-2000:]
