"""Run configs of the perception tools: a model config, a loop config and data choices, presets as YAML.

`load_run(kind, preset, overrides)` reads configs/<kind>/<preset>.yaml (or a YAML path), applies dotted
`key=value` overrides and returns the typed run config; the resolved dict is saved with the weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vla import ROOT, VLAError, did_you_mean
from vla.agent.perception.loop import LoopConfig
from vla.models.clip import ClipConfig
from vla.models.config import apply_overrides, from_dict, load_yaml
from vla.models.diffusion import DiffusionConfig
from vla.models.vlm import VLMConfig


@dataclass
class ClipRun:
    name: str = "tiny"
    model: ClipConfig = field(default_factory=ClipConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    scenes: str = "train"
    crop_fraction: float = 0.5     # share of steps trained on single-object crops (vs whole scenes)
    locate_weight: float = 0.5     # weight of the patch-text localisation loss on scene steps
    init: str | None = None        # continue from this CLIP checkpoint (its sizes and tokenizer) instead of new


@dataclass
class VlmRun:
    name: str = "tiny"
    model: VLMConfig = field(default_factory=VLMConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    scenes: str = "train"
    clip_init: str | None = "models/weights/clip"   # start the vision tower from this CLIP checkpoint
    caption_fraction: float = 0.3  # share of examples that are captions (the rest are VQA pairs)
    init: str | None = None        # continue from this VLM checkpoint (its sizes and tokenizer) instead of new


@dataclass
class DiffusionRun:
    name: str = "tiny"
    model: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    scenes: str = "train"
    clip: str = "models/weights/clip"  # the text encoder the UNet is conditioned on (frozen)
    uncond_prob: float = 0.1           # caption dropped (classifier-free guidance) with this probability


RUNS = {"clip": ClipRun, "vlm": VlmRun, "diffusion": DiffusionRun}


def presets(kind: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "configs" / kind).glob("*.yaml"))


def load_run(kind: str, preset: str, overrides: list[str] = ()):
    """The typed run config of `kind` from a preset name or YAML path, with dotted overrides applied."""
    cls = RUNS[kind]
    path = Path(preset)
    if not (path.suffix in (".yaml", ".yml") or path.is_file()):
        if preset not in presets(kind):
            raise VLAError(f"unknown {kind} preset {preset!r}; " + did_you_mean(preset, presets(kind)))
        path = ROOT / "configs" / kind / f"{preset}.yaml"
    data = load_yaml(path)
    data.setdefault("name", path.stem)
    return from_dict(cls, apply_overrides(data, list(overrides), cls))

