"""Vision-to-language bridges: a BLIP-2 Q-Former (transformers' `Blip2QFormerModel`) or an MLP over all patches.

Both map patch tokens (B, N, Dv) to language-model embeddings (B, Q, Dlm). The Q-Former can start from a
local BLIP-2 checkpoint directory (a full `Blip2*` model or a saved `Blip2QFormerModel`); its sizes are then
taken from that checkpoint and written back into the config so the resolved config stays true.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vla import VLAError, did_you_mean


@dataclass
class BridgeConfig:
    kind: str = "qformer"            # "qformer" | "mlp" (projection of all patch tokens)
    num_queries: int = 16
    hidden_size: int = 256
    layers: int = 2
    heads: int = 4
    intermediate_size: int = 1024
    cross_attention_frequency: int = 1
    text_input: bool = False         # InstructBLIP-style: the instruction joins the queries' self-attention
    position_mix: bool = False       # per-position linear map of patch tokens before the bridge (see PositionMix)
    weights: str | None = None       # local BLIP-2 / Blip2QFormerModel directory


def _qformer_config(cfg: BridgeConfig, vision_width: int):
    from transformers import Blip2QFormerConfig

    return Blip2QFormerConfig(hidden_size=cfg.hidden_size, num_hidden_layers=cfg.layers,
                              num_attention_heads=cfg.heads, intermediate_size=cfg.intermediate_size,
                              cross_attention_frequency=cfg.cross_attention_frequency,
                              encoder_hidden_size=vision_width, vocab_size=2,
                              use_qformer_text_input=cfg.text_input)


def _read_blip2(directory: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(qformer config dict, weights with `qformer.` stripped and `query_tokens` kept) from a local directory."""
    from safetensors.torch import load_file

    config_path, weights_path = directory / "config.json", directory / "model.safetensors"
    if not (config_path.is_file() and weights_path.is_file()):
        raise VLAError(f"Q-Former weights {str(directory)!r} must be a directory with config.json and model.safetensors.")
    config = json.loads(config_path.read_text())
    sd = load_file(str(weights_path))
    if config.get("model_type") == "blip_2_qformer":
        return config, sd
    if "qformer_config" not in config:
        raise VLAError(f"{str(config_path)!r} is neither a BLIP-2 model nor a BLIP-2 Q-Former config.")
    sub = {k.removeprefix("qformer."): v for k, v in sd.items() if k.startswith("qformer.")}
    if "query_tokens" in sd:
        sub["query_tokens"] = sd["query_tokens"]
    return config["qformer_config"], sub


