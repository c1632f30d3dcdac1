"""What an instruction on the instruction topic asks the robot to do, read by the agent's planner.

"stop" / "cancel" / "halt" / "abort" / "freeze" cancel at once without consulting anything. A sentence in the
task suite's own language (`vla.envs.parse_instruction` reads it, chains included) is one manipulation, kept
verbatim: that is the language the policy was trained on. Everything else goes through the agent's planner,
`vla.agent.planner.parse_command` (no scene needed), and becomes a list of `Routed` steps:
manipulation (the policy runs it until done), a perception tool on the latest frame (question -> vqa,
describe/recall -> caption, where-is -> locate), or a sentence to say (refusals, greetings, unsupported asks).
"""
from __future__ import annotations

from dataclasses import dataclass, field

CANCEL_WORDS = {"stop", "cancel", "halt", "abort", "freeze", "stop now", "cancel that", "e-stop"}


@dataclass(frozen=True)
class Routed:
    kind: str  # "manipulate" | "tool" | "say"
    text: str  # the policy instruction, the step's words, or the sentence to say
    tool: str | None = None
    inputs: dict = field(default_factory=dict)


def is_cancel(text: str) -> bool:
    return text.strip().lower().rstrip(".!").strip() in CANCEL_WORDS


def _clean(text: str) -> str:
    return " ".join(text.replace(" ?", "?").replace(" ,", ",").split())


def route(text: str) -> list[Routed]:
    """The steps of one instruction, in order (empty for a cancel)."""
    if is_cancel(text):
        return []
    from vla import VLAError
    from vla.agent.planner import parse_command
    from vla.envs import parse_instruction

    try:
        parse_instruction(text)
        return [Routed("manipulate", text.strip())]
    except VLAError:
        pass

    out = []
    for step in parse_command(text):
        words = _clean(step.text)
        if step.kind == "manipulate":
            out.append(Routed("manipulate", words.rstrip("?").strip()))
        elif step.kind == "question":
            out.append(Routed("tool", words, "vqa", {"question": step.query or words}))
        elif step.kind in ("describe", "recall"):
            out.append(Routed("tool", words, "caption"))
        elif step.kind == "locate":
            out.append(Routed("tool", words, "locate", {"text": step.query or words}))
        elif step.kind in ("say", "refuse"):
            out.append(Routed("say", step.reason or words))
        else:
            out.append(Routed("say", f"I can't do that on the robot ({step.kind}: {words!r})."))
    return out


def first_manipulation(text: str) -> str | None:
    """The policy instruction of the first manipulation step, if any (what a sim scene is built for)."""
    return next((r.text for r in route(text) if r.kind == "manipulate"), None)
