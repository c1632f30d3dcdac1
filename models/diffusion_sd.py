"""Text-to-image with a local Stable Diffusion pipeline directory (diffusers `model_index.json` layout).

Runs diffusers' `StableDiffusionPipeline` with the same `generate` / `generate_batch` interface as the
project's diffusion model. Nothing is downloaded: the directory must hold every component.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vla import VLAError


class StableDiffusion:
    def __init__(self, path: Path, device: str = "cpu", image_size: int | None = None):
        from diffusers import StableDiffusionPipeline

        try:
            self.pipe = StableDiffusionPipeline.from_pretrained(str(path), local_files_only=True, safety_checker=None,
                                                                requires_safety_checker=False).to(device)
        except (OSError, ValueError, TypeError) as exc:
            raise VLAError(f"could not load the Stable Diffusion directory {str(path)!r}: "
                           f"{str(exc).splitlines()[0][:200]}") from None
        self.pipe.set_progress_bar_config(disable=True)
        unet_size = self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor
        self.image_size = image_size or unet_size

    def _check(self, prompt: str) -> None:
        tok = self.pipe.tokenizer
        n = len(tok(prompt)["input_ids"])
        if n > tok.model_max_length:
            raise VLAError(f"the prompt has {n} tokens; this pipeline's text encoder takes at most "
                           f"{tok.model_max_length}.")

    @torch.no_grad()
    def generate_batch(self, prompts: list[str], seed: int = 0, steps: int | None = None,
                       guidance: float | None = None) -> np.ndarray:
        for p in prompts:
            self._check(p)
        gen = torch.Generator().manual_seed(seed)
        out = self.pipe(list(prompts), num_inference_steps=steps or 25, guidance_scale=7.5 if guidance is None
                        else guidance, generator=gen, height=self.image_size, width=self.image_size,
                        output_type="np")
        return (np.clip(out.images, 0, 1) * 255).round().astype(np.uint8)                 # (B, S, S, 3)

    def generate(self, prompt: str, seed: int = 0, steps: int | None = None) -> np.ndarray:
        return self.generate_batch([prompt], seed, steps)[0]
