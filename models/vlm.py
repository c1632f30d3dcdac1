"""Captioning and VQA: a BLIP-2-style generator (vision encoder -> Q-Former -> causal LM) on the policy's modules.

The network reuses `VisionEncoder`, the Q-Former bridge, `build_llm` and the word tokenizer of the VLA policy,
and its checkpoint directory has the same layout (config.json, model.safetensors, tokenizer/), so weights move
between the two (the vision tower can start from the CLIP checkpoint, `model.vision.weights`).

Sequence layout, identical in training and inference so positions never shift:
    [vision queries (Q) | object tokens (K, masked where empty) | prompt, left-padded to max_prompt_tokens (P)
     | [SEP] | answer ... [EOS] pad]
with `objects_after_prompt` the object tokens sit between the prompt and [SEP] instead (the shipped model).
There, with `object_roles`, a grounding head learns which object tokens the question names, and with
`object_relation` the positions it points at are added to [SEP] (see ObjectTokens.relate and VLMNet._run).
A caption is the answer to the fixed prompt `CAPTION_PROMPT`; a VQA answer follows its question.
`load_vlm` also opens a local Hugging Face BLIP-2 or LLaVA directory (see `vlm_hf`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vla import VLAError
from vla.models.config import from_dict, to_dict
from vla.models.llm import LLMConfig, base_model, build_llm
from vla.models.objects import ObjectTokens
from vla.models.qformer import BridgeConfig, build_bridge
from vla.models.vision import VisionConfig, VisionEncoder

CAPTION_PROMPT = "describe the scene ."
OBJECT_FIELDS = ("objects", "object_channels", "object_threshold", "objects_after_prompt", "object_roles",
                 "object_relation", "object_fine")
SEP, EOS = "[SEP]", "[EOS]"


@dataclass
class VLMConfig:
    vision: VisionConfig = field(default_factory=lambda: VisionConfig(image_size=64, patch_size=8, width=128,
                                                                      layers=4, head_width=32))
    bridge: BridgeConfig = field(default_factory=lambda: BridgeConfig(num_queries=16, hidden_size=128, layers=2,
                                                                      heads=4, intermediate_size=256))
    llm: LLMConfig = field(default_factory=lambda: LLMConfig(hidden_size=128, layers=3, heads=4, kv_heads=4,
                                                             intermediate_size=384, max_positions=128))
    max_prompt_tokens: int = 16
    max_answer_tokens: int = 40
    objects: int = 0             # object-token slots (0 = none; see vla.models.objects)
    object_channels: int = 32
    object_threshold: float = 0.5  # a heatmap peak above this is an object (held-out detection: see `vla eval tools`)
    objects_after_prompt: bool = False  # object tokens between the prompt and [SEP], so they read the question
    object_roles: bool = False   # train a grounding head: each object token's role in the question (ObjectTokens)
    object_relation: bool = False  # and give [SEP] the named objects' positions (needs objects_after_prompt)
    object_fine: bool = False    # detect on a second, full-resolution heatmap (ObjectTokens `fine`)


def make_tokenizer(sentences: list[str]):
    """The policy's word-level tokenizer over `sentences`, plus [SEP] (answer starts) and [EOS] (answer ends)."""
    from vla.models.llm import build_word_tokenizer

    tok = build_word_tokenizer(sentences + [CAPTION_PROMPT])
    tok.add_special_tokens({"sep_token": SEP, "eos_token": EOS})
    return tok


