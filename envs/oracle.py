"""Scripted expert: waypoint skills built from privileged state, and a follower that turns them into actions.

Skills return lists of `Waypoint`s; `Oracle.act` moves the commanded end-effector target toward the current
waypoint at most one action bound per step and re-plans whenever a plan ends without the goal holding.

`Oracle.act_on_policy` is the same expert for states someone else drove the arm into (DAgger, Ross et al. 2011):
it plans afresh from the current state every step and resumes the plan where the arm already is, rather than
where the oracle's own progress left it (its follower only advances once the commanded target sits exactly on a
waypoint, which a learned policy's target never does).
"""
from __future__ import annotations

import numpy as np

from vla.envs import vocab
from vla.envs.robot import FINGER_OPEN
from vla.envs.tasks.base import Waypoint
from vla.envs.world import World

SAFE_Z = 0.16
MAX_STEP = 0.05
MAX_YAW = 0.3
STALL_STEPS = 4
REACHED = 0.012    # (m) an arm driven by someone else is at a waypoint this close to it
ON_SEGMENT = 0.015  # (m) ... and on its way from one waypoint to the next this close to the segment
SETTLED = 0.004    # (m) fingers within this of fully open are open; closer together than this, shut on nothing


def grasp_yaw(world: World, oid: int) -> float:
    """A gripper yaw in [-pi/4, pi/4] aligned with a block's faces (any yaw suits a cylinder)."""
    if world.spec(oid).shape != "block":
        return 0.0
    return float((world.yaw(oid) + np.pi / 4) % (np.pi / 2) - np.pi / 4)


def grasp_height(world: World, oid: int) -> float:
    """Height of the grasp point for an object: 2.5 cm below its top, at least 1.2 cm above the table."""
    pos, h = world.position(oid), world.spec(oid).height()
    return float(max(pos[2] + h / 2 - 0.025, pos[2] - h / 2 + 0.012))


def pick(world: World, oid: int) -> list[Waypoint]:
    """Grasp `oid` from above and lift it; only the lift once it is held."""
    pos, yaw = world.position(oid), grasp_yaw(world, oid)
    if world.holding() == oid:
        here = world.robot.target_pos
        return [Waypoint(np.array([here[0], here[1], SAFE_Z]), world.robot.target_yaw, True, tol=0.01)]
    z = grasp_height(world, oid)
    return [
        Waypoint(np.array([pos[0], pos[1], max(z + 0.08, 0.1)]), yaw, False, tol=0.01),
        Waypoint(np.array([pos[0], pos[1], z]), yaw, False, hold=1),
        Waypoint(np.array([pos[0], pos[1], z]), yaw, True, hold=3),
        Waypoint(np.array([pos[0], pos[1], SAFE_Z]), yaw, True, tol=0.01),
    ]


def place_at(world: World, oid: int, xy, bottom_z: float) -> list[Waypoint]:
    """Carry the held object `oid` over `xy` and release it with its bottom 1 cm above `bottom_z`."""
    robot = world.robot
    offset = robot.ee_pose()[0][2] - world.position(oid)[2]  # grasp point above the object's centre
    z = bottom_z + world.spec(oid).height() / 2 + 0.01 + offset
    yaw = robot.target_yaw
    return [
        Waypoint(np.array([xy[0], xy[1], SAFE_Z]), yaw, True, tol=0.01),
        Waypoint(np.array([xy[0], xy[1], z]), yaw, True),
        Waypoint(np.array([xy[0], xy[1], z]), yaw, False, hold=2),
        Waypoint(np.array([xy[0], xy[1], SAFE_Z]), yaw, False, tol=0.01),
    ]


def pick_and_place(world: World, oid: int, xy, bottom_z: float) -> list[Waypoint]:
    """Pick `oid` unless already held, then place it; the place part is planned once the object is lifted."""
    if world.holding() != oid:
        return pick(world, oid)
    return place_at(world, oid, xy, bottom_z)


