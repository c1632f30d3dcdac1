"""`vla train diffusion`: train the text-to-image UNet on scene renders and their captions.

The CLIP text tower (from `run.clip`) is frozen; the caption is dropped to the empty prompt with probability
`uncond_prob` so sampling can use classifier-free guidance. In pixel space the renders are downscaled to the
model's size. A latent model first trains its VAE on crops of the renders (or takes it from `vae_from`), encodes
every scene once, and trains the UNet on those latents. `init` continues a checkpoint (UNet, VAE, text tower);
with `vae_decoder` the checkpoint's VAE decoder is fine-tuned first, on its encoder's latents, which stay as they are.
Captions name the objects the image shows (`visible_only`).
`object_weight` weighs the UNet's error more where the segmentation shows an object: they are a few pixels of a
scene, and the judge asks about them.
"""
from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F

from vla import VLAError, project_path
from vla.agent.perception.runs import DiffusionRun
from vla.agent.perception.scenes import load_set, shown_annotations
from vla.models.tools import qa_data


def downscale(images: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, size, size) in [-1, 1] (area interpolation)."""
    import cv2

    if images.shape[1:3] != (size, size):
        images = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def object_masks(seg: np.ndarray, size: int) -> torch.Tensor:
    """Segmentation uint8 (N, H, W) -> float (N, 1, size, size): 1 where any part of the cell shows an object."""
    mask = torch.from_numpy(seg > 0).float()[:, None]
    return F.adaptive_max_pool2d(mask, size)


def caption_set(data: dict, visible_only: bool = True) -> list[str]:
    """The canonical caption of every scene of a loaded set: of the objects its image shows (`visible_only`), or
    of every annotated one. A caption that names a hidden object teaches that a named object may be missing."""
    return [qa_data.caption(a) for a in (shown_annotations(data) if visible_only else data["annotations"])]


def vae_crops(images: torch.Tensor, masks: torch.Tensor, size: int, n: int, rng: random.Random):
    """`n` random `size`-pixel crops of float images (N, 3, S, S) and their masks; half are centred on an object
    pixel (where the scene has one), the rest anywhere."""
    N, _, S, _ = images.shape
    out_x, out_m = [], []
    for _ in range(n):
        i = rng.randrange(N)
        ys, xs = torch.nonzero(masks[i, 0], as_tuple=True)
        if len(ys) and rng.random() < 0.5:
            k = rng.randrange(len(ys))
            y0, x0 = int(ys[k]) - size // 2, int(xs[k]) - size // 2
        else:
            y0, x0 = rng.randrange(S - size + 1), rng.randrange(S - size + 1)
        y0, x0 = min(max(y0, 0), S - size), min(max(x0, 0), S - size)
        out_x.append(images[i, :, y0:y0 + size, x0:x0 + size])
        out_m.append(masks[i, :, y0:y0 + size, x0:x0 + size])
    return torch.stack(out_x), torch.stack(out_m)


def train_vae(diffusion, run: DiffusionRun, images: torch.Tensor, masks: torch.Tensor, decoder_only=False) -> dict:
    """Train the latent model's AutoencoderKL on crops: object-weighted L1 + `vae_kl` x KL. `decoder_only`: the
    encoder is frozen and the decoder learns to decode its latent means (no KL term)."""
    from vla.agent.perception.loop import run_loop

    vae, rng = diffusion.vae, random.Random(run.train.seed + 1)
    size = min(run.vae_crop, images.shape[-1])
    vae.train()
    params = list(vae.parameters())
    if decoder_only:
        params = [p for m in (vae.decoder, vae.post_quant_conv) if m is not None for p in m.parameters()]

    def step(_):
        x, m = vae_crops(images, masks, size, run.vae_train.batch_size, rng)
        with torch.set_grad_enabled(not decoder_only):
            post = vae.encode(x).latent_dist
        y = vae.decode(post.mean if decoder_only else post.sample()).sample
        w = 1.0 + run.vae_object_weight * m
        l1 = ((y - x).abs() * w).mean() / w.mean()
        if run.vae_edge:  # L1 between the images' finite differences: keeps the objects' outlines sharp
            for dim in (2, 3):
                dw = torch.maximum(w.narrow(dim, 1, w.shape[dim] - 1), w.narrow(dim, 0, w.shape[dim] - 1))
                err = (y.diff(dim=dim) - x.diff(dim=dim)).abs()
                l1 = l1 + run.vae_edge * (err * dw).mean() / dw.mean() / 2
        kl = post.kl().mean()                                                        # nats per crop
        obj = ((y - x).abs() * m).sum() / (3 * m.sum()).clamp(min=1)
        loss = l1 if decoder_only else l1 + run.vae_kl * kl
        return loss, {"l1": l1.detach(), "object_l1": obj.detach(), "kl": kl.detach()}

    metrics = run_loop(params, step, run.vae_train, title=f"train diffusion VAE ({run.name})")
    vae.eval()
    return metrics


def latent_scale(diffusion, images: torch.Tensor, n: int = 256) -> float:
    """1 / the std of the VAE's latent means over (up to) `n` scenes, so the UNet sees unit-variance latents."""
    diffusion.cfg.latent_scale = 1.0
    z = torch.cat([diffusion.to_model_space(images[i:i + 32]) for i in range(0, min(n, len(images)), 32)])
    return float(1.0 / z.std().clamp(min=1e-6))


