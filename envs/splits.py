"""Generalisation splits, disjoint by construction.

- `seen`: training colours, phrasings 0-3 of each task, colour x shape x task combinations not held out.
- `unseen_colors`: objects named in the instruction use only colours that `seen` never uses anywhere.
- `unseen_combos`: seen colours and phrasings, but the named object's (task, colour, shape) is held out.
- `unseen_phrasings`: seen colours and combos, phrased only with the held-out templates.
"""
from __future__ import annotations

from dataclasses import dataclass

from vla import VLAError, did_you_mean
from vla.envs import vocab

SEEN_COLORS: list[str] = vocab.COLOR_NAMES[:8]
UNSEEN_COLORS: list[str] = vocab.COLOR_NAMES[8:]
#: templates [0, N_SEEN_TEMPLATES) of each task are seen; the rest are held out.
N_SEEN_TEMPLATES = 4
TASK_ORDER = ["reach", "pick", "place", "stack", "push", "put_all", "chain"]


def held_out_combo(task: str, color: str, shape: str) -> bool:
    """True when (task, colour, shape) is reserved for `unseen_combos` (about one in four seen-colour combos)."""
    if color not in SEEN_COLORS:
        return False
    key = TASK_ORDER.index(task) + SEEN_COLORS.index(color) + vocab.SHAPES.index(shape)
    return key % 4 == 0


@dataclass(frozen=True)
class Split:
    name: str
    named_colors: tuple[str, ...]  # colours of objects the instruction refers to
    distractor_colors: tuple[str, ...]
    combos: str  # "seen" (avoid held-out combos) or "held_out" (require them)
    templates: str  # "seen" or "held_out"

    def allows_combo(self, task: str, color: str, shape: str) -> bool:
        held = held_out_combo(task, color, shape)
        return held if self.combos == "held_out" else not held

    def template_indices(self, n_templates: int) -> list[int]:
        seen = list(range(N_SEEN_TEMPLATES))
        return seen if self.templates == "seen" else list(range(N_SEEN_TEMPLATES, n_templates))


SPLITS: dict[str, Split] = {
    "seen": Split("seen", tuple(SEEN_COLORS), tuple(SEEN_COLORS), "seen", "seen"),
    "unseen_colors": Split("unseen_colors", tuple(UNSEEN_COLORS), tuple(vocab.COLOR_NAMES), "seen", "seen"),
    "unseen_combos": Split("unseen_combos", tuple(SEEN_COLORS), tuple(SEEN_COLORS), "held_out", "seen"),
    "unseen_phrasings": Split("unseen_phrasings", tuple(SEEN_COLORS), tuple(SEEN_COLORS), "seen", "held_out"),
}


def get_split(name: str) -> Split:
    if name not in SPLITS:
        raise VLAError(f"unknown split {name!r}; " + did_you_mean(name, SPLITS))
    return SPLITS[name]
