"""`vla train clip`: train the clip perception tool from a preset (see agent/perception/train_clip.py)."""
from __future__ import annotations

from vla.agent.commands import _tool_train


def add_arguments(parser) -> None:
    _tool_train.add_arguments(parser, "clip")


def run(args) -> int:
    from vla.agent.perception.train_clip import train_clip

    return _tool_train.run(args, "clip", train_clip)
