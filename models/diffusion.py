"""Text-to-image diffusion: a small `UNet2DConditionModel` conditioned on the CLIP text encoder.

The UNet cross-attends to the per-token features of this project's CLIP text tower (frozen, stored inside the
diffusion checkpoint without its vision tower), trained with the DDPM objective and sampled with DDIM and
classifier-free guidance (the empty prompt is the unconditional branch). It denoises pixels, or, with
`vae_channels` set, Stable Diffusion's way: the latents of an `AutoencoderKL` trained on the scene renders,
decoded to the image at the end. `load_diffusion` also runs a local Stable Diffusion pipeline directory
(diffusers `model_index.json`) through `StableDiffusionPipeline`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vla import VLAError
from vla.models.clip import Clip, ClipConfig, WordTokens, build_clip, text_token_features
from vla.models.config import from_dict, to_dict


SAMPLERS = ("ddim", "dpm")


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
    # Latent diffusion: an AutoencoderKL with these block widths maps an image_size image to latents of
    # image_size / 2 ** (len - 1) pixels and latent_channels channels, which the UNet denoises. () = pixel space
    vae_channels: tuple[int, ...] = ()
    latent_channels: int = 4
    latent_scale: float = 1.0  # latents are multiplied by this (1 / their std on the training scenes, set there)
    attention_first: bool = False  # cross-attention at the UNet's first (full) resolution too
    # the sampler of `generate`: "ddim", or "dpm" (DPM-Solver++ multistep, 2nd order; the shipped model's: at
    # 25 steps it found every described object in 20.0 % of 160 held-out prompts against DDIM's 15.6 %)
    sampler: str = "ddim"

    @property
    def latent(self) -> bool:
        return bool(self.vae_channels)

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """(channels, size, size) of what the UNet denoises."""
        if not self.latent:
            return 3, self.image_size, self.image_size
        size = self.image_size // 2 ** (len(self.vae_channels) - 1)
        return self.latent_channels, size, size


def build_unet(cfg: DiffusionConfig):
    from diffusers import UNet2DConditionModel

    n = len(cfg.channels)
    channels, size, _ = cfg.sample_shape
    first = "CrossAttn" if cfg.attention_first else ""
    return UNet2DConditionModel(
        sample_size=size, in_channels=channels, out_channels=channels, block_out_channels=tuple(cfg.channels),
        down_block_types=(f"{first}DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + (f"{first}UpBlock2D",),
        layers_per_block=cfg.layers_per_block, cross_attention_dim=cfg.text_width, attention_head_dim=cfg.heads,
        norm_num_groups=min(32, cfg.channels[0]))


def build_vae(cfg: DiffusionConfig):
    """The latent autoencoder (diffusers' `AutoencoderKL`, Stable Diffusion's VAE), or None in pixel space."""
    if not cfg.latent:
        return None
    from diffusers import AutoencoderKL

    n = len(cfg.vae_channels)
    if cfg.image_size % 2 ** (n - 1):
        raise VLAError(f"diffusion image_size {cfg.image_size} is not divisible by the VAE's downsampling "
                       f"{2 ** (n - 1)}.")
    return AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                         up_block_types=("UpDecoderBlock2D",) * n, block_out_channels=tuple(cfg.vae_channels),
                         layers_per_block=1, latent_channels=cfg.latent_channels,
                         norm_num_groups=min(32, cfg.vae_channels[0]), sample_size=cfg.image_size)


def make_scheduler(cfg: DiffusionConfig, kind: str = "ddpm"):
    """The training noise schedule (`kind` "ddpm") or a sampler of `SAMPLERS`: "ddim" or "dpm" (DPM-Solver++
    multistep; checked where a config is built)."""
    from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

    if cfg.prediction_type not in ("epsilon", "v_prediction"):
        raise VLAError(f"diffusion prediction_type must be 'epsilon' or 'v_prediction', got {cfg.prediction_type!r}.")
    if kind == "dpm":
        return DPMSolverMultistepScheduler(num_train_timesteps=cfg.train_timesteps, beta_schedule=cfg.beta_schedule,
                                           prediction_type=cfg.prediction_type, thresholding=False)
    cls = DDPMScheduler if kind == "ddpm" else DDIMScheduler
    # pixels live in [-1, 1], so the clean-image estimate is clipped there; latents are not bounded
    return cls(num_train_timesteps=cfg.train_timesteps, beta_schedule=cfg.beta_schedule,
               prediction_type=cfg.prediction_type, clip_sample=not cfg.latent)


class Diffusion:
    """UNet (+ VAE when latent) + frozen CLIP text tower + schedulers; `generate(prompt) -> uint8 (S, S, 3)`."""

    def __init__(self, cfg: DiffusionConfig, unet, clip: Clip, device: str = "cpu", vae=None):
        if cfg.sampler not in SAMPLERS:
            raise VLAError(f"diffusion sampler must be one of {list(SAMPLERS)}, got {cfg.sampler!r}.")
        self.cfg, self.unet, self.clip, self.device = cfg, unet.to(device), clip, device
        self.vae = vae.to(device) if vae is not None else None
        if cfg.latent and self.vae is None:
            raise VLAError("a latent diffusion config needs its VAE.")
        self.clip.model.requires_grad_(False)
        self.train_scheduler = make_scheduler(cfg, "ddpm")

    def to_model_space(self, images: torch.Tensor) -> torch.Tensor:
        """Images float (B, 3, S, S) in [-1, 1] -> what the UNet denoises: the images, or the VAE's scaled
        latent means (B, C, s, s)."""
        if self.vae is None:
            return images
        with torch.no_grad():
            return self.vae.encode(images.to(self.device)).latent_dist.mean * self.cfg.latent_scale

    def to_images(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of `to_model_space` (decoding latents), float in [-1, 1]."""
        if self.vae is None:
            return x.clamp(-1, 1)
        with torch.no_grad():
            return self.vae.decode(x / self.cfg.latent_scale).sample.clamp(-1, 1)

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """Prompts -> CLIP text token features (B, L, Wt) for cross-attention."""
        ids = self.clip.tokens(prompts).to(self.device)
        with torch.no_grad():
            return text_token_features(self.clip.model, ids)

    def loss(self, x0: torch.Tensor, cond: torch.Tensor, generator=None, weight: torch.Tensor | None = None
             ) -> torch.Tensor:
        """DDPM loss against the noise or the velocity (`prediction_type`); x0 (B, C, s, s) in model space
        (`to_model_space`), cond (B, L, Wt); `weight` (B, 1, s, s) weighs the squared error per pixel (e.g. more on
        the objects, which are a few pixels of a scene), normalised to a mean of 1 per sample."""
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        t = torch.randint(0, self.cfg.train_timesteps, (x0.shape[0],), generator=generator).to(x0.device)
        noisy = self.train_scheduler.add_noise(x0, noise, t)
        pred = self.unet(noisy, t, encoder_hidden_states=cond).sample                    # (B, C, s, s)
        target = self.train_scheduler.get_velocity(x0, noise, t) if self.cfg.prediction_type == "v_prediction" \
            else noise
        err = (pred - target).pow(2)
        if weight is None:
            return err.mean()
        weight = weight / weight.mean(dim=(1, 2, 3), keepdim=True)
        return (err * weight).mean()

    @torch.no_grad()
    def generate_batch(self, prompts: list[str], seed: int = 0, steps: int | None = None,
                       guidance: float | None = None) -> np.ndarray:
        """Sampling (`cfg.sampler`: DDIM or DPM-Solver++) with classifier-free guidance -> uint8 (B, S, S, 3)."""
        steps, guidance = steps or self.cfg.sample_steps, self.cfg.guidance if guidance is None else guidance
        sched = make_scheduler(self.cfg, self.cfg.sampler)
        sched.set_timesteps(steps)
        cond = self.encode(list(prompts))
        uncond = self.encode([""] * len(prompts))
        both = torch.cat([uncond, cond])                                                  # (2B, L, Wt)
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn((len(prompts), *self.cfg.sample_shape), generator=gen).to(self.device)
        self.unet.eval()
        for t in sched.timesteps:
            eps_u, eps_c = self.unet(torch.cat([x, x]), t, encoder_hidden_states=both).sample.chunk(2)
            x = sched.step(eps_u + guidance * (eps_c - eps_u), t, x).prev_sample
        return to_uint8(self.to_images(x))

    def generate(self, prompt: str, seed: int = 0, steps: int | None = None) -> np.ndarray:
        return self.generate_batch([prompt], seed, steps)[0]

    def save(self, path: str | Path, half: bool = True, extra: dict | None = None) -> Path:
        from vla.models.checkpoint import write_checkpoint

        text = {f"text.{k}": v for k, v in self.clip.model.state_dict().items() if not k.startswith("visual.")}
        state = {**{f"unet.{k}": v for k, v in self.unet.state_dict().items()}, **text}
        if self.vae is not None:
            state.update({f"vae.{k}": v for k, v in self.vae.state_dict().items()})
        config = {"tool": "diffusion", "model": to_dict(self.cfg), "clip": self.clip.config, **(extra or {})}
        return write_checkpoint(path, config=config, state_dict=state, tokenizer=self.clip.tokenizer,
                                dtype=torch.float16 if half else None)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float images (B, 3, S, S) in [-1, 1] -> uint8 (B, S, S, 3)."""
    return ((images + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def new_diffusion(cfg: DiffusionConfig | dict, clip: Clip, device: str = "cpu") -> Diffusion:
    cfg = from_dict(DiffusionConfig, cfg) if isinstance(cfg, dict) else cfg
    if clip.config is None:
        raise VLAError("the diffusion model needs a CLIP checkpoint of this project as its text encoder.")
    cfg.text_width = int(clip.config["text_width"])
    return Diffusion(cfg, build_unet(cfg), clip, device, vae=build_vae(cfg))


def _load_project(path: Path, config: dict, device: str) -> Diffusion:
    from vla.models.checkpoint import read_checkpoint
    from vla.models.llm import load_tokenizer

    cfg = from_dict(DiffusionConfig, config["model"])
    clip_cfg = from_dict(ClipConfig, config["clip"])
    ckpt = read_checkpoint(path, json_names=())
    state = {k: v.float() for k, v in ckpt.state_dict.items()}
    unet = build_unet(cfg)
    try:
        unet.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("unet.")})
        vae = build_vae(cfg)
        if vae is not None:
            vae.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("vae.")})
    except RuntimeError as exc:
        raise VLAError(f"diffusion checkpoint {str(path)!r} does not match its config: "
                       f"{str(exc).splitlines()[0][:160]}") from None
    clip_model = build_clip(clip_cfg)
    missing, unexpected = clip_model.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("text.")},
                                                     strict=False)
    if unexpected or any(not k.startswith("visual.") for k in missing):
        raise VLAError(f"diffusion checkpoint {str(path)!r} has a text encoder that does not match its config.")
    tokenizer = load_tokenizer(ckpt.tokenizer_dir)
    clip = Clip(clip_model, WordTokens(tokenizer, clip_cfg.context_length), clip_cfg.image_size,
                config=to_dict(clip_cfg), tokenizer=tokenizer, device=device)
    return Diffusion(cfg, unet, clip, device, vae=vae)


def load_diffusion(weights: str = "default", device: str = "cpu"):
    """A project diffusion checkpoint ("default" = shipped) or a local Stable Diffusion pipeline directory."""
    from vla.models.tools.checkpoints import check_tool, read_config, resolve

    path = resolve(weights, "diffusion")
    if path.is_dir() and (path / "model_index.json").is_file():
        from vla.models.diffusion_sd import StableDiffusion

        return StableDiffusion(path, device)
    config = read_config(path) if path.is_dir() else None
    return _load_project(path, check_tool(config, path, "diffusion"), device)
