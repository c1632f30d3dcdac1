"""What the policy node reports: run counters, the `~/status` JSON and the 1 Hz diagnostics message."""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class RunStats:
    frames: int = 0
    bad_images: int = 0
    halts: int = 0
    published: int = 0
    last_submit_mono: float = 0.0
    latencies: deque = field(default_factory=lambda: deque(maxlen=200))  # image stamp -> action, seconds
    action_times: deque = field(default_factory=lambda: deque(maxlen=50))  # monotonic time of each action

    def record_action(self, latency: float) -> None:
        self.latencies.append(latency)
        self.action_times.append(time.monotonic())

    def rate_hz(self) -> float:
        t = self.action_times
        if len(t) < 2 or time.monotonic() - t[-1] > 2.0:
            return 0.0
        return (len(t) - 1) / max(t[-1] - t[0], 1e-9)

    def latency_ms(self) -> dict:
        if not self.latencies:
            return {"last": None, "p50": None, "p99": None}
        ms = np.array(self.latencies) * 1e3
        return {"last": round(float(ms[-1]), 2), "p50": round(float(np.percentile(ms, 50)), 2),
                "p99": round(float(np.percentile(ms, 99)), 2)}


def status_json(gate, task, stats: RunStats, params, proposed) -> dict:
    return {
        "armed": gate.armed,
        "estopped": gate.estopped,
        "dry_run": params.dry_run,
        "output_mode": params.output_mode,
        "fault": gate.fault,
        "task": None if task is None else {"instruction": task.instruction, "state": task.state, "steps": task.steps},
        "step": 0 if task is None else task.steps,
        "latency_ms": stats.latency_ms(),
        "rate_hz": round(stats.rate_hz(), 2),
        "last_action": None if gate.last is None else [round(float(v), 5) for v in gate.last],
        "proposed_action": proposed,
        "frames": stats.frames,
        "bad_images": stats.bad_images,
        "published": stats.published,
        "halts": stats.halts,
        "rejected_nonfinite": gate.counts["rejected_nonfinite"],
    }


def diagnostics(status: dict, name: str, stamp):
    """`status` -> diagnostic_msgs/DiagnosticArray (ERROR when e-stopped, WARN on a fault while running)."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    level, message = DiagnosticStatus.OK, "ok"
    if status["estopped"]:
        level, message = DiagnosticStatus.ERROR, "e-stop latched"
    elif status["task"] and status["task"]["state"] == "running" and status["fault"]:
        level, message = DiagnosticStatus.WARN, status["fault"]
    elif not status["armed"]:
        message = "disarmed"
    keys = ("armed", "estopped", "dry_run", "fault", "step", "rate_hz", "frames", "bad_images", "published", "halts")
    values = [KeyValue(key=k, value=str(status[k])) for k in keys]
    values.append(KeyValue(key="latency_p50_ms", value=str(status["latency_ms"]["p50"])))
    diag = DiagnosticStatus(level=level, name=f"{name}: policy", message=message, hardware_id=name, values=values)
    array = DiagnosticArray(status=[diag])
    array.header.stamp = stamp
    return array
