"""The planner: a command in plain words -> a `Plan` of typed steps grounded in the current scene.

Two planners share one interface, `plan(command, scene, memory) -> Plan`, behind a string registry:
`grammar` (default, no model: a small grammar over the task language) and `llm` (any local Hugging Face
chat model that supports tool calling through its chat template, with the same tool schemas).
"""
from __future__ import annotations

import copy
import importlib

from vla import VLAError, did_you_mean
from vla.agent.planner.compose import apply_negations, merge_pick_then_put
from vla.agent.planner.grammar import normalize, parse_clause, split_clauses
from vla.agent.planner.grounding import Memory, ground
from vla.agent.planner.steps import KINDS, ObjectRef, Plan, Step

__all__ = ["PLANNERS", "GrammarPlanner", "Memory", "ObjectRef", "Plan", "Step", "KINDS", "get_planner",
           "parse_command"]

PLANNERS: dict[str, str] = {
    "grammar": "vla.agent.planner:GrammarPlanner",
    "llm": "vla.agent.planner.llm:LLMPlanner",
}

EMPTY_REPLY = "I didn't get a command. Try 'put the red block in the green bowl' or ask 'what is on the table?'."


def parse_command(command: str) -> list[Step]:
    """Ungrounded steps for a command, in execution order (no scene needed)."""
    text = normalize(command or "")
    if not text.strip(" .,;!?"):
        return [Step("refuse", command or "", reason=EMPTY_REPLY)]
    steps: list[Step] = []
    for clause in split_clauses(text):
        steps.extend(parse_clause(clause))
    if not steps:
        return [Step("refuse", command, reason=EMPTY_REPLY)]
    return apply_negations(merge_pick_then_put(steps))


class GrammarPlanner:
    """The default planner: grammar parse, then grounding against the scene annotation."""

    name = "grammar"

    def plan(self, command: str, scene: dict, memory: Memory | None = None) -> tuple[Plan, Memory]:
        """(plan, memory after the plan). The caller's memory is not changed, so a refused plan leaves no trace."""
        memory = copy.deepcopy(memory) if memory is not None else Memory()
        steps = parse_command(command)
        steps = ground(steps, scene, memory)
        plan = Plan(command=command, steps=steps, planner=self.name)
        if plan.refused:  # nothing runs when any part cannot be grounded: no half-done commands
            plan.steps = [s for s in steps if s.kind == "refuse"]
        return plan, memory


def get_planner(name: str = "grammar", **kwargs):
    """A planner by registry name."""
    if name not in PLANNERS:
        raise VLAError(f"unknown planner {name!r}; " + did_you_mean(name, PLANNERS))
    module, _, attr = PLANNERS[name].partition(":")
    return getattr(importlib.import_module(module), attr)(**kwargs)
