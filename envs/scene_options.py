"""Validate and add the objects of `reset(options={"objects": [...]})`."""
from __future__ import annotations

from vla import VLAError
from vla.envs import vocab
from vla.envs.tasks.base import Sampler


def add_objects(sampler: Sampler, objects: list) -> list[int]:
    """Add each {"color", "shape", "size"} object at a free pose; returns their ids."""
    if not objects:
        raise VLAError("options['objects'] must list at least one object like {'color': 'red', 'shape': 'block'}.")
    oids = []
    for obj in objects:
        color, shape, size = obj.get("color"), obj.get("shape"), obj.get("size")
        if color not in vocab.COLORS:
            raise VLAError(f"unknown colour {color!r}; allowed colours: {', '.join(vocab.COLOR_NAMES)}.")
        if shape not in vocab.SHAPES:
            raise VLAError(f"unknown object {shape!r}; allowed objects: {', '.join(vocab.SHAPES)}.")
        if shape == "block":
            size = size or sampler.size(shape)
        if size not in ((None,) if shape != "block" else tuple(vocab.SIZES)):
            raise VLAError(f"size {size!r} does not fit a {shape}; blocks are {', '.join(vocab.SIZES)}, others None.")
        oids.append(sampler.add(color, shape, size))
    return oids
