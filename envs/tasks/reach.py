"""Reach: touch the top of a named object with the gripper."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla.envs import oracle
from vla.envs.tasks.base import Goal, Ref, Sampler, Task


@dataclass
class ReachGoal(Goal):
    target: Ref


class Reach(Task):
    NAME, ENV_ID, MAX_STEPS = "reach", "vla/Reach-v0", 40
    TEMPLATES = ["touch {obj}", "reach for {obj}", "move the gripper to {obj}", "go to {obj}",
                 "put your fingers on {obj}", "tap the top of {obj}"]

    def sample(self, sampler: Sampler) -> ReachGoal:
        shape = str(sampler.rng.choice(["block", "cylinder", "bowl"], p=[0.6, 0.25, 0.15]))
        return ReachGoal(sampler.named(shape, combo=True))

    def goal_from_slots(self, slots, sampler: Sampler) -> ReachGoal:
        return ReachGoal(sampler.realize(slots["obj"]))

    def slots(self, goal: ReachGoal) -> dict[str, str]:
        return {"obj": goal.target.text()}

    def success(self, world, goal: ReachGoal) -> bool:
        pos = world.position(goal.target.oid)
        top = pos[2] + world.spec(goal.target.oid).height() / 2
        ee = world.robot.ee_pose()[0]
        return bool(np.linalg.norm(ee[:2] - pos[:2]) < 0.02 and -0.005 < ee[2] - top < 0.03)

    def plan(self, world, goal: ReachGoal):
        return oracle.touch(world, goal.target.oid)
