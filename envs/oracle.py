"""Scripted expert: waypoint skills built from privileged state, and a follower that turns them into actions.

Skills return lists of `Waypoint`s; `Oracle.act` moves the commanded end-effector target toward the current
waypoint at most one action bound per step and re-plans whenever a plan ends without the goal holding.
"""
from __future__ import annotations

import numpy as np

from vla.envs import vocab
from vla.envs.tasks.base import Waypoint
from vla.envs.world import World

SAFE_Z = 0.16
MAX_STEP = 0.05
MAX_YAW = 0.3
STALL_STEPS = 4


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
    pos, yaw = world.position(oid), grasp_yaw(world, oid)
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


def push(world: World, oid: int, goal_y: float, exact: bool = False) -> list[Waypoint]:
    """Push `oid` along y until its centre reaches `goal_y` (or passes it unless `exact`), fingers closed
    and spread across the push."""
    pos = world.position(oid)
    sign = 1.0 if goal_y > pos[1] else -1.0
    radius = world.spec(oid).footprint()
    back = pos[1] - sign * (radius + 0.03)
    end = goal_y - sign * (radius + (0.012 if exact else 0.005))
    yaw = np.pi / 2 - 0.05
    return [
        Waypoint(np.array([pos[0], back, 0.1]), yaw, True, tol=0.01),
        Waypoint(np.array([pos[0], back, 0.02]), yaw, True),
        Waypoint(np.array([pos[0], end, 0.02]), yaw, True, tol=0.006, speed=0.025),
        Waypoint(np.array([pos[0], end - sign * 0.04, 0.1]), yaw, True, tol=0.01),
    ]


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
        step = err * min(1.0, min(wp.speed, MAX_STEP) / max(np.abs(err).max(), 1e-9))
        dyaw = float(np.clip(yaw_err, -MAX_YAW, MAX_YAW))
        return np.array([*step, dyaw, 1.0 if wp.close else 0.0], dtype=np.float32)


def _lift_first(robot, plan: list[Waypoint]) -> list[Waypoint]:
    """Rise vertically before travelling sideways to a higher first waypoint, so nothing is dragged along."""
    if not plan:
        return plan
    here, first = robot.target_pos, plan[0].pos
    if np.linalg.norm(first[:2] - here[:2]) > 0.02 and here[2] < first[2] - 0.01:
        return [Waypoint(np.array([here[0], here[1], first[2]]), robot.target_yaw, robot.closed, tol=0.01)] + plan
    return plan