class VLMNet(nn.Module):
    def __init__(self, cfg: VLMConfig, tokenizer, load_weights: bool = True):
        super().__init__()
        self.cfg, self.tokenizer = cfg, tokenizer
        self.vision = VisionEncoder(cfg.vision, load_weights)
        self.llm = build_llm(cfg.llm, len(tokenizer), load_weights)
        self.bridge = build_bridge(cfg.bridge, self.vision.width, cfg.llm.hidden_size, load_weights,
                                   self.vision.num_tokens)
        # InstructBLIP: with `bridge.text_input` the question joins the queries' self-attention, so the few
        # queries fetch what it asks about instead of a summary of the whole scene
        self.text_to_bridge = nn.Linear(cfg.llm.hidden_size, cfg.bridge.hidden_size) if cfg.bridge.text_input else None
        self.objects = (ObjectTokens(cfg.objects, cfg.object_channels, cfg.llm.hidden_size, cfg.vision.image_size,
                                     threshold=cfg.object_threshold, roles=cfg.object_roles,
                                     relation=cfg.object_relation, fine=cfg.object_fine) if cfg.objects else None)
        if cfg.object_relation and not (cfg.objects and cfg.objects_after_prompt):
            raise VLAError("model.object_relation needs object tokens after the prompt: set model.objects > 0 and "
                           "model.objects_after_prompt=true.")
        self.sep_id, self.eos_id = tokenizer.convert_tokens_to_ids(SEP), tokenizer.convert_tokens_to_ids(EOS)
        self.pad_id = tokenizer.pad_token_id

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def encode_prompts(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> ids (B, P+1) left-padded and ending in [SEP], with their mask."""
        P = self.cfg.max_prompt_tokens
        ids = torch.full((len(prompts), P + 1), self.pad_id, dtype=torch.long)
        for i, prompt in enumerate(prompts):
            tok = self._ids(prompt)
            if not tok or len(tok) > P:
                raise VLAError(f"the question must have 1 to {P} words, got {len(tok)}: {prompt[:60]!r}.")
            ids[i, P - len(tok):] = torch.tensor(tok + [self.sep_id])
        return ids.to(self.device), (ids != self.pad_id).long().to(self.device)

    def patches(self, images, tower_tokens: torch.Tensor | None = None, pixels: torch.Tensor | None = None):
        """uint8 (B, H, W, 3) images -> vision patch tokens (B, N, Dv); `tower_tokens` skips the ViT itself
        (precomputed tokens of a frozen tower; a conv stem still runs on the pixels)."""
        if tower_tokens is not None and self.vision.stem is None:
            return tower_tokens.to(self.device)
        pixels = self._pixels(images) if pixels is None else pixels
        return self.vision(pixels, None if tower_tokens is None else tower_tokens.to(self.device))

    def tower_tokens(self, images) -> torch.Tensor:
        """The vision tower's own patch tokens (B, N, Dv), without the conv stem: what a frozen tower caches."""
        return self.vision.tower_tokens(self._pixels(images))

    def _pixels(self, images) -> torch.Tensor:
        """uint8 (B, H, W, 3) images -> the tower's normalised input (B, 3, S, S)."""
        return self.vision.preprocess(torch.as_tensor(np.ascontiguousarray(images)).to(self.device))

    def prefix(self, images, prompts: list[str], patches: torch.Tensor | None = None, centres=None):
        """-> embeddings (B, Q+K+P+1, H), their mask and the object detector's outputs (None without) for
        [vision queries | object tokens | prompt | SEP]; `patches` are the frozen tower's precomputed tokens for
        `images` (see `patches`), `centres` the true object centres (training; see ObjectTokens)."""
        pixels = None if self.objects is None else self._pixels(images)    # else `patches` makes its own if needed
        patches = self.patches(images, patches, pixels)
        ids, mask = self.encode_prompts(prompts)
        text = self.llm.get_input_embeddings()(ids)                                     # (B, P+1, H)
        vis = self.bridge(patches, None if self.text_to_bridge is None else self.text_to_bridge(text))  # (B, Q, H)
        ones = torch.ones(vis.shape[:2], dtype=torch.long, device=vis.device)
        text = text.to(vis.dtype)
        if self.objects is None:
            return torch.cat([vis, text], 1), torch.cat([ones, mask], 1), None
        tokens, obj_mask, found = self.objects(pixels, centres)
        tokens = tokens.to(vis.dtype)
        if self.cfg.objects_after_prompt:   # the causal LM lets each object token read the question
            return (torch.cat([vis, text[:, :-1], tokens, text[:, -1:]], 1),
                    torch.cat([ones, mask[:, :-1], obj_mask, mask[:, -1:]], 1), found)
        return torch.cat([vis, tokens, text], 1), torch.cat([ones, obj_mask, mask], 1), found

    def forward(self, images, prompts: list[str], answers: list[str], patches: torch.Tensor | None = None,
                centres=None):
        """Teacher-forced cross-entropy over the answer tokens and [EOS], plus, when the true `centres` are given,
        the object-centre loss and (with `object_roles` and a sixth, role column in them) the grounding loss
        (see ObjectTokens)."""
        toks = [(self._ids(a) + [self.eos_id])[: self.cfg.max_answer_tokens] for a in answers]
        tgt = torch.full((len(answers), max(map(len, toks)) + 1), -100, dtype=torch.long)   # (B, A)
        for i, tok in enumerate(toks):
            tgt[i, :len(tok)] = torch.tensor(tok)
        tgt = tgt.to(self.device)
        embeds, mask, found = self.prefix(images, prompts, patches, centres)
        fed = tgt[:, :-1].clamp_min(0)                                                   # (B, A-1)
        fed_mask = (tgt[:, :-1] != -100).long()
        roles = found is not None and centres is not None and self.objects.roles is not None
        hidden, _, objects = self._run(embeds, mask, found, self.llm.get_input_embeddings()(fed).to(embeds.dtype),
                                       fed_mask, objects_hidden=roles, use_cache=False)  # (B, A, H)
        logits = self.llm.get_output_embeddings()(hidden).float()                       # (B, A, V)
        loss = F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=-100)
        with torch.no_grad():
            valid = tgt != -100
            acc = (logits.argmax(-1) == tgt)[valid].float().mean()
        metrics = {"loss": loss.detach(), "token_acc": acc}
        if found is not None and centres is not None:
            centre_loss = self.objects.loss(found, centres)
            loss, metrics["centre_loss"] = loss + centre_loss, centre_loss.detach()
        if roles:
            role_loss = self.objects.role_loss(objects, found["rows"])
            loss, metrics["role_loss"] = loss + role_loss, role_loss.detach()
        return loss, metrics

    def _run(self, embeds, mask, found, tail=None, tail_mask=None, objects_hidden: bool = False,
             use_cache: bool = True):
        """The LM over the prefix and a teacher-forced `tail` -> (hidden states from [SEP] on, the KV cache (None
        without `use_cache`), and the object tokens' hidden states one layer before the last, so the last layer can
        use what the grounding found; None unless `objects_hidden`). With `object_relation` the prefix up to [SEP]
        runs first, and the grounding's pointers (ObjectTokens.relate) join [SEP] before the rest runs on its
        cache: the object tokens come before [SEP], so, the LM being causal, nothing else changes."""
        body = base_model(self.llm)
        relate = self.objects is not None and self.objects.relation is not None
        K = self.cfg.objects    # the object tokens end before [SEP], or before the prompt and [SEP]
        start = embeds.shape[1] - K - (1 if self.cfg.objects_after_prompt else self.cfg.max_prompt_tokens + 1)
        tail = embeds[:, :0] if tail is None else tail
        tail_mask = mask[:, :0] if tail_mask is None else tail_mask
        if not relate:
            out = body(inputs_embeds=torch.cat([embeds, tail], 1), attention_mask=torch.cat([mask, tail_mask], 1),
                       output_hidden_states=objects_hidden, use_cache=use_cache)
            objects = out.hidden_states[-2][:, start:start + K] if objects_hidden else None
            return out.last_hidden_state[:, embeds.shape[1] - 1:], out.cache, objects
        first = body(inputs_embeds=embeds[:, :-1], attention_mask=mask[:, :-1], output_hidden_states=True,
                     use_cache=True)
        objects = first.hidden_states[-2][:, start:start + K]
        sep = embeds[:, -1:] + self.objects.relate(objects, found["rows"]).to(embeds.dtype)[:, None]
        out = body(inputs_embeds=torch.cat([sep, tail], 1), attention_mask=torch.cat([mask, tail_mask], 1),
                   cache=first.cache, use_cache=use_cache)
        return out.last_hidden_state, out.cache if use_cache else None, objects

    @torch.no_grad()
    def generate(self, images, prompts: list[str], max_tokens: int | None = None) -> list[str]:
        """Greedy decoding with a KV cache -> one answer string per image."""
        max_tokens = max_tokens or self.cfg.max_answer_tokens
        embeds, mask, found = self.prefix(images, prompts)
        body, embed, head = base_model(self.llm), self.llm.get_input_embeddings(), self.llm.get_output_embeddings()
        hidden, cache, _ = self._run(embeds, mask, found)                                # (B, 1, H)
        done = torch.zeros(len(prompts), dtype=torch.bool, device=self.device)
        tokens = []
        for _ in range(max_tokens):
            tok = head(hidden).argmax(-1)                                                # (B, 1)
            tok[done] = self.eos_id
            tokens.append(tok)
            done |= tok[:, 0] == self.eos_id
            if bool(done.all()):
                break
            mask = torch.cat([mask, mask[:, :1]], 1)
            out = body(inputs_embeds=embed(tok).to(embeds.dtype), attention_mask=mask, cache=cache,
                       use_cache=True)
            cache, hidden = out.cache, out.last_hidden_state
        return [self._decode(row) for row in torch.cat(tokens, 1).tolist()]

    def _decode(self, ids: list[int]) -> str:
        ids = ids[: ids.index(self.eos_id)] if self.eos_id in ids else ids
        text = " ".join(self.tokenizer.convert_ids_to_tokens(ids))
        return text.replace(" ,", ",").replace(" ?", "?").replace(" .", ".").strip()


