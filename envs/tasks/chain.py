"""Chain: two commands joined by "then"; succeeds when the first has held and, later, the second holds."""
from __future__ import annotations

from dataclasses import dataclass

from vla.envs.tasks.base import Goal, Ref, Sampler, Task

FIRSTS = ["reach", "place", "stack", "push"]
SECONDS = ["reach", "pick", "place", "stack", "push"]


@dataclass
class ChainGoal(Goal):
    first_task: str
    first: Goal
    second_task: str
    second: Goal
    first_template: int = 0
    second_template: int = 0
    first_done: bool = False


class Chain(Task):
    NAME, ENV_ID, MAX_STEPS = "chain", "vla/Chain-v0", 160
    TEMPLATES = ["{first} then {second}", "{first}, then {second}", "first {first}, then {second}",
                 "{first} and then {second}", "{first}; after that, {second}", "{first} and afterwards {second}"]

    def __init__(self):
        from vla.envs.tasks import TASKS

        self.tasks = {name: TASKS[name]() for name in set(FIRSTS) | set(SECONDS)}

    def sample(self, sampler: Sampler) -> ChainGoal:
        first = str(sampler.rng.choice(FIRSTS))
        second = str(sampler.rng.choice([t for t in SECONDS if t != first]))
        indices = sampler.split.template_indices(6)
        g1 = self._sub(first, sampler).sample(sampler)
        g2 = self._sub(second, sampler).sample(sampler)
        return ChainGoal(first, g1, second, g2, int(sampler.rng.choice(indices)), int(sampler.rng.choice(indices)))

    def _sub(self, name: str, sampler: Sampler) -> Task:
        sampler.task = name  # the combo rule applies to each sub-command under its own task name
        return self.tasks[name]

    def goal_from_slots(self, slots, sampler: Sampler) -> ChainGoal:
        (t1, s1, i1), (t2, s2, i2) = slots["first"], slots["second"]
        g1 = self.tasks[t1].goal_from_slots(s1, sampler)
        g2 = self.tasks[t2].goal_from_slots(s2, sampler)
        return ChainGoal(t1, g1, t2, g2, i1, i2)

    def slots(self, goal: ChainGoal) -> dict[str, str]:
        return {"first": self.tasks[goal.first_task].instruction(goal.first, goal.first_template),
                "second": self.tasks[goal.second_task].instruction(goal.second, goal.second_template)}

    def refs(self, goal: ChainGoal) -> list[Ref]:
        return goal.first.refs() + goal.second.refs()

    def primary(self, goal: ChainGoal) -> Ref:
        return self.tasks[goal.first_task].primary(goal.first)

    def progress(self, world, goal: ChainGoal) -> None:
        if not goal.first_done and self.tasks[goal.first_task].success(world, goal.first):
            goal.first_done = True

    def success(self, world, goal: ChainGoal) -> bool:
        return goal.first_done and self.tasks[goal.second_task].success(world, goal.second)

    def plan(self, world, goal: ChainGoal):
        if not goal.first_done:
            return self.tasks[goal.first_task].plan(world, goal.first)
        return self.tasks[goal.second_task].plan(world, goal.second)
