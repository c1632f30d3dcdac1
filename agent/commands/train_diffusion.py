"""`vla train diffusion`: train the diffusion perception tool from a preset (see agent/perception/train_diffusion.py)."""
from __future__ import annotations

from vla.agent.commands import _tool_train


def add_arguments(parser) -> None:
    _tool_train.add_arguments(parser, "diffusion")


def run(args) -> int:
    from vla.agent.perception.train_diffusion import train_diffusion

    return _tool_train.run(args, "diffusion", train_diffusion)
