"""`vla train vlm`: train the vlm perception tool from a preset (see agent/perception/train_vlm.py)."""
from __future__ import annotations

from vla.agent.commands import _tool_train


def add_arguments(parser) -> None:
    _tool_train.add_arguments(parser, "vlm")


def run(args) -> int:
    from vla.agent.perception.train_vlm import train_vlm

    return _tool_train.run(args, "vlm", train_vlm)
