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
from vla.models.goal import GoalConfig
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
    # questions and captions only about what the image shows: no question names an object with fewer than
    # qa_data.MIN_VISIBLE_PIXELS pixels in the segmentation, and captions leave such objects out
    visible_only: bool = True
    # train only the object detector's full-resolution heatmap (model.object_fine) on the scenes, every other weight
    # kept (with init=): the LM and its object tokens stay as they are, only where the objects are found changes
    fine_only: bool = False
    # also the agent's step checks (qa_data.CHECK_TYPES: "is the red block on the blue block?", ...), so the VQA
    # tool can verify a manipulation step as the simulator would
    check_questions: bool = True


@dataclass
class DiffusionRun:
    name: str = "tiny"
    model: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    scenes: str = "train"
    clip: str = "models/weights/clip"  # the text encoder the UNet is conditioned on (frozen)
    uncond_prob: float = 0.1           # caption dropped (classifier-free guidance) with this probability
    object_weight: float = 0.0         # extra loss weight on pixels (latents) that show an object (segmentation)
    # captions name only the objects the image shows (as `vla eval tools` prompts do); false: every annotated
    # object, also those the arm hides (the shipped UNet's first 115 minutes)
    visible_only: bool = True
    # Latent models (model.vae_channels): the VAE trains first for vae_train.steps on vae_crop-pixel crops
    # (half of them on an object), L1 with vae_object_weight more on object pixels (+ vae_edge x the L1 of the
    # finite differences) + vae_kl x KL; or comes
    # with its latent_scale from the latent diffusion checkpoint vae_from
    vae_train: LoopConfig = field(default_factory=lambda: LoopConfig(steps=0))
    vae_crop: int = 48
    vae_object_weight: float = 10.0
    vae_kl: float = 1e-6
    vae_edge: float = 0.0
    vae_from: str | None = None
    # True (with init): train only the VAE's decoder for vae_train, on the frozen encoder's latent means, the
    # latents the UNet learns and samples (Stable Diffusion's decoder fine-tuning): its latent space, and so the
    # UNet, stay valid while small objects decode sharper
    vae_decoder: bool = False
    init: str | None = None            # continue from this diffusion checkpoint (its sizes, text tower and VAE)
    # > 0: the saved UNet is an exponential moving average of the trained one with this decay per step (warmed
    # up as min(ema, (1 + step) / (10 + step))); averaging the last few thousand steps' weights removes their noise
    ema: float = 0.0


@dataclass
class GoalRun:
    """The policy's goal pointer (vla.models.goal; trained by vla.agent.train.goal)."""
    name: str = "default"
    model: GoalConfig = field(default_factory=GoalConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    data: str = "train"                  # goal frame set (vla.agent.train.goal_data.SETS)
    eval: list[str] = field(default_factory=lambda: ["heldout", "unseen_colors"])
    vlm: str = "models/weights/vlm"      # the VLM checkpoint whose object detector the pointer copies
    color_aug: float = 0.5               # share of steps whose object colours and colour words are recoloured
    near: float = 0.03                   # metres: an object this close to the oracle's goal is the pointer's class
    held_weight: float = 3.0             # sampling weight of frames where the arm holds something
    # The VLM's detector was trained on the seen colours only and misses half of the objects of unseen ones; it is
    # fine-tuned first for `detector_steps` on the perception scene set `detector_scenes` with each object
    # recoloured with probability `detector_color_aug` (0 steps: keep it as the VLM has it).
    detector_steps: int = 0
    detector_scenes: str = "train_xl"
    detector_color_aug: float = 0.8
    detector_lr: float = 3e-4
    detector_from: str | None = None     # a goal pointer checkpoint whose (tuned) detector to start from instead


RUNS = {"clip": ClipRun, "vlm": VlmRun, "diffusion": DiffusionRun, "goal": GoalRun}


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
    run = from_dict(cls, apply_overrides(data, list(overrides), cls))
    devices = ("cpu", "cuda") if kind == "diffusion" else ("cpu",)
    if run.train.device not in devices:
        raise VLAError(f"train.device={run.train.device!r} is not available for `vla train {kind}`; "
                       f"allowed: {', '.join(devices)}.")
    return run

