"""Text-to-image diffusion: a small pixel-space `UNet2DConditionModel` conditioned on the CLIP text encoder.

The UNet cross-attends to the per-token features of this project's CLIP text tower (frozen, stored inside the
diffusion checkpoint without its vision tower), trained with the DDPM noise objective and sampled with DDIM
and classifier-free guidance (the empty prompt is the unconditional branch). `load_diffusion` also runs a local
Stable Diffusion pipeline directory (diffusers `model_index.json`) through `StableDiffusionPipeline`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vla import VLAError
from vla.models.clip import Clip, ClipConfig, WordTokens, build_clip, text_token_features
from vla.models.config import from_dict, to_dict


@dataclass
class DiffusionConfig:
    image_size: int = 32
    channels: tuple[int, ...] = (64, 128, 128)
    layers_per_block: int = 1
    heads: int = 4
    train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    guidance: float = 3.0
    sample_steps: int = 25
    text_width: int = 0        # filled from the CLIP text tower
    # "epsilon" (DDPM's noise) or "v_prediction" (Salimans & Ho 2022). With epsilon a small UNet's error is
    # multiplied by up to 1/sqrt(alpha_bar) in its clean-image estimate at high noise, and sampling from pure
    # noise gave noise; v keeps that estimate bounded
    prediction_type: str = "epsilon"


def build_unet(cfg: DiffusionConfig):
    from diffusers import UNet2DConditionModel

    n = len(cfg.channels)
    return UNet2DConditionModel(
        sample_size=cfg.image_size, in_channels=3, out_channels=3, block_out_channels=tuple(cfg.channels),
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        layers_per_block=cfg.layers_per_block, cross_attention_dim=cfg.text_width, attention_head_dim=cfg.heads,
        norm_num_groups=min(32, cfg.channels[0]))


def make_scheduler(cfg: DiffusionConfig, kind: str = "ddpm"):
    from diffusers import DDIMScheduler, DDPMScheduler

    if cfg.prediction_type not in ("epsilon", "v_prediction"):
        raise VLAError(f"diffusion prediction_type must be 'epsilon' or 'v_prediction', got {cfg.prediction_type!r}.")
    cls = DDPMScheduler if kind == "ddpm" else DDIMScheduler
    return cls(num_train_timesteps=cfg.train_timesteps, beta_schedule=cfg.beta_schedule,
               prediction_type=cfg.prediction_type, clip_sample=True)


class Diffusion:
    """UNet + frozen CLIP text tower + schedulers; `generate(prompt) -> uint8 (S, S, 3)`."""

    def __init__(self, cfg: DiffusionConfig, unet, clip: Clip, device: str = "cpu"):
        self.cfg, self.unet, self.clip, self.device = cfg, unet.to(device), clip, device
        self.clip.model.requires_grad_(False)
        self.train_scheduler = make_scheduler(cfg, "ddpm")

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> CLIP text token features (B, L, Wt) for cross-attention."""
        ids = self.clip.tokens(prompts).to(self.device)
        with torch.no_grad():
            return text_token_features(self.clip.model, ids)

    def loss(self, images: torch.Tensor, cond: torch.Tensor, generator=None) -> torch.Tensor:
        """DDPM loss against the noise or the velocity (`prediction_type`); images float (B, 3, S, S) in [-1, 1],
        cond (B, L, Wt)."""
        noise = torch.randn(images.shape, generator=generator).to(images.device)
        t = torch.randint(0, self.cfg.train_timesteps, (images.shape[0],), generator=generator).to(images.device)
        noisy = self.train_scheduler.add_noise(images, noise, t)
        pred = self.unet(noisy, t, encoder_hidden_states=cond).sample                    # (B, 3, S, S)
        if self.cfg.prediction_type == "v_prediction":
            return F.mse_loss(pred, self.train_scheduler.get_velocity(images, noise, t))
        return F.mse_loss(pred, noise)

    @torch.no_grad()
    def generate_batch(self, prompts: list[str], seed: int = 0, steps: int | None = None,
                       guidance: float | None = None) -> np.ndarray:
        """DDIM sampling with classifier-free guidance -> uint8 (B, S, S, 3)."""
        steps, guidance = steps or self.cfg.sample_steps, self.cfg.guidance if guidance is None else guidance
        sched = make_scheduler(self.cfg, "ddim")
        sched.set_timesteps(steps)
        cond = self.encode(list(prompts))
        uncond = self.encode([""] * len(prompts))
        both = torch.cat([uncond, cond])                                                  # (2B, L, Wt)
        gen = torch.Generator().manual_seed(seed)
        S = self.cfg.image_size
        x = torch.randn((len(prompts), 3, S, S), generator=gen).to(self.device)
        self.unet.eval()
        for t in sched.timesteps:
            eps_u, eps_c = self.unet(torch.cat([x, x]), t, encoder_hidden_states=both).sample.chunk(2)
            x = sched.step(eps_u + guidance * (eps_c - eps_u), t, x).prev_sample
        return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()

    def generate(self, prompt: str, seed: int = 0, steps: int | None = None) -> np.ndarray:
        return self.generate_batch([prompt], seed, steps)[0]

    def save(self, path: str | Path, half: bool = True, extra: dict | None = None) -> Path:
        from vla.models.checkpoint import write_checkpoint

        text = {f"text.{k}": v for k, v in self.clip.model.state_dict().items() if not k.startswith("visual.")}
        state = {**{f"unet.{k}": v for k, v in self.unet.state_dict().items()}, **text}
        config = {"tool": "diffusion", "model": to_dict(self.cfg), "clip": self.clip.config, **(extra or {})}
        return write_checkpoint(path, config=config, state_dict=state, tokenizer=self.clip.tokenizer,
                                dtype=torch.float16 if half else None)