def bowl_floor(world: World, bowl: int) -> float:
    return float(world.position(bowl)[2] + vocab.BOWL_WALL)


def touch(world: World, oid: int) -> list[Waypoint]:
    pos = world.position(oid)
    top = pos[2] + world.spec(oid).height() / 2
    return [
        Waypoint(np.array([pos[0], pos[1], top + 0.08]), 0.0, False, tol=0.01),
        Waypoint(np.array([pos[0], pos[1], top + 0.012]), 0.0, False, hold=1),
    ]


PUSH_BACK = 0.03     # (m) the fingers come down this far behind a pushed object's footprint
PUSH_RETREAT = 0.04  # (m) and, the push done, back off this far as they rise


def push(world: World, oid: int, goal_y: float, exact: bool = False) -> list[Waypoint]:
    """Push `oid` along y until its centre reaches `goal_y` (or passes it unless `exact`), fingers closed
    and spread across the push."""
    pos = world.position(oid)
    radius = world.spec(oid).footprint()
    sign, end = _push_line(pos[1], radius, goal_y, exact)
    back = float(push_start(pos[:2], radius, goal_y, exact)[1])
    yaw = np.pi / 2 - 0.05
    return [
        Waypoint(np.array([pos[0], back, 0.1]), yaw, True, tol=0.01),
        Waypoint(np.array([pos[0], back, 0.02]), yaw, True),
        Waypoint(np.array([pos[0], end, 0.02]), yaw, True, tol=0.006, speed=0.025),
        Waypoint(np.array([pos[0], end - sign * PUSH_RETREAT, 0.1]), yaw, True, tol=0.01),
    ]


def push_start(xy, radius: float, goal_y: float, exact: bool = False) -> np.ndarray:
    """Where `push`'s plan for an object at `xy` (footprint `radius`) brings its fingers down: behind the object."""
    sign, _ = _push_line(float(xy[1]), radius, goal_y, exact)
    return np.array([float(xy[0]), float(xy[1]) - sign * (radius + PUSH_BACK)])


def push_goal(xy, radius: float, goal_y: float, exact: bool = False) -> np.ndarray:
    """Where `push`'s plan for an object at `xy` (footprint `radius`) ends, on the table plane: the skill goal
    its demos' labels carry (`current_label`), which an agent can hand a policy's goal pointer."""
    sign, end = _push_line(float(xy[1]), radius, goal_y, exact)
    return np.array([float(xy[0]), end - sign * PUSH_RETREAT])


def _push_line(y: float, radius: float, goal_y: float, exact: bool) -> tuple[float, float]:
    """The push's direction along y and where the fingers stop."""
    sign = 1.0 if goal_y > y else -1.0
    return sign, goal_y - sign * (radius + (0.012 if exact else 0.005))


class Oracle:
    """Follows a task's waypoint plan; the task re-plans from the current state when the plan runs out."""

    def __init__(self, planner):
        self.planner = planner  # callable(world) -> list[Waypoint]
        self.plan: list[Waypoint] = []
        self.index = 0
        self.held = 0
        self.stalled = 0  # steps spent at a waypoint the arm cannot reach (blocked by an object)

    def act(self, world: World) -> np.ndarray:
        robot = world.robot
        for _ in range(8):
            if self.index >= len(self.plan):
                self.plan, self.index, self.held = _lift_first(robot, self.planner(world)), 0, 0
                if not self.plan:
                    return np.array([0, 0, 0, 0, float(robot.closed)], dtype=np.float32)
            wp = self.plan[self.index]
            err = wp.pos - robot.target_pos
            yaw_err = wp.yaw - robot.target_yaw  # both within the yaw limits, no wrapping
            actual = np.linalg.norm(wp.pos - robot.ee_pose()[0])
            grip_done = robot.closed == wp.close
            arrived = np.linalg.norm(err) < 1e-4 and abs(yaw_err) < 1e-3 and grip_done
            self.stalled = self.stalled + 1 if arrived and actual >= wp.tol else 0
            if arrived and (actual < wp.tol or self.stalled > STALL_STEPS):
                if self.held >= wp.hold:
                    self.index, self.held, self.stalled = self.index + 1, 0, 0
                    continue
                self.held += 1
            break
        return _toward(robot, wp)

    def act_on_policy(self, world: World) -> np.ndarray:
        """The expert's action from a state another controller produced: a fresh plan from the state, resumed
        at `resume_index`; leaves `plan` and `index` describing it (for the training labels)."""
        robot = world.robot
        plan = self.planner(world)
        self.held, self.stalled, self.plan, self.index = 0, 0, plan, resume_index(world, plan) if plan else 0
        if not plan:
            return np.array([0, 0, 0, 0, float(robot.closed)], dtype=np.float32)
        if self.index == 0:  # not under way: rise before travelling, as the oracle does
            self.plan = _lift_first(robot, plan)
            self.index = resume_index(world, self.plan)
        return _toward(robot, self.plan[self.index])