class VLM:
    """Caption and VQA over uint8 (H, W, 3) images with a project VLM network."""

    def __init__(self, net: VLMNet, extra: dict | None = None):
        self.net, self.extra = net.eval(), extra or {}

    def caption(self, image: np.ndarray) -> str:
        return self.captions([image])[0]

    def answer(self, image: np.ndarray, question: str) -> str:
        return self.answers([image], [question])[0]

    def captions(self, images) -> list[str]:
        return self.net.generate(images, [CAPTION_PROMPT] * len(images))

    def answers(self, images, questions: list[str]) -> list[str]:
        return self.net.generate(images, list(questions), max_tokens=6)

    def add_words(self, sentences: list[str]) -> list[str]:
        """Grow the word-level tokenizer by the words of `sentences` it lacks (for a run continued on data with new
        words); known words keep their ids, and the new rows of the LM's input and output embeddings start at the
        mean of the known ones. Returns the new words."""
        from vla.models.llm import build_word_tokenizer, words

        net = self.net
        known = net.tokenizer.get_vocab()
        new = [w for w in dict.fromkeys(w for s in sentences for w in words(s)) if w not in known]
        if new:
            net.tokenizer = build_word_tokenizer(new, vocab=known)
            net.tokenizer.add_special_tokens({"sep_token": SEP, "eos_token": EOS})
            net.llm.resize_token_embeddings(len(net.tokenizer), mean_resizing=False)
            with torch.no_grad():
                for table in {net.llm.get_input_embeddings().weight, net.llm.get_output_embeddings().weight}:
                    table[len(known):] = table[:len(known)].mean(0)
            net.cfg.llm.hf_config = {k: v for k, v in net.llm.config.to_dict().items() if k != "transformers_version"}
        return new

    def save(self, path: str | Path, half: bool = True, extra: dict | None = None) -> Path:
        from vla.models.checkpoint import write_checkpoint

        config = {"tool": "vlm", "model": to_dict(self.net.cfg)}
        return write_checkpoint(path, config=config, state_dict=self.net.state_dict(), tokenizer=self.net.tokenizer,
                                json_files=extra or {}, dtype=torch.float16 if half else None)


