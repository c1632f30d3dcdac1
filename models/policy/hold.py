"""Keep a grasp: once the fingers have closed on something, reopening away from the goal becomes a lift.

The LM opens again when a closed gripper stays wider than any demo shows it (a block taken a little off its faces,
or fingers dragged on the table), and then closes, opens and closes in place until the episode ends (docs/POLICY.md
items 19-20: up to 30 grasps of one block). `GraspHold` (`model.action.hold`, inference only) watches the
policy's own actions and the measured finger opening: after `closed` steps of a closed command with the fingers
still apart (on an object, not shut on nothing), an action that opens them is let through only near the goal the
policy is steering for, and only if that goal lies away from where the grasp began (a release over the
destination). Anywhere else the fingers stay closed and the arm rises `LIFT` m per step for `LIFT_STEPS` steps,
at most `MAX_LIFTS` times per command, and the policy plans afresh from what the camera then shows.
"""
from __future__ import annotations

import numpy as np

SHUT, APART = 0.01, 0.079     # (m) finger opening: at most this, shut on nothing; below this, not fully open
CLOSED = 2                    # closed commands before the fingers count as holding
NEAR, MOVED = 0.04, 0.06      # (m) a release within NEAR of the goal, a goal at least MOVED from the grasp
LIFT, LIFT_STEPS, MAX_LIFTS = 0.03, 2, 3


class GraspHold:
    def __init__(self):
        self.reset()

    def reset(self, episode: bool = True) -> None:
        """Forget the grasp (a new command); `episode` also zeroes `total`."""
        if episode:
            self.total = 0                       # lifts this episode
        self.closed = 0                          # consecutive closed commands
        self.grasp_xy: np.ndarray | None = None  # where the hand was when the fingers began to close
        self.lifts = 0
        self.pending: list[np.ndarray] = []      # the rest of a lift

    def filter(self, state, action: np.ndarray, goal) -> tuple[np.ndarray, bool]:
        """The action to take instead of `action` (D,) from `state` (12,), steering for `goal` ((x, y) or
        None); True when a lift began (the caller should plan afresh after it)."""
        s = np.asarray(state, dtype=np.float64)
        lifted = False
        held = self.closed >= CLOSED and SHUT < s[4] < APART
        if held and action[4] < 0.5 and self.lifts < MAX_LIFTS and not self._releasing(s, goal):
            action = np.array([0.0, 0.0, LIFT, 0.0, 1.0], dtype=np.float32)
            self.pending = [action.copy() for _ in range(LIFT_STEPS - 1)]
            self.lifts += 1
            self.total += 1
            lifted = True
        if action[4] > 0.5:
            if self.closed == 0:
                self.grasp_xy = s[:2].copy()
            self.closed += 1
        else:
            self.closed = 0
        return action, lifted

    def _releasing(self, s: np.ndarray, goal) -> bool:
        if goal is None or self.grasp_xy is None:
            return False
        goal = np.asarray(goal, dtype=np.float64).reshape(-1)[:2]
        if not np.isfinite(goal).all():
            return False
        return bool(np.hypot(*(s[:2] - goal)) < NEAR and np.hypot(*(goal - self.grasp_xy)) > MOVED)
