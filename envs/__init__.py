"""Language-conditioned PyBullet tabletop tasks behind Gymnasium.

`make_env(task, split=...)` builds one env; every task is also registered as `vla/<TaskId>-v0` for
`gymnasium.make`. `parse_instruction(text)` maps a sentence to a task and its slots. No torch here.
"""
from __future__ import annotations

import gymnasium

from vla import VLAError, did_you_mean

#: gymnasium ids, one per task (tests check them against each task class's ENV_ID). Registering needs only these
#: strings, so `import vla.envs` (and its plain modules: vocab, camera, splits) loads no simulator; the task
#: classes, which import PyBullet, load on first use of TASKS, TEMPLATES, CANONICAL, SPLITS or parse_instruction.
ENV_IDS: dict[str, str] = {"reach": "vla/Reach-v0", "pick": "vla/Pick-v0", "place": "vla/Place-v0",
                           "stack": "vla/Stack-v0", "push": "vla/Push-v0", "put_all": "vla/PutAll-v0",
                           "chain": "vla/Chain-v0"}
_LAZY = {"TASKS": "vla.envs.tasks", "SPLITS": "vla.envs.splits", "ParsedInstruction": "vla.envs.instruction",
         "parse_instruction": "vla.envs.instruction"}

for _name, _env_id in ENV_IDS.items():
    if _env_id not in gymnasium.registry:
        gymnasium.register(id=_env_id, entry_point="vla.envs.env:VLAEnv", kwargs={"task": _name})


def __getattr__(name: str):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in ("TEMPLATES", "CANONICAL"):
        #: phrasing templates per task ({obj}, {bowl}, {base} take a referring expression such as "the red
        #: block"); the first is the canonical phrasing, the last two are held out for `unseen_phrasings`.
        templates = {task: list(cls.TEMPLATES) for task, cls in __getattr__("TASKS").items()}
        return templates if name == "TEMPLATES" else {task: t[0] for task, t in templates.items()}
    raise AttributeError(f"module 'vla.envs' has no attribute {name!r}")


def make_env(task: str, split: str = "seen", image_size=128, wrist: bool = False, depth: bool = False,
             segmentation: bool = False, control: str = "ee", render_mode=None, max_steps: int | None = None,
             **kwargs) -> gymnasium.Env:
    """One environment for `task` on `split` (see docs/INTERFACES.md); image_size=0 gives state-only observations."""
    from vla.envs.env import VLAEnv
    from vla.envs.tasks import TASKS

    if task not in TASKS:
        raise VLAError(f"unknown task {task!r}; " + did_you_mean(task, TASKS))

    return VLAEnv(task, split, image_size=image_size, wrist=wrist, depth=depth, segmentation=segmentation,
                  control=control, render_mode=render_mode, max_steps=max_steps, **kwargs)


__all__ = ["CANONICAL", "ENV_IDS", "SPLITS", "TASKS", "TEMPLATES", "ParsedInstruction", "make_env", "parse_instruction"]
