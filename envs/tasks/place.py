"""Place: put a named object in a named bowl."""
from __future__ import annotations

from dataclasses import dataclass

from vla.envs import oracle
from vla.envs.tasks.base import Goal, Ref, Sampler, Task


@dataclass
class PlaceGoal(Goal):
    target: Ref
    bowl: Ref


class Place(Task):
    NAME, ENV_ID, MAX_STEPS = "place", "vla/Place-v0", 80
    TEMPLATES = ["put {obj} in {bowl}", "place {obj} into {bowl}", "move {obj} to {bowl}", "drop {obj} in {bowl}",
                 "{obj} goes into {bowl}", "transfer {obj} to the inside of {bowl}"]

    def sample(self, sampler: Sampler) -> PlaceGoal:
        shape = str(sampler.rng.choice(["block", "cylinder"], p=[0.7, 0.3]))
        target = sampler.named(shape, combo=True)
        return PlaceGoal(target, sampler.named("bowl", grounding=False))

    def goal_from_slots(self, slots, sampler: Sampler) -> PlaceGoal:
        return PlaceGoal(sampler.realize(slots["obj"]), sampler.realize(slots["bowl"]))

    def slots(self, goal: PlaceGoal) -> dict[str, str]:
        return {"obj": goal.target.text(), "bowl": goal.bowl.text()}

    def success(self, world, goal: PlaceGoal) -> bool:
        oid = goal.target.oid
        return bool(world.in_bowl(oid, goal.bowl.oid) and world.holding() != oid and world.resting(oid))

    def plan(self, world, goal: PlaceGoal):
        bowl = goal.bowl.oid
        return oracle.pick_and_place(world, goal.target.oid, world.position(bowl)[:2], oracle.bowl_floor(world, bowl))