class QFormerBridge(nn.Module):
    """Learnable queries cross-attend to patch tokens, then a linear map into the LM: (B,N,Dv) -> (B,Q,Dlm)."""

    def __init__(self, cfg: BridgeConfig, vision_width: int, out_dim: int, load_weights: bool = True):
        super().__init__()
        from transformers import Blip2QFormerConfig, Blip2QFormerModel

        weights = None
        if load_weights and cfg.weights:
            qcfg_dict, weights = _read_blip2(Path(cfg.weights))
            qcfg = Blip2QFormerConfig(**{k: v for k, v in qcfg_dict.items() if k != "model_type"})
            if qcfg.encoder_hidden_size != vision_width:
                raise VLAError(f"the Q-Former in {cfg.weights!r} expects vision width {qcfg.encoder_hidden_size}, "
                               f"but the vision encoder gives {vision_width}.")
            cfg.hidden_size, cfg.layers = qcfg.hidden_size, qcfg.num_hidden_layers
            cfg.heads, cfg.intermediate_size = qcfg.num_attention_heads, qcfg.intermediate_size
            cfg.cross_attention_frequency = qcfg.cross_attention_frequency
            if "query_tokens" in weights:
                cfg.num_queries = int(weights["query_tokens"].shape[1])
        self.qformer = Blip2QFormerModel(_qformer_config(cfg, vision_width))
        self.query_tokens = nn.Parameter(torch.randn(1, cfg.num_queries, cfg.hidden_size) * 0.02)
        self.proj = nn.Linear(cfg.hidden_size, out_dim)
        self.num_tokens = cfg.num_queries
        self.text_input = cfg.text_input
        if weights is not None:
            query = weights.pop("query_tokens", None)
            missing, unexpected = self.qformer.load_state_dict(weights, strict=False)
            text_ffn = (".intermediate.", ".output.")  # InstructBLIP's text feed-forward, absent from BLIP-2
            if unexpected or any(not any(t in k for t in text_ffn) for k in missing):
                raise VLAError(f"the Q-Former weights in {cfg.weights!r} do not fit this Q-Former "
                               f"({len(missing)} missing, {len(unexpected)} unexpected tensors).")
            if query is not None:
                self.query_tokens.data.copy_(query)

    def forward(self, patches: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        """patches (B, N, Dv), optional instruction embeddings (B, T, Dq) -> (B, Q, Dlm)."""
        queries = self.query_tokens.expand(patches.shape[0], -1, -1)           # (B, Q, Dq)
        q = queries.shape[1]
        if self.text_input and text is not None:
            queries = torch.cat([queries, text.to(queries.dtype)], 1)         # (B, Q+T, Dq)
        out = self.qformer(query_embeds=queries, query_length=q, encoder_hidden_states=patches)
        return self.proj(out.last_hidden_state[:, :q])                        # (B, Q, Dlm)


class MLPBridge(nn.Module):
    """Ablation: every patch token through a 2-layer MLP: (B, N, Dv) -> (B, N, Dlm)."""

    def __init__(self, cfg: BridgeConfig, vision_width: int, out_dim: int, load_weights: bool = True):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(vision_width), nn.Linear(vision_width, cfg.hidden_size),
                                 nn.GELU(), nn.Linear(cfg.hidden_size, out_dim))
        self.num_tokens = None  # = number of patches
        self.text_input = False

    def forward(self, patches: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(patches)


class PositionMix(nn.Module):
    """Patch n gets its own linear map: (B, N, D) -> (B, N, D), y_n = W_n LN(x_n) + x_n.

    Attention that starts out uniform pools a *set* of tokens, so "which patch holds the red block" is invisible
    to it until content-dependent attention has been learned; untied per-position weights make the pooled
    features position-dependent from the first step.
    """

    def __init__(self, num_patches: int, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.weight = nn.Parameter(torch.randn(num_patches, width, width) * width ** -0.5)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return patches + torch.einsum("bnd,nde->bne", self.norm(patches), self.weight)


class Bridge(nn.Module):
    """Optional PositionMix followed by the chosen bridge: (B, N, Dv) [+ text] -> (B, Q or N, Dlm)."""

    def __init__(self, cfg: BridgeConfig, inner: nn.Module, num_patches: int | None, vision_width: int):
        super().__init__()
        if cfg.position_mix and not num_patches:
            raise VLAError("bridge.position_mix needs the number of patch tokens.")
        self.mix = PositionMix(num_patches, vision_width) if cfg.position_mix else None
        self.inner = inner
        self.text_input = inner.text_input
        self.num_tokens = inner.num_tokens

    def forward(self, patches: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        return self.inner(patches if self.mix is None else self.mix(patches), text)


BRIDGES = {"qformer": QFormerBridge, "mlp": MLPBridge}


def build_bridge(cfg: BridgeConfig, vision_width: int, out_dim: int, load_weights: bool = True,
                 num_patches: int | None = None) -> nn.Module:
    if cfg.kind not in BRIDGES:
        raise VLAError(f"unknown bridge kind {cfg.kind!r}; " + did_you_mean(cfg.kind, sorted(BRIDGES)))
    inner = BRIDGES[cfg.kind](cfg, vision_width, out_dim, load_weights)
    return Bridge(cfg, inner, num_patches, vision_width) if cfg.position_mix else inner
