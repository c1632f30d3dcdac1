"""Keep a grasp: once the fingers have closed on something, reopening away from the goal becomes a lift.

The LM opens again when a closed gripper stays wider than any demo shows it (a block taken a little off its faces,
or fingers dragged on the table), and then closes, opens and closes in place until the episode ends (docs/POLICY.md
items 19-20: 34 grasps of one block in 160 steps). `GraspHold` (`model.action.hold`, inference only) watches
the policy's own actions and the measured finger opening: after `CLOSED` steps of a closed command with the
fingers still apart (on an object, not shut on nothing), an action that opens them is let through only near the
goal the policy is steering for, and only if that goal lies away from where the grasp began (a release over the
destination). Anywhere else the fingers stay closed and the arm rises `LIFT` m per step for `LIFT_STEPS` steps,
at most `MAX_LIFTS` times per command, and the policy plans afresh from what the camera then shows.
A release is followed, as the expert's is, by a step still and `RISE_STEPS` steps up with the fingers open: left
to itself the LM closed again on the block it had just set down and carried it off its base.
Where objects were set down in this command (`placed`) the goal pointer passes over while the fingers hold nothing
(`done_with`; "put all the red blocks": the block in the bowl is still red), and a grasp begun low that shut on
nothing reopens while rising, so that the camera sees the object again (docs/POLICY.md item 21).
"""
from __future__ import annotations

import numpy as np

SHUT, APART = 0.01, 0.079     # (m) finger opening: at most this, shut on nothing; below this, not fully open
CLOSED = 2                    # closed commands before the fingers count as holding
NEAR, MOVED = 0.04, 0.06      # (m) a release within NEAR of the goal, a goal at least MOVED from the grasp
LIFT, LIFT_STEPS, MAX_LIFTS = 0.03, 2, 3
RISE_STEPS = 3                # after a release: one step still, then this many steps up with the fingers open
LOW, MAX_MISSES = 0.05, 3     # a grasp begun below LOW (m) that shuts on nothing: open while rising LIFT_STEPS


class GraspHold:
    def __init__(self):
        self.reset()

    def reset(self, episode: bool = True) -> None:
        """Forget the grasp (a new command); `episode` also zeroes `total`."""
        if episode:
            self.total = self.total_misses = 0   # lifts and missed grasps this episode
        self.closed = 0                          # consecutive closed commands
        self.grasp_xy: np.ndarray | None = None  # where the hand was when the fingers began to close
        self.grasp_z = np.inf
        self.lifts = self.misses = 0
        self.pending: list[np.ndarray] = []      # the rest of a lift or of a release
        self.placed: list[np.ndarray] = []       # (x, y) of each release over the goal in this command
        self.held = False                        # the fingers held something at the last step
        self.goal = None                         # ... and the goal steered for then

    def filter(self, state, action: np.ndarray, goal) -> tuple[np.ndarray, bool]:
        """The action to take instead of `action` (D,) from `state` (12,), steering for `goal` ((x, y) or
        None); True when a lift or a release began (the caller should plan afresh after it)."""
        s = np.asarray(state, dtype=np.float64)
        scripted = False
        held = self.closed >= CLOSED and SHUT < s[4] < APART
        if self.held and not held and s[4] <= SHUT and self._releasing(s, self.goal):
            self.placed.append(s[:2].astype(np.float32))   # it slipped from the fingers over the destination
        self.held, self.goal = held, goal
        if held and action[4] < 0.5:
            if self._releasing(s, goal):         # let go over the destination, then rise clear of it
                self.pending = [np.array([0.0, 0.0, 0.0, 0.0, 0.0], dtype=np.float32)] + \
                    [np.array([0.0, 0.0, LIFT, 0.0, 0.0], dtype=np.float32) for _ in range(RISE_STEPS)]
                self.placed.append(s[:2].astype(np.float32))
                scripted = True
            elif self.lifts < MAX_LIFTS:
                action = np.array([0.0, 0.0, LIFT, 0.0, 1.0], dtype=np.float32)
                self.pending = [action.copy() for _ in range(LIFT_STEPS - 1)]
                self.lifts += 1
                self.total += 1
                scripted = True
        missed = self.closed >= CLOSED and s[4] <= SHUT and self.grasp_z < LOW
        if missed and action[4] < 0.5 and self.misses < MAX_MISSES:
            # a grasp that shut on nothing: rather than reopen and close again in place (the camera sees the
            # object under the hand badly), open while rising and look again
            action = np.array([0.0, 0.0, LIFT, 0.0, 0.0], dtype=np.float32)
            self.pending = [action.copy() for _ in range(LIFT_STEPS - 1)]
            self.misses += 1
            self.total_misses += 1
            scripted = True
        if action[4] > 0.5:
            if self.closed == 0:
                self.grasp_xy, self.grasp_z = s[:2].copy(), float(s[2])
            self.closed += 1
        else:
            self.closed = 0
        return action, scripted

    def done_with(self) -> list[np.ndarray] | None:
        """Where this command's objects were set down, while the fingers hold nothing (None otherwise): the goal
        pointer passes over them for the next grasp (`GoalPointer.predict(exclude=)`)."""
        return self.placed if self.placed and not self.held else None

    def _releasing(self, s: np.ndarray, goal) -> bool:
        if goal is None or self.grasp_xy is None:
            return False
        goal = np.asarray(goal, dtype=np.float64).reshape(-1)[:2]
        if not np.isfinite(goal).all():
            return False
        return bool(np.hypot(*(s[:2] - goal)) < NEAR and np.hypot(*(goal - self.grasp_xy)) > MOVED)