def _take_vae(diffusion, path: str) -> None:
    from vla.models.diffusion import load_diffusion

    source = load_diffusion(str(project_path(path)))
    if getattr(source, "vae", None) is None or source.cfg.vae_channels != diffusion.cfg.vae_channels \
            or source.cfg.latent_channels != diffusion.cfg.latent_channels \
            or source.cfg.image_size != diffusion.cfg.image_size:
        raise VLAError(f"vae_from={path!r} is not a latent diffusion checkpoint with this run's VAE "
                       f"(vae_channels {list(diffusion.cfg.vae_channels)}, image_size {diffusion.cfg.image_size}).")
    diffusion.vae.load_state_dict(source.vae.state_dict())
    diffusion.cfg.latent_scale = source.cfg.latent_scale


def train_diffusion(run: DiffusionRun, out: str, data_dir=None) -> dict:
    """Train the diffusion model from `run` on scene set `run.scenes` and save it to `out`."""
    from vla.agent.perception.loop import run_loop
    from vla.models.clip import load_clip
    from vla.models.config import to_dict
    from vla.models.diffusion import new_diffusion

    torch.manual_seed(run.train.seed)
    torch.set_num_threads(run.train.threads)
    device = run.train.device
    if device == "cuda":
        if not torch.cuda.is_available():
            raise VLAError("train.device=cuda but no CUDA device is available; use train.device=cpu.")
        torch.backends.cuda.matmul.allow_tf32 = True
    if run.init:
        from vla.models.diffusion import load_diffusion

        diffusion = load_diffusion(str(project_path(run.init)), device=device)
        if not hasattr(diffusion, "unet") or not hasattr(diffusion, "cfg"):
            raise VLAError(f"init={run.init!r} is not a diffusion checkpoint of this project.")
        diffusion.unet.float()
        run.model = diffusion.cfg
    else:
        clip_path = project_path(run.clip)
        if not clip_path.exists():
            raise VLAError(f"the diffusion model needs a trained CLIP text encoder at {str(clip_path)!r}; "
                           "run `vla train clip` first or set clip=PATH.")
        diffusion = new_diffusion(run.model, load_clip(str(clip_path), device=device), device=device)
    if run.vae_from and not diffusion.cfg.latent:
        raise VLAError("vae_from needs a latent model (model.vae_channels).")
    if run.vae_decoder and not (run.init and diffusion.cfg.latent):
        raise VLAError("vae_decoder=true fine-tunes the decoder of a trained latent model: give init=CHECKPOINT.")
    data = load_set(run.scenes, workers=run.train.threads, **({"data_dir": data_dir} if data_dir else {}))
    images = downscale(data["images"], run.model.image_size)                             # (N, 3, S, S)
    masks = object_masks(data["seg"], run.model.image_size)                              # (N, 1, S, S)
    captions = caption_set(data, run.visible_only)
    metrics: dict = {}
    x0 = images
    if diffusion.cfg.latent:
        if run.vae_decoder or not (run.init or run.vae_from):   # a new VAE, or the checkpoint's decoder tuned
            trained = train_vae(diffusion, run, images.to(device), masks.to(device), decoder_only=run.vae_decoder)
            metrics.update({f"vae_{k}": v for k, v in trained.items()})
            if not run.vae_decoder:
                diffusion.cfg.latent_scale = latent_scale(diffusion, images)
        elif not run.init:                         # (with init the VAE and its latent_scale came with the checkpoint)
            _take_vae(diffusion, run.vae_from)
        if run.train.steps > 0:
            x0 = torch.cat([diffusion.to_model_space(images[i:i + 64]) for i in range(0, len(images), 64)])
            masks = F.adaptive_max_pool2d(masks, x0.shape[-1])
    x0, masks = x0.to(device), masks.to(device)
    rng = random.Random(run.train.seed)
    gen = torch.Generator().manual_seed(run.train.seed)
    diffusion.unet.train()

    def step(_):
        idx = [rng.randrange(len(captions)) for _ in range(run.train.batch_size)]
        prompts = ["" if rng.random() < run.uncond_prob else captions[i] for i in idx]
        weight = 1.0 + run.object_weight * masks[idx] if run.object_weight else None
        loss = diffusion.loss(x0[idx], diffusion.encode(prompts), gen, weight=weight)
        return loss, {"loss": loss.detach()}

    params = [p for p in diffusion.unet.parameters() if p.requires_grad]
    average = [p.detach().clone() for p in params] if run.ema > 0 else None

    def update_ema(i: int) -> None:
        decay = min(run.ema, (1 + i) / (10 + i))
        with torch.no_grad():
            torch._foreach_lerp_(average, [p.detach() for p in params], 1.0 - decay)

    if run.train.steps > 0:
        metrics.update(run_loop(params, step, run.train, title=f"train diffusion ({run.name})",
                                after_step=update_ema if average is not None else None))
        if average is not None:
            with torch.no_grad():
                torch._foreach_copy_(params, average)
    diffusion.unet.eval()
    diffusion.save(out, extra={"run": to_dict(run), "train_metrics": metrics})
    return metrics
