"""Where the perception tools' weights live and which tool a checkpoint directory belongs to.

Directories use the project's checkpoint format (`vla.models.checkpoint`: config.json, model.safetensors,
tokenizer/); the config carries a `"tool"` entry, so a diffusion checkpoint handed to the CLIP loader is one
clear error instead of a key mismatch deep in torch.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from vla import ROOT, VLAError

WEIGHTS_DIR = ROOT / "models" / "weights"


def resolve(weights: str | os.PathLike, tool: str) -> Path:
    """'default' -> the shipped models/weights/<tool>/; anything else must be an existing local path."""
    path = WEIGHTS_DIR / tool if str(weights) == "default" else Path(weights).expanduser()
    if not path.exists():
        hint = f" Train it with `vla train {tool}`." if str(weights) == "default" else ""
        raise VLAError(f"{tool} weights {str(path)!r} do not exist; give a checkpoint directory or file.{hint}")
    return path


def read_config(path: Path) -> dict | None:
    """The parsed config.json of a directory, or None when there is none."""
    cfg = path / "config.json"
    if not cfg.is_file():
        return None
    try:
        return json.loads(cfg.read_text())
    except json.JSONDecodeError:
        raise VLAError(f"{str(cfg)!r} is not valid JSON.") from None


def check_tool(config: dict | None, path: Path, tool: str) -> dict:
    """Raise a clear VLAError unless `config` is a checkpoint config of `tool`."""
    if config is None or "tool" not in config:
        raise VLAError(f"{str(path)!r} is not a {tool} checkpoint (no config.json with a 'tool' entry).")
    if config["tool"] != tool:
        raise VLAError(f"{str(path)!r} is a checkpoint for the {config['tool']!r} tool, not for {tool!r}.")
    return config