def new_diffusion(cfg: DiffusionConfig | dict, clip: Clip, device: str = "cpu") -> Diffusion:
    cfg = from_dict(DiffusionConfig, cfg) if isinstance(cfg, dict) else cfg
    if clip.config is None:
        raise VLAError("the diffusion model needs a CLIP checkpoint of this project as its text encoder.")
    cfg.text_width = int(clip.config["text_width"])
    return Diffusion(cfg, build_unet(cfg), clip, device)


def _load_project(path: Path, config: dict, device: str) -> Diffusion:
    from vla.models.checkpoint import read_checkpoint
    from vla.models.llm import load_tokenizer

    cfg = from_dict(DiffusionConfig, config["model"])
    clip_cfg = from_dict(ClipConfig, config["clip"])
    ckpt = read_checkpoint(path, json_names=())
    state = {k: v.float() for k, v in ckpt.state_dict.items()}
    unet = build_unet(cfg)
    unet.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("unet.")})
    clip_model = build_clip(clip_cfg)
    missing, unexpected = clip_model.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("text.")},
                                                     strict=False)
    if unexpected or any(not k.startswith("visual.") for k in missing):
        raise VLAError(f"diffusion checkpoint {str(path)!r} has a text encoder that does not match its config.")
    tokenizer = load_tokenizer(ckpt.tokenizer_dir)
    clip = Clip(clip_model, WordTokens(tokenizer, clip_cfg.context_length), clip_cfg.image_size,
                config=to_dict(clip_cfg), tokenizer=tokenizer, device=device)
    return Diffusion(cfg, unet, clip, device)


def load_diffusion(weights: str = "default", device: str = "cpu"):
    """A project diffusion checkpoint ("default" = shipped) or a local Stable Diffusion pipeline directory."""
    from vla.models.tools.checkpoints import check_tool, read_config, resolve

    path = resolve(weights, "diffusion")
    if path.is_dir() and (path / "model_index.json").is_file():
        from vla.models.diffusion_sd import StableDiffusion

        return StableDiffusion(path, device)
    config = read_config(path) if path.is_dir() else None
    return _load_project(path, check_tool(config, path, "diffusion"), device)
