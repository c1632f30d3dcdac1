"""CLIP: open_clip's `CLIP` model class with inline tiny sizes and a word-level tokenizer, or any OpenCLIP model.

`ClipConfig` is the architecture as data (configs/clip/*.yaml); `build_clip` makes the open_clip model and
`Clip` wraps it with the operations the tools need: zero-shot classification, image-text retrieval,
localisation from patch-text similarity, and per-token text features (the diffusion model's conditioning).
`load_clip` reads this project's checkpoint directories (config.json with "tool": "clip", model.safetensors,
tokenizer/) and, through open_clip's own loading code, a local OpenCLIP checkpoint file (with `arch=`) or an
open_clip `local-dir` folder (open_clip_config.json + weights). The vision tower's keys start with `visual.`,
so `vla.models.vision.VisionEncoder` can start from a CLIP checkpoint directory (set `model.vision.weights`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vla import VLAError
from vla.models.config import from_dict, to_dict
from vla.models.vision import CLIP_MEAN, CLIP_STD

EOS = "[EOS]"


@dataclass
class ClipConfig:
    embed_dim: int = 128
    image_size: int = 64
    patch_size: int = 8
    vision_width: int = 128
    vision_layers: int = 4
    head_width: int = 32
    mlp_ratio: float = 4.0
    text_width: int = 128
    text_layers: int = 3
    text_heads: int = 4
    context_length: int = 32
    vocab_size: int = 0       # filled from the tokenizer
    eos_id: int = 0           # filled from the tokenizer


def open_clip_cfg(cfg: ClipConfig) -> dict:
    """The open_clip model config (as in open_clip's model_configs/*.json) for these sizes."""
    return {
        "embed_dim": cfg.embed_dim,
        "vision_cfg": {"image_size": cfg.image_size, "patch_size": cfg.patch_size, "width": cfg.vision_width,
                       "layers": cfg.vision_layers, "head_width": cfg.head_width, "mlp_ratio": cfg.mlp_ratio},
        "text_cfg": {"context_length": cfg.context_length, "vocab_size": cfg.vocab_size, "width": cfg.text_width,
                     "heads": cfg.text_heads, "layers": cfg.text_layers, "pool_type": "eos", "eos_id": cfg.eos_id,
                     "pad_id": 0},
    }


def build_clip(cfg: ClipConfig):
    """open_clip.CLIP with the inline sizes of `cfg` (vocab_size and eos_id must be set)."""
    import open_clip

    if cfg.vocab_size <= 0:
        raise VLAError("ClipConfig.vocab_size must be set from the tokenizer before building the model.")
    return open_clip.CLIP(**open_clip_cfg(cfg))


class WordTokens:
    """Text -> (B, context_length) ids with the project's word-level tokenizer; the last id is [EOS]."""

    def __init__(self, tokenizer, context_length: int):
        self.tokenizer, self.context_length = tokenizer, context_length
        self.eos_id = tokenizer.convert_tokens_to_ids(EOS)

    def __call__(self, texts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.context_length, dtype=torch.long)
        for i, text in enumerate(texts):
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.eos_id]
            if len(ids) > self.context_length:
                raise VLAError(f"text {text[:40]!r}... has {len(ids) - 1} words; the CLIP text encoder takes at "
                               f"most {self.context_length - 1}.")
            out[i, :len(ids)] = torch.tensor(ids)
        return out


class OpenClipTokens:
    """Text -> ids with an OpenCLIP tokenizer, refusing text longer than the context instead of cutting it."""

    def __init__(self, tokenizer, context_length: int):
        self.tokenizer, self.context_length = tokenizer, context_length

    def __call__(self, texts: list[str]) -> torch.Tensor:
        encode = getattr(self.tokenizer, "encode", None)
        for text in texts:
            if encode is not None and len(encode(text)) + 2 > self.context_length:
                raise VLAError(f"text {text[:40]!r}... is longer than the CLIP text encoder's "
                               f"{self.context_length} tokens.")
        return self.tokenizer(texts)