def _toward(robot, wp: Waypoint) -> np.ndarray:
    """One action moving the commanded target toward `wp` (at most `wp.speed` per axis), gripper as `wp` says."""
    err = wp.pos - robot.target_pos
    step = err * min(1.0, min(wp.speed, MAX_STEP) / max(np.abs(err).max(), 1e-9))
    dyaw = float(np.clip(wp.yaw - robot.target_yaw, -MAX_YAW, MAX_YAW))
    return np.array([*step, dyaw, 1.0 if wp.close else 0.0], dtype=np.float32)


def resume_index(world: World, plan: list[Waypoint]) -> int:
    """The first waypoint of `plan` the arm has still to reach, judged from the state alone. The arm is past
    every waypoint before the latest stretch between two waypoints it is on, gripper as both want (below an
    approach from above, along a push), and past a waypoint it is at with the gripper as it wants and settled
    (a closing grasp holds something or has shut on nothing, an opening one is open)."""
    robot = world.robot
    ee = robot.ee_pose()[0]
    k = 0
    for j in range(len(plan) - 1):  # the latest stretch the arm is on (a push moves its start along)
        if robot.closed == plan[j].close == plan[j + 1].close and _on_segment(ee, plan[j].pos, plan[j + 1].pos):
            k = j + 1
    while k + 1 < len(plan):
        wp, nxt = plan[k], plan[k + 1]
        if robot.closed != wp.close:
            break
        if np.linalg.norm(ee - wp.pos) < max(wp.tol, REACHED):
            if wp.hold and not _settled(world, wp.close):
                break
        elif nxt.close != wp.close or not _on_segment(ee, wp.pos, nxt.pos):
            break
        k += 1
    return k


def _settled(world: World, close: bool) -> bool:
    opening = world.robot.opening()
    if close:
        return world.holding() is not None or opening < SETTLED
    return opening > 2 * FINGER_OPEN - SETTLED


def _on_segment(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether `p` lies past `a` on the way to `b`, within ON_SEGMENT of the segment."""
    ab = b - a
    length2 = float(ab @ ab)
    if length2 < 1e-8:
        return False
    t = float((p - a) @ ab) / length2
    return 0.0 < t <= 1.0 and float(np.linalg.norm(a + t * ab - p)) < ON_SEGMENT


def _lift_first(robot, plan: list[Waypoint]) -> list[Waypoint]:
    """Rise vertically before travelling sideways to a higher first waypoint, so nothing is dragged along."""
    if not plan:
        return plan
    here, first = robot.target_pos, plan[0].pos
    if np.linalg.norm(first[:2] - here[:2]) > 0.02 and here[2] < first[2] - 0.01:
        return [Waypoint(np.array([here[0], here[1], first[2]]), robot.target_yaw, robot.closed, tol=0.01)] + plan
    return plan
