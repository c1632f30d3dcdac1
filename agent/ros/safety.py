"""The policy node's safety gate: a pure-Python state machine between inference and the action topic.

Every candidate action passes through `SafetyGate.filter`; the control timer calls `SafetyGate.watchdog`.
Rules: nothing moves unless armed and not e-stopped; NaN/Inf actions are never published; actions are
clipped per dimension, capped in linear/angular speed and slew-rate limited against the last published
command; stale images (by header stamp), inference overruns, e-stop, disarming and cancellation make the
gate emit a halt `halt_repeats` times and then stay silent. E-stop latches until `reset()`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ACT, HALT, SILENT = "act", "halt", "silent"


@dataclass(frozen=True)
class SafetyConfig:
    low: tuple[float, ...]
    high: tuple[float, ...]
    max_delta: tuple[float, ...]  # largest change of each dimension between consecutive commands
    control_rate_hz: float = 10.0
    max_linear_velocity: float = 0.5  # m/s over `linear_dims` (actions are per control step)
    max_angular_velocity: float = 3.0  # rad/s on each of `angular_dims`
    linear_dims: tuple[int, ...] = (0, 1, 2)
    angular_dims: tuple[int, ...] = (3,)
    hold_dims: tuple[int, ...] = (4,)  # kept at their last value by a halt (the gripper), others go to 0
    stale_image_timeout_sec: float = 0.5
    inference_timeout_sec: float = 1.0
    halt_repeats: int = 3

    def __post_init__(self):
        n = len(self.low)
        if len(self.high) != n or len(self.max_delta) != n:
            raise ValueError(f"low, high and max_delta must have the same length ({n}, {len(self.high)}, "
                             f"{len(self.max_delta)}).")
        if any(lo > hi for lo, hi in zip(self.low, self.high)):
            raise ValueError(f"every action low must be <= its high, got low={self.low} high={self.high}.")


@dataclass
class Verdict:
    kind: str  # ACT | HALT | SILENT
    action: np.ndarray | None = None  # float64 (A,), set for ACT and HALT
    reason: str = ""


@dataclass
class SafetyGate:
    cfg: SafetyConfig
    armed: bool = False
    estopped: bool = False
    last: np.ndarray | None = None  # the last published command (A,)
    fault: str = ""  # why the gate is halting / silent; "" while acting
    halts_left: int = 0
    counts: dict = field(default_factory=lambda: {"published": 0, "halts": 0, "rejected_nonfinite": 0})

    # -- state changes --------------------------------------------------------------------------
    def arm(self, on: bool) -> tuple[bool, str]:
        if on and self.estopped:
            return False, "e-stop is latched; call reset first"
        self.armed = bool(on)
        return True, "armed" if on else "disarmed"

    def estop(self) -> None:
        self.estopped = True

    def reset(self) -> None:
        """Clear the e-stop latch; the gate comes back disarmed and ramps from rest."""
        self.estopped, self.armed = False, False
        self.last, self.fault, self.halts_left = None, "", 0

    # -- decisions ------------------------------------------------------------------------------
    def blocked(self) -> str:
        """Why nothing may move right now ("" when the gate is open)."""
        if self.estopped:
            return "e-stop"
        if not self.armed:
            return "disarmed"
        return ""

    def watchdog(self, now: float, image_stamp: float | None, busy_since: float | None,
                 running: bool = True) -> Verdict | None:
        """Called every control tick: a halt/silent verdict when a fault holds, else None."""
        reason = self.blocked() or ("" if running else "idle")
        if not reason and image_stamp is not None and now - image_stamp > self.cfg.stale_image_timeout_sec:
            reason = "stale image"
        if not reason and busy_since is not None and now - busy_since > self.cfg.inference_timeout_sec:
            reason = "inference overrun"
        return self.halt(reason) if reason else None

    def filter(self, action, now: float, image_stamp: float, started: float | None = None) -> Verdict:
        """A fresh policy output -> the command to publish (clipped, rate limited) or a halt."""
        reason = self.blocked()
        if not reason and now - image_stamp > self.cfg.stale_image_timeout_sec:
            reason = "stale image"
        if not reason and started is not None and now - started > self.cfg.inference_timeout_sec:
            reason = "inference overrun"
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if not reason and a.shape[0] != len(self.cfg.low):
            reason = f"action has {a.shape[0]} values, expected {len(self.cfg.low)}"
        if not reason and not np.all(np.isfinite(a)):
            self.counts["rejected_nonfinite"] += 1
            reason = "non-finite action"
        if reason:
            return self.halt(reason)
        cmd = self.limit(a)
        self.last, self.fault, self.halts_left = cmd, "", 0
        self.counts["published"] += 1
        return Verdict(ACT, cmd.copy())

    def limit(self, a: np.ndarray) -> np.ndarray:
        """Clip per dimension, cap linear and angular speed, then slew-limit against the last command."""
        cfg = self.cfg
        a = np.clip(a, cfg.low, cfg.high)
        lin = list(cfg.linear_dims)
        if lin:
            step_max = cfg.max_linear_velocity / cfg.control_rate_hz
            norm = float(np.linalg.norm(a[lin]))
            if norm > step_max:
                a[lin] *= step_max / norm
        ang = list(cfg.angular_dims)
        if ang:
            bound = cfg.max_angular_velocity / cfg.control_rate_hz
            a[ang] = np.clip(a[ang], -bound, bound)
        prev = self.last if self.last is not None else self.rest()
        delta = np.asarray(cfg.max_delta, dtype=np.float64)
        return np.clip(a, prev - delta, prev + delta)

    def rest(self) -> np.ndarray:
        """The halt command: zero motion, held dimensions (the gripper) at their last value."""
        halt = np.zeros(len(self.cfg.low))
        for i in self.cfg.hold_dims:
            halt[i] = self.last[i] if self.last is not None else np.clip(0.0, self.cfg.low[i], self.cfg.high[i])
        return halt

    def halt(self, reason: str) -> Verdict:
        """Enter (or stay in) a fault: emit the halt command `halt_repeats` times, then go silent."""
        if reason != self.fault:
            live = self.fault == "" and self.last is not None  # a motion command is in force
            self.fault = reason
            # A fault that follows another one keeps counting down; e-stop always sends its halts.
            if live or reason == "e-stop":
                self.halts_left = self.cfg.halt_repeats
        if self.halts_left > 0:
            self.halts_left -= 1
            self.counts["halts"] += 1
            cmd = self.rest()
            self.last = cmd
            return Verdict(HALT, cmd.copy(), reason)
        return Verdict(SILENT, None, reason)
