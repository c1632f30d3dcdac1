"""Chained commands one step at a time ("touch the red block, then push the blue cylinder to the left").

A policy given the whole chain has no memory of which step it is on: after a touch nothing in the scene has
changed, so from the camera alone it cannot tell "on the way to the second object" from "not yet at the
first" (docs/POLICY.md item 20). `CommandSteps` keeps that memory from what the policy itself observes and does,
never from the simulator: it splits the instruction at sequencing words, hands the policy the first command,
decides from the robot's state, the policy's own actions and its goal pointer's goal when that command is done,
drives the arm back to where the episode started (a named pose, as on a real arm) and hands over the next one.

When is a step done:
- something was grasped (the gripper commanded closed while the fingers stay apart) and then released: a place
  or a stack, done once the fingers are open again;
- the fingers shut high up (a push is made with them closed, a grasp closes them low), then moved along y near
  the table, and the policy then lifts or opens them: a push;
- the fingers open, never closed in this step, the hand within `REACH_XY` of the goal the pointer chose, at a
  touching height (above any grasp height, below any approach height) and the policy pausing: a touch.
"""
from __future__ import annotations

import re

import numpy as np

from vla import VLAError
from vla.models.policy.hold import SHUT

#: sequencing words between two commands (hand-written English; the held-out chain phrasings use two of them)
SPLIT = re.compile(r"\s*(?:,\s*)?(?:;\s*)?\b(?:and then|and afterwards|after that,?|afterwards|then)\b\s*")
FIRST = re.compile(r"^first\s+")
OPEN = 0.075                            # (m) finger opening: open (shut on nothing: `hold.SHUT`)
TOUCH_Z = (0.028, 0.085)                # (m) hand heights of a touch: above grasping, below the approach
REACH_XY, PAUSE = 0.02, 0.006           # (m) near the goal; a commanded step this small is a pause
TOUCH_PAUSES = 2                        # consecutive pauses at a touch
PUSH_Z, PUSH_RUN = 0.04, 0.04           # (m) a push runs this low, at least this far along y
PUSH_HIGH = 0.06                        # (m) fingers shut above this on the way down: a push, not a grasp
SHAPE = r"(?:block|cylinder|bowl)s?"
LANDMARK = re.compile(rf"\b(?:left|right) of the (?:\w+ ){{0,2}}?{SHAPE}\b")
HOME_TOL, HOME_GAIN, HOME_STEPS = 0.01, 0.5, 40
SETTLE = 2                              # steps after a release before the step counts as done


def split_commands(text: str) -> list[str]:
    """'touch the red block, then push ...' -> ['touch the red block', 'push ...']; one command stays whole."""
    parts = [p.strip(" ,;.") for p in SPLIT.split(FIRST.sub("", str(text).strip()))]
    parts = [p for p in parts if p]
    return parts if len(parts) > 1 else [str(text)]


def _objects(command: str) -> int:
    """How many objects a command names, not counting landmarks ("left of the blue bowl")."""
    return len(re.findall(rf"\b{SHAPE}\b", LANDMARK.sub("", command)))


class CommandSteps:
    """Per episode: which command of the instruction is current, and whether the arm is on its way home."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.text: str | None = None               # the instruction as given
        self.commands: list[str] | None = None
        self.index = 0
        self.home: np.ndarray | None = None       # (x, y, z, yaw) at the first observation
        self.homing = 0                           # steps taken towards home (0: not homing)
        self.done: list[str] = []                 # why each finished command was judged done
        self.home_steps = 0                       # actions taken going home, this episode
        self._step_reset()

    def _step_reset(self) -> None:
        self.held = self.released = self.closed = self.pushing = False
        # a touch names one object; a grasp or push may pause near its first at the same height
        self.single = self.commands is not None and _objects(self.current) <= 1
        self.settle = self.touch = 0
        self.push_run = 0.0
        self.prev: np.ndarray | None = None

    @property
    def active(self) -> bool:
        return self.commands is not None and len(self.commands) > 1

    @property
    def current(self) -> str:
        return self.commands[min(self.index, len(self.commands) - 1)]

    def instruction(self, obs: dict) -> str:
        """The command the policy should follow now (the whole text when it is a single command); a new
        instruction starts again from its first command, with the pose it finds as home."""
        if "instruction" not in obs or "state" not in obs:
            raise VLAError("the observation must hold 'front', 'state' and 'instruction'.")
        if self.text != str(obs["instruction"]):
            self.reset()
            self.text = str(obs["instruction"])
            self.commands = split_commands(self.text)
            state = np.asarray(obs["state"], dtype=np.float64)
            self.home = state[:4].copy()
            self._step_reset()
        return self.current

    def observe(self, state, action, goal) -> bool:
        """Record the action the policy took from `state` (with the pointer's goal `goal`, (x, y) or None);
        True when the current command has just been judged done and a later one remains."""
        if not self.active or self.index >= len(self.commands) - 1 or self.homing:
            return False
        s, a = np.asarray(state, dtype=np.float64), np.asarray(action, dtype=np.float64)
        z, opening, close = s[2], s[4], a[4] > 0.5
        self.pushing = self.pushing or (close and opening < SHUT and z > PUSH_HIGH)
        if self.pushing and self.prev is not None and self.prev[2] < PUSH_Z and opening < SHUT:
            self.push_run += abs(s[1] - self.prev[1])
        done = ""
        if self.released:
            self.settle += opening > OPEN
            done = "released" if self.settle > SETTLE else ""
        elif self.held and not close and opening > SHUT:
            self.released = True
        elif close and self.closed and opening > SHUT:
            self.held = True
        elif self.push_run >= PUSH_RUN and (a[2] > 0.02 or not close):
            done = "pushed"
        elif self.single and not self.closed and not close and opening > OPEN and goal is not None \
                and TOUCH_Z[0] < z < TOUCH_Z[1] and abs(a[2]) < PAUSE \
                and np.hypot(*(s[:2] - np.asarray(goal, dtype=np.float64).reshape(-1)[:2])) < REACH_XY:
            self.touch += 1
            done = "touched" if self.touch >= TOUCH_PAUSES else ""
        else:
            self.touch = 0
        self.closed = self.closed or close
        self.prev = s
        if done:
            self.done.append(done)
            self.index += 1
            self.homing = 1
            self._step_reset()
        return bool(done)

    def home_action(self, state, low, high) -> np.ndarray | None:
        """The next step back to the episode's start pose (rise first, then across, fingers open), within the
        action bounds `low`, `high` (D,), or None once there (or after `HOME_STEPS`), which ends the homing.
        The env's `home_action` does the same from the commanded target; a policy has only the measured pose,
        hence the gain below 1 (a step late, full steps overshoot)."""
        s = np.asarray(state, dtype=np.float64)
        delta = self.home[:3] - s[:3]
        if np.linalg.norm(delta) <= HOME_TOL or self.homing > HOME_STEPS:
            self.homing = 0
            return None
        self.homing += 1
        self.home_steps += 1
        action = np.zeros(len(low))
        action[:3] = HOME_GAIN * delta
        if delta[2] > 0.03:
            action[:2] = 0.0
        action[3] = HOME_GAIN * (self.home[3] - s[3])
        action[4] = low[4]                        # fingers open
        return np.clip(action, low, high).astype(np.float32)
