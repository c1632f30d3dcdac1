"""The planner's output as typed data: object references, steps and plans.

A command becomes a `Plan`: an ordered list of `Step`s, each of one `kind`. Manipulation steps carry the
canonical instruction in the task suite's language ("put the red block in the green bowl") so the policy
sees in-distribution phrasing; the other kinds carry the tool and the text the tool gets.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

#: step kind -> the tool that carries it out ("policy" is the VLA or the oracle).
KINDS: dict[str, str | None] = {
    "manipulate": "policy",
    "question": "vqa",
    "describe": "caption",
    "locate": "locate",
    "imagine": "generate",
    "recall": "caption",
    "say": None,
    "refuse": None,
}


@dataclass(frozen=True)
class ObjectRef:
    """A referring expression as parsed: "the small red block", "it", "all the blue ones", "the other one".

    `pronoun` is "it", "them" or "other" for references resolved against the session's memory;
    `quantity` is "one" or "all"; `unknown` holds an adjective we could not read ("magenta").
    """

    text: str
    color: str | None = None
    shape: str | None = None
    size: str | None = None
    quantity: str = "one"
    pronoun: str | None = None
    relation: tuple[str, "ObjectRef"] | None = None
    unknown: str | None = None

    def describe(self) -> str:
        """Plain words for this reference ("small red block"), used in answers."""
        words = [self.unknown, self.size, self.color, self.shape or "object"]
        noun = " ".join(w for w in words if w)
        if self.quantity == "all":
            return f"{noun}s" if not noun.endswith("s") else noun
        return noun


@dataclass
class Step:
    """One thing to do. `instruction` is set for manipulation steps once grounded; `objects` maps a role
    ("object", "target") to scene object ids; `reason` is the plain-words answer of a refuse/say step."""

    kind: str
    text: str
    task: str | None = None
    refs: dict[str, ObjectRef] = field(default_factory=dict)
    side: str | None = None
    instruction: str | None = None
    query: str | None = None
    objects: dict[str, int] = field(default_factory=dict)
    reason: str | None = None
    negated: bool = False

    @property
    def tool(self) -> str | None:
        return KINDS[self.kind]

    def to_json(self) -> dict:
        out = {"kind": self.kind, "tool": self.tool, "text": self.text}
        for key in ("task", "instruction", "query", "side", "reason"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.objects:
            out["objects"] = dict(self.objects)
        return out


@dataclass
class Plan:
    """A command and its steps. `refused` is True when nothing should move (the answer says why)."""

    command: str
    steps: list[Step]
    planner: str = "grammar"

    @property
    def refused(self) -> bool:
        return any(s.kind == "refuse" for s in self.steps)

    @property
    def answer(self) -> str:
        """The plain-words reply for a refused plan (empty otherwise)."""
        return " ".join(s.reason for s in self.steps if s.kind == "refuse" and s.reason)

    def to_json(self) -> dict:
        return {"command": self.command, "planner": self.planner, "steps": [s.to_json() for s in self.steps]}


def ref_to_json(ref: ObjectRef) -> dict:
    return asdict(ref)