def new_vlm(cfg: VLMConfig | dict, sentences: list[str], device: str = "cpu") -> VLM:
    cfg = from_dict(VLMConfig, cfg) if isinstance(cfg, dict) else cfg
    return VLM(VLMNet(cfg, make_tokenizer(sentences)).to(device))


def _load_project(path: Path, config: dict, device: str, objects: dict | None = None) -> VLM:
    from dataclasses import replace

    from vla.models.checkpoint import read_checkpoint
    from vla.models.llm import load_tokenizer

    cfg = from_dict(VLMConfig, config["model"])
    if objects:
        cfg = replace(cfg, **objects)
    json_names = tuple(p.name for p in path.glob("*.json") if p.name != "config.json")
    ckpt = read_checkpoint(path, json_names=json_names)
    net = VLMNet(cfg, load_tokenizer(ckpt.tokenizer_dir), load_weights=False)
    state = {k: v.float() for k, v in ckpt.state_dict.items()}
    if not objects:
        net.load_state_dict(state)
        return VLM(net.to(device), ckpt.json_files)
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError:  # a shape differs
        missing, unexpected = [], ["?"]
    if unexpected or not all(k.startswith("objects.") for k in missing):
        raise VLAError(f"{objects['objects']} object slots of {objects['object_channels']} channels do not fit the "
                       f"object tokens of {path}; keep its model.objects and model.object_channels.")
    return VLM(net.to(device), ckpt.json_files)


def load_vlm(weights: str = "default", device: str = "cpu", objects: dict | None = None) -> "VLM":
    """A project VLM checkpoint directory ("default" = shipped), or a local HF BLIP-2 / LLaVA directory.

    `objects` (VLMConfig's object fields: `objects`, `object_channels`, ...) replaces a project checkpoint's object
    settings, adding the object tokens or object layers it lacks, fresh (to train on from it); every weight it has
    must fit."""
    from vla.models.tools.checkpoints import check_tool, read_config, resolve

    path = resolve(weights, "vlm")
    config = read_config(path) if path.is_dir() else None
    if config is not None and "tool" not in config and "model_type" in config:
        from vla.models.vlm_hf import load_hf_vlm

        return load_hf_vlm(path, config, device)
    return _load_project(path, check_tool(config, path, "vlm"), device, objects)
