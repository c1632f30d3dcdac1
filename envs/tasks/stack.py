"""Stack: put one named block on top of another."""
from __future__ import annotations

from dataclasses import dataclass

from vla.envs import oracle
from vla.envs.tasks.base import Goal, Ref, Sampler, Task


@dataclass
class StackGoal(Goal):
    top: Ref
    base: Ref


class Stack(Task):
    NAME, ENV_ID, MAX_STEPS = "stack", "vla/Stack-v0", 80
    TEMPLATES = ["stack {obj} on {base}", "put {obj} on top of {base}", "place {obj} onto {base}",
                 "set {obj} on {base}", "build a tower with {obj} above {base}", "{obj} should sit on {base}"]

    def sample(self, sampler: Sampler) -> StackGoal:
        top = sampler.named("block", combo=True)
        return StackGoal(top, sampler.named("block", grounding=False))

    def goal_from_slots(self, slots, sampler: Sampler) -> StackGoal:
        return StackGoal(sampler.realize(slots["obj"]), sampler.realize(slots["base"]))

    def slots(self, goal: StackGoal) -> dict[str, str]:
        return {"obj": goal.top.text(), "base": goal.base.text()}

    def success(self, world, goal: StackGoal) -> bool:
        oid = goal.top.oid
        return bool(world.on(oid, goal.base.oid) and world.holding() != oid and world.resting(oid))

    def plan(self, world, goal: StackGoal):
        base = world.position(goal.base.oid)
        top_z = base[2] + world.spec(goal.base.oid).height() / 2
        return oracle.pick_and_place(world, goal.top.oid, base[:2], top_z)
