"""`vla train diffusion`: train the pixel-space text-to-image UNet on downscaled scene renders and captions.

The CLIP text tower (from `run.clip`) is frozen; the caption is dropped to the empty prompt with probability
`uncond_prob` so sampling can use classifier-free guidance.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from vla import ROOT, VLAError
from vla.agent.perception.runs import DiffusionRun
from vla.agent.perception.scenes import load_set
from vla.models.tools import qa_data


def downscale(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, size, size) in [-1, 1] (area interpolation)."""
    import cv2

    small = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])
    return torch.from_numpy(small).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def train_diffusion(run: DiffusionRun, out: str, data_dir=None) -> dict:
    """Train the diffusion UNet from `run` on scene set `run.scenes` and save it to `out`."""
    from vla.agent.perception.loop import run_loop
    from vla.models.clip import load_clip
    from vla.models.config import to_dict
    from vla.models.diffusion import new_diffusion

    torch.manual_seed(run.train.seed)
    torch.set_num_threads(run.train.threads)
    clip_path = Path(run.clip) if Path(run.clip).is_absolute() else ROOT / run.clip
    if not clip_path.exists():
        raise VLAError(f"the diffusion model needs a trained CLIP text encoder at {str(clip_path)!r}; "
                       "run `vla train clip` first or set clip=PATH.")
    diffusion = new_diffusion(run.model, load_clip(str(clip_path)))
    data = load_set(run.scenes, workers=run.train.threads, **({"data_dir": data_dir} if data_dir else {}))
    images = downscale(data["images"], run.model.image_size)                             # (N, 3, S, S)
    captions = [qa_data.caption(a) for a in data["annotations"]]
    rng = random.Random(run.train.seed)
    gen = torch.Generator().manual_seed(run.train.seed)
    diffusion.unet.train()

    def step(_):
        idx = [rng.randrange(len(captions)) for _ in range(run.train.batch_size)]
        prompts = ["" if rng.random() < run.uncond_prob else captions[i] for i in idx]
        loss = diffusion.loss(images[idx], diffusion.encode(prompts), gen)
        return loss, {"loss": loss.detach()}

    metrics = run_loop(diffusion.unet.parameters(), step, run.train, title=f"train diffusion ({run.name})")
    diffusion.unet.eval()
    diffusion.save(out, extra={"run": to_dict(run), "train_metrics": metrics})
    return metrics
