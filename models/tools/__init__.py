"""Perception tools behind one registry: `classify`, `locate`, `caption`, `vqa`, `generate`.

    from vla.models.tools import TOOLS, get_tool, tool_class
    caption = get_tool("caption")                  # shipped weights, models/weights/vlm/
    caption(image=rgb)                             # -> {"caption": "a red block in a green bowl ..."}
    tool_class("vqa").spec()                       # name, description, input/output JSON schemas

A tool (see `base.Tool`) has `name`, a one-line `description`, `input_schema` / `output_schema` (JSON
Schema) and `__call__(**inputs) -> dict`; images are uint8 (H, W, 3) RGB numpy arrays. `TOOLS` maps each
name to "module:Class" and is resolved lazily, so reading the registry imports no torch. The agent and the
ROS 2 nodes use only this interface.
"""
from __future__ import annotations

import importlib

from vla import VLAError, did_you_mean

from .base import IMAGE_SCHEMA, Tool, check_image, validate

# name -> "module:Class", resolved on first use.
TOOLS: dict[str, str] = {
    "classify": "vla.models.tools.clip_tools:ClassifyTool",
    "locate": "vla.models.tools.clip_tools:LocateTool",
    "caption": "vla.models.tools.vlm_tools:CaptionTool",
    "vqa": "vla.models.tools.vlm_tools:VQATool",
    "generate": "vla.models.tools.generate_tool:GenerateTool",
}


def tool_class(name: str) -> type[Tool]:
    """The Tool subclass registered under `name` (imports its module, not its weights)."""
    if name not in TOOLS:
        raise VLAError(f"unknown tool {name!r}; " + did_you_mean(name, sorted(TOOLS)))
    module, _, cls = TOOLS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def get_tool(name: str, weights: str = "default", device: str = "cpu", **options) -> Tool:
    """An instance of tool `name` with `weights` ("default" = shipped, or a local path); loads lazily."""
    return tool_class(name)(weights=weights, device=device, **options)


def list_tools() -> list[dict]:
    """Every registered tool's spec (name, description, schemas), sorted by name."""
    return [tool_class(name).spec() for name in sorted(TOOLS)]


__all__ = ["TOOLS", "Tool", "get_tool", "tool_class", "list_tools", "validate", "check_image", "IMAGE_SCHEMA"]
