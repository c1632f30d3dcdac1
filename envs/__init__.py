"""Language-conditioned PyBullet tabletop tasks behind Gymnasium.

`make_env(task, split=...)` builds one env; every task is also registered as `vla/<TaskId>-v0` for
`gymnasium.make`. `parse_instruction(text)` maps a sentence to a task and its slots. No torch here.
"""
from __future__ import annotations

import gymnasium

from vla import VLAError, did_you_mean
from vla.envs.instruction import ParsedInstruction, parse_instruction
from vla.envs.splits import SPLITS
from vla.envs.tasks import TASKS

ENV_IDS: dict[str, str] = {name: cls.ENV_ID for name, cls in TASKS.items()}
#: phrasing templates per task ({obj}, {bowl}, {base} take a referring expression such as "the red block");
#: the first is the canonical phrasing, the last two are held out for the `unseen_phrasings` split.
TEMPLATES: dict[str, list[str]] = {name: list(cls.TEMPLATES) for name, cls in TASKS.items()}
CANONICAL: dict[str, str] = {name: templates[0] for name, templates in TEMPLATES.items()}

for _name, _env_id in ENV_IDS.items():
    if _env_id not in gymnasium.registry:
        gymnasium.register(id=_env_id, entry_point="vla.envs.env:VLAEnv", kwargs={"task": _name})


def make_env(task: str, split: str = "seen", image_size=128, wrist: bool = False, depth: bool = False,
             segmentation: bool = False, control: str = "ee", render_mode=None, max_steps: int | None = None,
             **kwargs) -> gymnasium.Env:
    """One environment for `task` on `split` (see docs/INTERFACES.md); image_size=0 gives state-only observations."""
    if task not in TASKS:
        raise VLAError(f"unknown task {task!r}; " + did_you_mean(task, TASKS))
    from vla.envs.env import VLAEnv

    return VLAEnv(task, split, image_size=image_size, wrist=wrist, depth=depth, segmentation=segmentation,
                  control=control, render_mode=render_mode, max_steps=max_steps, **kwargs)


__all__ = ["CANONICAL", "ENV_IDS", "SPLITS", "TASKS", "TEMPLATES", "ParsedInstruction", "make_env", "parse_instruction"]
