"""Parse a sentence into a task and its slots, using the tasks' own templates (so every phrasing round-trips).

"put the small red block in the green bowl" -> task "place", slots {"obj": Ref(red small block), "bowl": ...}.
Chained commands ("touch the red block then ...") parse each part with the single-task templates.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

from vla import VLAError
from vla.envs import vocab
from vla.envs.tasks import TASKS
from vla.envs.tasks.base import Ref

REF_SLOTS = {"obj", "bowl", "base"}
#: shapes each slot may name, per task
SLOT_SHAPES = {"obj": vocab.GRASPABLE, "bowl": ["bowl"], "base": ["block"]}
REACH_SHAPES = vocab.SHAPES
STACK_SHAPES = ["block"]
REF_RE = re.compile(r"the (?:(?P<size>[a-z]+) )?(?P<color>[a-z]+) (?P<shape>[a-z]+)"
                    r"(?: (?P<relation>left of|right of) (?P<landmark>the .+))?")
EXAMPLE = "put the red block in the green bowl"


@dataclass
class ParsedInstruction:
    task: str
    slots: dict = field(default_factory=dict)
    template: int = 0
    text: str = ""


def normalize(text: str) -> str:
    return " ".join(str(text).lower().replace(",", " , ").split()).replace(" ,", ",").rstrip(".!")


@cache
def _patterns(task: str) -> list[re.Pattern]:
    out = []
    for template in TASKS[task].TEMPLATES:
        pattern = re.escape(template)
        pattern = pattern.replace(re.escape("{dest}"), r"(?P<dest>to the [a-z]+ side of the table|next to .+?|to .+?)")
        for slot in ("obj", "bowl", "base", "first", "second"):
            pattern = pattern.replace(re.escape("{" + slot + "}"), f"(?P<{slot}>.+?)")
        pattern = pattern.replace(re.escape("{color}"), "(?P<color>[a-z]+)")
        out.append(re.compile(pattern))
    return out


def parse_ref(text: str, shapes: list[str]) -> Ref:
    """'the small red block left of the blue bowl' -> Ref; raises VLAError naming the allowed words."""
    m = REF_RE.fullmatch(text)
    if not m:
        raise VLAError(f"could not read the object {text!r}; describe it as 'the [small|large] COLOUR SHAPE'.")
    size, color, shape = m.group("size"), m.group("color"), m.group("shape")
    if size and size not in vocab.SIZES:
        if color in vocab.SHAPES:  # "the red block": the regex read "red" as a size
            size, color, shape = None, size, color
        else:
            raise VLAError(f"unknown size {size!r}; allowed: {', '.join(vocab.SIZES)}.")
    if color not in vocab.COLORS:
        raise VLAError(f"unknown colour {color!r}; allowed colours: {', '.join(vocab.COLOR_NAMES)}.")
    if shape.rstrip("s") not in vocab.SHAPES or shape not in shapes:
        raise VLAError(f"unknown or unsuitable object {shape!r} here; allowed objects: {', '.join(shapes)}.")
    if size and shape != "block":
        raise VLAError(f"only blocks come in sizes ({', '.join(vocab.SIZES)}); got a {size} {shape}.")
    landmark = parse_ref(m.group("landmark"), vocab.SHAPES) if m.group("relation") else None
    if landmark is not None and landmark.relation:
        raise VLAError("a landmark cannot itself have a relation; use 'the red block left of the blue bowl'.")
    return Ref(color, shape, size, m.group("relation"), landmark)


def _destination(text: str) -> dict:
    """'to the left side of the table' -> {"side": "left"}; 'next to the blue bowl' -> {"landmark": Ref}."""
    side = re.fullmatch(r"to the ([a-z]+) side of the table", text)
    if side:
        if side.group(1) not in vocab.SIDES:
            raise VLAError(f"unknown side {side.group(1)!r}; allowed sides: {', '.join(vocab.SIDES)}.")
        return {"side": side.group(1)}
    if text.startswith("next to "):
        return {"landmark": parse_ref(text[len("next to "):], vocab.SHAPES)}
    raise VLAError(f"could not read where to push ({text!r}); say 'to the left side of the table', "
                   "'to the right side of the table' or 'next to the <object>'.")


def _slot_values(task: str, groups: dict) -> dict:
    slots = {}
    for name, value in groups.items():
        if name in REF_SLOTS:
            shapes = REACH_SHAPES if task == "reach" else STACK_SHAPES if task == "stack" else SLOT_SHAPES[name]
            slots[name] = parse_ref(value, shapes)
        elif name == "dest":
            slots.update(_destination(value))
        elif name == "color":
            if value not in vocab.COLORS:
                raise VLAError(f"unknown colour {value!r}; allowed colours: {', '.join(vocab.COLOR_NAMES)}.")
            slots[name] = value
    return slots


def _parse_single(text: str) -> tuple[ParsedInstruction | None, VLAError | None]:
    first_error = None
    for task in TASKS:
        if task == "chain":
            continue
        for index, pattern in enumerate(_patterns(task)):
            m = pattern.fullmatch(text)
            if not m:
                continue
            try:
                return ParsedInstruction(task, _slot_values(task, m.groupdict()), index, text), None
            except VLAError as exc:
                first_error = first_error or exc
    return None, first_error


def _parse_chain(text: str) -> tuple[ParsedInstruction | None, VLAError | None]:
    from vla.envs.tasks.chain import FIRSTS, SECONDS

    first_error = None
    for index, template in enumerate(TASKS["chain"].TEMPLATES):
        head, _, rest = template.partition("{first}")
        joiner = rest.partition("{second}")[0]
        if not text.startswith(head) or joiner not in text:
            continue
        body = text[len(head):]
        for cut in [m.start() for m in re.finditer(re.escape(joiner), body)]:
            one, e1 = _parse_single(body[:cut])
            two, e2 = _parse_single(body[cut + len(joiner):])
            if one and two and one.task in FIRSTS and two.task in SECONDS:
                slots = {"first": (one.task, one.slots, one.template), "second": (two.task, two.slots, two.template)}
                return ParsedInstruction("chain", slots, index, text), None
            first_error = first_error or e1 or e2
    return None, first_error


def parse_instruction(text: str) -> ParsedInstruction:
    """Map a sentence to (task, slots); raises VLAError naming what was not understood."""
    clean = normalize(text)
    if not clean:
        raise VLAError(f"the instruction is empty; try for example {EXAMPLE!r}.")
    parsed, error = _parse_single(clean)
    if parsed is None:
        parsed, chain_error = _parse_chain(clean)
        error = error or chain_error
    if parsed is not None:
        return parsed
    if error is not None:
        raise error
    raise VLAError(f"could not understand the instruction {text!r}; it should follow a task template, "
                   f"e.g. {EXAMPLE!r} (see `vla tasks` for all templates).")