def make_word_tokenizer(sentences: list[str]):
    """The project's word-level tokenizer over `sentences`, plus the [EOS] token CLIP pools at."""
    from vla.models.llm import build_word_tokenizer

    tok = build_word_tokenizer(sentences)
    tok.add_special_tokens({"eos_token": EOS})
    return tok


class Clip:
    """A CLIP model with its tokenizer and image preprocessing; every method takes uint8 (H, W, 3) images."""

    def __init__(self, model, tokens, image_size: int, mean=CLIP_MEAN, std=CLIP_STD, config: dict | None = None,
                 tokenizer=None, device: str = "cpu"):
        self.model = model.to(device).eval()
        self.tokens, self.image_size, self.device = tokens, int(image_size), device
        self.config, self.tokenizer = config, tokenizer
        self.mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, 3, 1, 1)

    @property
    def context_length(self) -> int:
        return self.tokens.context_length

    def pixels(self, images) -> torch.Tensor:
        """uint8 (B, H, W, 3) array or list of (H, W, 3) arrays -> normalised float (B, 3, S, S)."""
        batch = torch.stack([torch.as_tensor(np.ascontiguousarray(im)) for im in images]).to(self.device)
        x = batch.permute(0, 3, 1, 2).float() / 255.0                             # (B, 3, H, W)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                              align_corners=False)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def encode_images(self, images) -> torch.Tensor:
        return self.model.encode_image(self.pixels(images), normalize=True)      # (B, E)

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode_text(self.tokens(texts).to(self.device), normalize=True)  # (T, E)

    def classify(self, image: np.ndarray, labels: list[str]) -> np.ndarray:
        """Probabilities (L,) of each label for one image."""
        img, txt = self.encode_images([image]), self.encode_texts(labels)
        logits = self.model.logit_scale.exp() * img @ txt.T                      # (1, L)
        return logits.softmax(-1)[0].detach().cpu().numpy()

    def similarity(self, images, texts: list[str]) -> np.ndarray:
        """Cosine similarities (B, T) between images and texts (for retrieval)."""
        return (self.encode_images(images) @ self.encode_texts(texts).T).cpu().numpy()

    @torch.no_grad()
    def patch_similarity(self, image: np.ndarray, text: str) -> np.ndarray:
        """Cosine similarity of each projected patch token with the text embedding: (g, g)."""
        visual = self.model.visual
        visual.output_tokens = True
        try:
            _, tokens = visual(self.pixels([image]))                              # (1, N, Wv)
        finally:
            visual.output_tokens = False
        patches = F.normalize(tokens @ visual.proj, dim=-1)                       # (1, N, E)
        sim = (patches @ self.encode_texts([text]).T)[0, :, 0]                    # (N,)
        grid = int(round(sim.numel() ** 0.5))
        return sim.view(grid, grid).cpu().numpy()

    def locate(self, image: np.ndarray, text: str):
        """(heatmap (g, g) in [0, 1], box [x0, y0, x1, y1], centre [x, y], peak similarity) in image pixels."""
        sim = self.patch_similarity(image, text)
        heat = (sim - sim.min()) / max(float(sim.max() - sim.min()), 1e-6)
        peak = np.unravel_index(int(heat.argmax()), heat.shape)
        region = _region(heat >= 0.6, peak)
        ys, xs = np.nonzero(region)
        h, w = image.shape[:2]
        sy, sx = h / heat.shape[0], w / heat.shape[1]
        box = [int(xs.min() * sx), int(ys.min() * sy), int((xs.max() + 1) * sx), int((ys.max() + 1) * sy)]
        centre = [int((peak[1] + 0.5) * sx), int((peak[0] + 0.5) * sy)]
        return heat, box, centre, float(sim.max())

    @torch.no_grad()
    def text_features(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token features of the text tower (B, L, Wt) and its padding mask (B, L) (for cross-attention)."""
        ids = self.tokens(texts).to(self.device)
        return text_token_features(self.model, ids), ids != 0

    def save(self, path: str | Path, half: bool = True, extra: dict | None = None) -> Path:
        from vla.models.checkpoint import write_checkpoint

        if self.config is None or self.tokenizer is None:
            raise VLAError("only CLIP models of this project's format can be saved (this one came from OpenCLIP).")
        config = {"tool": "clip", "model": self.config, **(extra or {})}
        return write_checkpoint(path, config=config, state_dict=self.model.state_dict(), tokenizer=self.tokenizer,
                                dtype=torch.float16 if half else None)


def text_token_features(model, ids: torch.Tensor) -> torch.Tensor:
    """open_clip CLIP text tower up to its final LayerNorm, before pooling: ids (B, L) -> (B, L, Wt)."""
    x = model.token_embedding(ids) + model.positional_embedding                  # (B, L, Wt)
    x = model.transformer(x, attn_mask=model.attn_mask)
    return model.ln_final(x)


def _region(mask: np.ndarray, peak: tuple[int, int]) -> np.ndarray:
    """The 4-connected component of `mask` containing `peak`."""
    out = np.zeros_like(mask)
    stack = [peak]
    while stack:
        y, x = stack.pop()
        if 0 <= y < mask.shape[0] and 0 <= x < mask.shape[1] and mask[y, x] and not out[y, x]:
            out[y, x] = True
            stack += [(y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)]
    return out


def new_clip(cfg: ClipConfig | dict, sentences: list[str], device: str = "cpu") -> Clip:
    """A freshly initialised project CLIP whose tokenizer covers the words of `sentences`."""
    cfg = from_dict(ClipConfig, cfg) if isinstance(cfg, dict) else cfg
    tokenizer = make_word_tokenizer(sentences)
    cfg.vocab_size, cfg.eos_id = len(tokenizer), tokenizer.convert_tokens_to_ids(EOS)
    return Clip(build_clip(cfg), WordTokens(tokenizer, cfg.context_length), cfg.image_size, config=to_dict(cfg),
                tokenizer=tokenizer, device=device)


def _load_project(path: Path, config: dict, device: str) -> Clip:
    from vla.models.checkpoint import read_checkpoint
    from vla.models.llm import load_tokenizer

    cfg = from_dict(ClipConfig, config["model"])
    ckpt = read_checkpoint(path, json_names=())
    model = build_clip(cfg)
    model.load_state_dict({k: v.float() for k, v in ckpt.state_dict.items()})
    tokenizer = load_tokenizer(ckpt.tokenizer_dir)
    return Clip(model, WordTokens(tokenizer, cfg.context_length), cfg.image_size, config=to_dict(cfg),
                tokenizer=tokenizer, device=device)


def _load_open_clip(name: str, pretrained: str | None, device: str) -> Clip:
    import open_clip

    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained, device=device)
        tokenizer = open_clip.get_tokenizer(name)
    except (RuntimeError, ValueError, FileNotFoundError, KeyError) as exc:
        raise VLAError(f"open_clip could not load {name!r} with weights {pretrained!r}: "
                       f"{str(exc).splitlines()[0][:200]}") from None
    cfg = model.visual.preprocess_cfg if hasattr(model.visual, "preprocess_cfg") else {}
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    context = getattr(tokenizer, "context_length", 77)
    return Clip(model, OpenClipTokens(tokenizer, context), size, cfg.get("mean", CLIP_MEAN), cfg.get("std", CLIP_STD),
                device=device)


def load_clip(weights: str = "default", device: str = "cpu", arch: str | None = None) -> Clip:
    """A project CLIP checkpoint directory, an open_clip local-dir, or an OpenCLIP file for architecture `arch`."""
    import open_clip

    from vla.models.tools.checkpoints import check_tool, read_config, resolve

    path = resolve(weights, "clip")
    if path.is_dir() and (path / "open_clip_config.json").is_file():
        return _load_open_clip(f"local-dir:{path}", None, device)
    if path.is_dir():
        return _load_project(path, check_tool(read_config(path), path, "clip"), device)
    if arch is None:
        raise VLAError(f"{str(path)!r} is a checkpoint file; name its OpenCLIP architecture too (arch=, e.g. "
                       "ViT-B-32), or give a project CLIP directory.")
    if arch not in open_clip.list_models():
        from vla import did_you_mean

        raise VLAError(f"unknown OpenCLIP architecture {arch!r}; " + did_you_mean(arch, open_clip.list_models()))
    return _load_open_clip(arch, str(path), device)
