"""Pick: grasp a named object and lift it at least 5 cm off the table."""
from __future__ import annotations

from dataclasses import dataclass

from vla.envs import oracle
from vla.envs.tasks.base import Goal, Ref, Sampler, Task


@dataclass
class PickGoal(Goal):
    target: Ref


class Pick(Task):
    NAME, ENV_ID, MAX_STEPS = "pick", "vla/Pick-v0", 60
    TEMPLATES = ["pick up {obj}", "grasp {obj} and lift it", "lift {obj}", "grab {obj}",
                 "raise {obj} off the table", "take hold of {obj} and hold it up"]

    def sample(self, sampler: Sampler) -> PickGoal:
        shape = str(sampler.rng.choice(["block", "cylinder"], p=[0.7, 0.3]))
        return PickGoal(sampler.named(shape, combo=True))

    def goal_from_slots(self, slots, sampler: Sampler) -> PickGoal:
        return PickGoal(sampler.realize(slots["obj"]))

    def slots(self, goal: PickGoal) -> dict[str, str]:
        return {"obj": goal.target.text()}

    def success(self, world, goal: PickGoal) -> bool:
        oid = goal.target.oid
        lifted = world.position(oid)[2] - world.spec(oid).height() / 2 > 0.05
        return bool(lifted and world.holding() == oid)

    def plan(self, world, goal: PickGoal):
        return oracle.pick(world, goal.target.oid)
