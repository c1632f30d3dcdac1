"""Put all: every block of one colour goes into a named bowl (multi-object)."""
from __future__ import annotations

from dataclasses import dataclass, field

from vla.envs import oracle
from vla.envs.tasks.base import Goal, Ref, Sampler, Task

#: release points inside the bowl (offsets from its centre) so that blocks do not land on each other.
SLOTS = [(-0.025, -0.02), (0.025, 0.02), (0.02, -0.025), (-0.02, 0.025)]


@dataclass
class PutAllGoal(Goal):
    color: str
    bowl: Ref
    blocks: list[int] = field(default_factory=list)


class PutAll(Task):
    NAME, ENV_ID, MAX_STEPS = "put_all", "vla/PutAll-v0", 160
    TEMPLATES = ["put all the {color} blocks in {bowl}", "place every {color} block into {bowl}",
                 "move all {color} blocks to {bowl}", "collect the {color} blocks in {bowl}",
                 "gather each {color} block into {bowl}", "every {color} block goes in {bowl}"]

    def sample(self, sampler: Sampler) -> PutAllGoal:
        color = sampler.color("block", combo=True)
        bowl = sampler.named("bowl", grounding=False)
        return self._blocks(PutAllGoal(color, bowl), sampler)

    def goal_from_slots(self, slots, sampler: Sampler) -> PutAllGoal:
        return self._blocks(PutAllGoal(slots["color"], sampler.realize(slots["bowl"])), sampler)

    @staticmethod
    def _blocks(goal: PutAllGoal, sampler: Sampler) -> PutAllGoal:
        goal.blocks = sampler.all_of(goal.color, "block", (2, 3))
        return goal

    def slots(self, goal: PutAllGoal) -> dict[str, str]:
        return {"color": goal.color, "bowl": goal.bowl.text()}

    def primary(self, goal: PutAllGoal) -> Ref:
        return Ref(goal.color, "block", oid=goal.blocks[0])

    def success(self, world, goal: PutAllGoal) -> bool:
        held = world.holding()
        return all(world.in_bowl(b, goal.bowl.oid) and held != b and world.resting(b) for b in goal.blocks)

    def plan(self, world, goal: PutAllGoal):
        held = world.holding()
        todo = [b for b in goal.blocks if not world.in_bowl(b, goal.bowl.oid) or held == b]
        if not todo:
            return []
        oid = held if held in todo else todo[0]
        centre = world.position(goal.bowl.oid)
        dx, dy = SLOTS[goal.blocks.index(oid) % len(SLOTS)]
        return oracle.pick_and_place(world, oid, (centre[0] + dx, centre[1] + dy), oracle.bowl_floor(world, goal.bowl.oid))
