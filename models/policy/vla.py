"""The VLA policy network: image -> ViT patches -> bridge -> LM prefix [vision | state | text] -> action tokens.

Training is next-token cross-entropy over a chunk of K actions x D dimensions, constrained to the action
tokens each dimension may emit. Two decoders share the weights' layout:
  * parallel: K*D learned query embeddings follow the prefix; one forward pass emits the whole chunk;
  * autoregressive: each action token is fed back (teacher forcing in training, a KV cache at inference).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vla import VLAError
from vla.models.action_tokenizer import ActionTokenizer
from vla.models.llm import base_model, build_llm
from vla.models.policy.config import ModelConfig
from vla.models.policy.grounding import GroundingHead, color_match_maps
from vla.models.qformer import build_bridge
from vla.models.vision import VisionEncoder


def _vec(stats: dict, feature: str, key: str, dim: int) -> torch.Tensor:
    try:
        value = torch.tensor(stats[feature][key], dtype=torch.float32).flatten()
    except (KeyError, TypeError):
        raise VLAError(f"dataset statistics lack {feature}.{key}; recompute meta/stats.json.") from None
    if value.numel() != dim:
        raise VLAError(f"dataset statistics {feature}.{key} have {value.numel()} values, the model expects {dim}.")
    return value


class VLANet(nn.Module):
    def __init__(self, cfg: ModelConfig, tokenizer, stats: dict, load_weights: bool = True):
        super().__init__()
        self.cfg, self.tokenizer = cfg, tokenizer
        act = cfg.action
        names = ActionTokenizer([0.0] * act.dim, [1.0] * act.dim, n_bins=act.n_bins).token_names()
        if tokenizer.convert_tokens_to_ids(names[0]) in (None, tokenizer.unk_token_id):
            tokenizer.add_tokens(names)                          # appended after the text vocabulary
        offset = tokenizer.convert_tokens_to_ids(names[0])
        if tokenizer.convert_tokens_to_ids(names[-1]) != offset + len(names) - 1:
            raise VLAError("the tokenizer's action tokens are not contiguous; rebuild the tokenizer.")
        self.actions = ActionTokenizer(_vec(stats, "action", "q01", act.dim), _vec(stats, "action", "q99", act.dim),
                                       act.gripper_dims, act.n_bins, offset)
        self.vision = VisionEncoder(cfg.vision, load_weights)
        self.llm = build_llm(cfg.llm, len(tokenizer), load_weights)
        hidden = cfg.llm.hidden_size
        self.bridge = build_bridge(cfg.bridge, self.vision.width, hidden, load_weights, self.vision.num_tokens)
        dims = list(range(cfg.state_dim)) if cfg.state_dims is None else list(cfg.state_dims)
        self.register_buffer("state_index", torch.tensor(dims, dtype=torch.long), persistent=False)
        self.state_proj = nn.Linear(len(dims), hidden) if cfg.state_token else None
        self.text_to_bridge = nn.Linear(hidden, cfg.bridge.hidden_size) if self.bridge.text_input else None
        self.n_act = act.horizon * act.dim
        # parallel decoding's K*D slot embeddings (kept, frozen, under autoregressive decoding: one layout)
        self.action_queries = nn.Parameter(torch.randn(self.n_act, hidden) * 0.02,
                                           requires_grad=act.decoding == "parallel")
        self.aux_head = None
        self.n_vis = self.bridge.num_tokens or self.vision.num_tokens
        if cfg.aux_waypoint > 0 or cfg.ground_goal:
            self.register_buffer("wp_mean", _vec(stats, "waypoint", "mean", 6), persistent=False)
            self.register_buffer("wp_std", _vec(stats, "waypoint", "std", 6), persistent=False)
        if cfg.aux_waypoint > 0:
            # auxiliary: the expert's waypoint and skill goal, read from the bridge's vision tokens alone (they do
            # not see the proprio state, so only looking at the image lowers this loss) or from the LM's states
            width = self.n_vis * hidden if cfg.aux_source == "bridge" else hidden
            self.aux_head = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 256), nn.GELU(), nn.Linear(256, 6))
        self.ground = GroundingHead(self.vision.width, hidden, self.vision.grid, goal=cfg.ground_goal,
                                    color_maps=cfg.ground_color_maps,
                                    relations=cfg.ground_relations, peak=cfg.ground_peak,
                                    pixel_depth=cfg.ground_pixel_depth) if cfg.grounding else None
        self.goal_pointer = None
        if cfg.goal_pointer:
            from vla.models.config import from_dict
            from vla.models.goal import GoalConfig, GoalPointer

            self.goal_pointer = GoalPointer(from_dict(GoalConfig, cfg.goal_pointer))
        self.color_mlp = None
        if cfg.word_rgb:
            self._ground_words(cfg.word_rgb, hidden)
        self.register_buffer("state_mean", _vec(stats, "state", "mean", cfg.state_dim), persistent=False)
        self.register_buffer("state_std", _vec(stats, "state", "std", cfg.state_dim).clamp_min(1e-3),
                             persistent=False)
        allowed = self.actions.allowed_mask().repeat(act.horizon, 1)                   # (K*D, A)
        self.register_buffer("neg_mask", torch.where(allowed, 0.0, float("-inf")), persistent=False)

    def _ground_words(self, word_rgb: dict[str, list[float]], hidden: int) -> None:
        """Words of `word_rgb` that are single tokens get embeddings computed from their RGB value."""
        n = len(self.tokenizer)
        rgb, is_color = torch.zeros(n, 3), torch.zeros(n, dtype=torch.bool)
        for word, value in word_rgb.items():
            ids = self.tokenizer(word, add_special_tokens=False)["input_ids"]
            if len(ids) == 1 and ids[0] != self.tokenizer.unk_token_id:
                rgb[ids[0]], is_color[ids[0]] = torch.tensor(value[:3], dtype=torch.float32), True
        self.register_buffer("word_rgb", rgb, persistent=False)                       # (V, 3)
        self.register_buffer("word_is_color", is_color, persistent=False)             # (V,)
        self.color_mlp = nn.Sequential(nn.Linear(3, hidden), nn.GELU(), nn.Linear(hidden, hidden))

    def word_colors(self, ids: torch.Tensor, color_matrix: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) token ids -> the RGB value of each colour word (B, T, 3), through the sample's colour transform
        (B, 3, 3) when the images were augmented with one (data.color_aug)."""
        rgb = self.word_rgb[ids]
        if color_matrix is None:
            return rgb
        return torch.einsum("bij,btj->bti", color_matrix.to(rgb), rgb).clamp(0, 1)

    def embed_text(self, ids: torch.Tensor, color_matrix: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T) token ids -> (B, T, H); grounded colour words are embedded from their RGB value."""
        emb = self.llm.get_input_embeddings()(ids)
        if self.color_mlp is None:
            return emb
        color = self.color_mlp(self.word_colors(ids, color_matrix)).to(emb.dtype)     # (B, T, H)
        return torch.where(self.word_is_color[ids][..., None], color, emb)

    def instruction_colors(self, ids: torch.Tensor, color_matrix: torch.Tensor | None = None):
        """(B, T) token ids -> the RGB (B, M, 3) of the first M = ground_color_maps colour words in sentence order,
        and which of the M slots hold one (B, M)."""
        B, M = ids.shape[0], self.cfg.ground_color_maps
        is_color = self.word_is_color[ids]                                               # (B, T)
        order = is_color.long().cumsum(1) - 1                                            # rank among colour words
        # (B, T, M): word t fills slot m; a one-hot product, not indexing, so no host sync (CUDA graphs)
        slot = F.one_hot(order.clamp(0, M - 1), M).float() * (is_color & (order < M))[..., None].float()
        rgb = torch.einsum("btm,btc->bmc", slot, self.word_colors(ids, color_matrix).float())
        return rgb, slot.sum(1)

    # ----- inputs -----
    def encode_text(self, texts: list[str], device, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        # Padded to the batch's longest (at most max_text_tokens), or to `length` (static shapes: CUDA graphs): the
        # LM's rotary positions are relative, and padding in the middle of the prefix is masked, so any pad length
        # is in-distribution.
        enc = self.tokenizer(list(texts), padding="max_length" if length else "longest", truncation=True,
                             max_length=length or self.cfg.max_text_tokens, return_tensors="pt")
        return enc["input_ids"].to(device), enc["attention_mask"].to(device)              # (B, T) each

    def prefix(self, images, state, text_ids, text_mask) -> tuple[torch.Tensor, torch.Tensor]:
        """-> embeddings (B, P, H) and attention mask (B, P) for [vision tokens | grounding | state | text]."""
        return self.prefix_parts(images, state, text_ids, text_mask)[:2]

    def prefix_parts(self, images, state, text_ids, text_mask, teacher_goal=None, color_matrix=None):
        """prefix() plus the grounding head's outputs (a dict; None without a grounding head).

        teacher_goal: optional (B, 2) goal positions in metres (NaN rows: use the prediction) for the grounding
        token to carry instead of the predicted goal (training with `ground_teacher`). color_matrix: optional
        (B, 3, 3) colour transform the images were augmented with (data.color_aug); colour words take it too.
        """
        raw = self.vision.resized(images)                                                # (B, 3, S, S) in [0, 1]
        pixels = self.vision.preprocess(raw)
        patches = self.vision(pixels)                                                    # (B, N, Dv)
        text = self.embed_text(text_ids, color_matrix)                                   # (B, T, H)
        vis = self.bridge(patches, None if self.text_to_bridge is None else self.text_to_bridge(text))  # (B, Q, H)
        ones = torch.ones(vis.shape[0], 1, dtype=torch.long, device=vis.device)
        parts, masks = [vis], [ones.expand(-1, vis.shape[1])]
        st = None
        if self.state_proj is not None:
            st = (state.to(vis.device).float() - self.state_mean) / self.state_std
            st = self.state_proj(st[:, self.state_index])                                 # (B, H)
        ground = None
        if self.ground is not None:
            m = text_mask[..., None].to(text.dtype)
            summary = (text * m).sum(1) / m.sum(1).clamp_min(1)                          # (B, H)
            ee, teacher = None, None
            if self.ground.goal:
                mean, std = self.wp_mean[4:6], self.wp_std[4:6]
                ee = (state.to(vis.device).float()[:, :2] - mean) / std
                if teacher_goal is not None:
                    teacher = (teacher_goal.to(vis.device).float() - mean) / std
            maps = None
            if self.ground.color_maps:
                maps = color_match_maps(raw, *self.instruction_colors(text_ids.to(raw.device), color_matrix))
            token, ground = self.ground(patches, summary if st is None else summary + st, ee, teacher,
                                        self.wp_std[4:6] if ee is not None else None, pixels, maps)
            parts.append(token[:, None].to(vis.dtype))
            masks.append(ones)
        if st is not None:
            parts.append(st[:, None].to(vis.dtype))                                      # (B, 1, H)
            masks.append(ones)
        parts.append(text.to(vis.dtype))
        masks.append(text_mask)
        return torch.cat(parts, 1), torch.cat(masks, 1), ground

    def action_logits(self, hidden: torch.Tensor, start: int = 0) -> torch.Tensor:
        """hidden (B, L, H) at action slots start..start+L -> constrained logits (B, L, A) over action tokens."""
        head = self.llm.get_output_embeddings()
        a = self.actions
        weight = head.weight[a.offset: a.offset + a.vocab_size]                          # (A, H)
        logits = hidden @ weight.T.to(hidden.dtype)
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[a.offset: a.offset + a.vocab_size]
        return logits.float() + self.neg_mask[start: start + hidden.shape[1]]

    def _body(self, embeds, mask, dense: bool = False, **kwargs):
        """The LM body over embeddings. `dense`: pass the (B, L) key mask as a causal (B, 1, L, L) boolean mask
        built here, so the LM makes no data-dependent checks of it (a host sync that CUDA graph capture forbids)."""
        if dense:
            L = mask.shape[1]
            causal = torch.ones(L, L, dtype=torch.bool, device=mask.device).tril()
            mask = causal[None, None] & mask.bool()[:, None, None, :]
            kwargs.setdefault("use_cache", False)
        return base_model(self.llm)(inputs_embeds=embeds, attention_mask=mask, **kwargs)

    # ----- training -----
    def forward(self, batch: dict, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """batch as the dataset collates it -> (loss, metrics)."""
        images = batch["observation.images.front"]
        device = self.action_queries.device
        actions = batch["action"].to(device).float()                                    # (B, K, D)
        B, K, D = actions.shape
        if (K, D) != (self.cfg.action.horizon, self.cfg.action.dim):
            raise VLAError(f"batch actions are (K={K}, D={D}); the model expects "
                           f"(K={self.cfg.action.horizon}, D={self.cfg.action.dim}).")
        text_ids, text_mask = self.encode_text(batch["task"], device)
        if self.training and self.cfg.word_dropout > 0:
            drop = torch.rand(text_ids.shape, generator=generator, device="cpu").to(device) < self.cfg.word_dropout
            text_ids = torch.where(drop & text_mask.bool(), self.tokenizer.unk_token_id, text_ids)
        teacher = None
        if self.training and self.cfg.ground_teacher > 0 and "oracle.waypoint" in batch:
            goal = batch["oracle.waypoint"][:, 4:6].float()
            pick = (torch.rand(B, generator=generator) < self.cfg.ground_teacher) & batch["oracle.valid"].bool()
            noise = torch.randn(B, 2, generator=generator) * 0.005
            teacher = torch.where(pick[:, None], goal + noise, torch.full_like(goal, float("nan")))
        embeds, mask, ground = self.prefix_parts(images, batch["observation.state"], text_ids, text_mask, teacher,
                                                 batch.get("aug.color_matrix"))
        targets = self.actions.encode(actions).reshape(B, K * D)                         # (B, K*D)
        hidden = self._slots_hidden(embeds, mask, targets)                               # (B, K*D, H)
        logits = self.action_logits(hidden)                                              # (B, K*D, A)
        local = targets - self.actions.offset
        pad = batch.get("action_is_pad")
        valid = torch.ones(B, K, D, dtype=torch.bool, device=device) if pad is None else \
            (~pad.to(device).bool())[:, :, None].expand(B, K, D)
        valid = valid.reshape(B, K * D)
        if self.cfg.action.label_sigma > 0:
            loss = self._soft_ce(logits[valid], actions.reshape(B, K * D)[valid], valid.nonzero()[:, 1] % D)
        else:
            loss = F.cross_entropy(logits[valid], local[valid])
        with torch.no_grad():
            pred = logits.argmax(-1)
            acc = (pred == local)[valid].float().mean()
            l1 = (self.actions.decode_local(pred.view(B, K, D)) - actions).abs()[valid.view(B, K, D)].mean()
        metrics = {"loss": loss.detach(), "action_loss": loss.detach(), "token_acc": acc, "action_l1": l1}
        if self.aux_head is not None and "oracle.waypoint" in batch:
            aux_in = embeds[:, : self.n_vis].flatten(1) if self.cfg.aux_source == "bridge" else hidden.mean(1)
            aux, err = self._aux_loss(aux_in, batch["oracle.waypoint"].to(device), batch["oracle.valid"].to(device))
            loss = loss + self.cfg.aux_waypoint * aux
            metrics.update(aux_loss=aux.detach(), goal_err_cm=err, loss=loss.detach())
        if ground is not None and "oracle.pixel" in batch:
            valid_goal = batch["oracle.valid"].to(device)
            g_loss, g_acc, target = self.ground.loss(ground["logits"], batch["oracle.pixel"].to(device), valid_goal,
                                                     images.shape[1:3] if images.dtype == torch.uint8
                                                     else images.shape[2:4])
            metrics.update(ground_acc=g_acc)
            if self.ground.goal:
                goal = (batch["oracle.waypoint"][:, 4:6].to(device).float() - self.wp_mean[4:6]) / self.wp_std[4:6]
                if self.ground.goal == "patch":
                    r_loss, err = self.ground.regress_loss(ground, goal, target, self.wp_std[4:6])
                else:
                    hw = images.shape[1:3] if images.dtype == torch.uint8 else images.shape[2:4]
                    uv = batch["oracle.pixel"].to(device).float() / torch.tensor([hw[1], hw[0]], device=device)
                    r_loss, err = self.ground.pixel_loss(ground, goal, uv, valid_goal, self.wp_std[4:6])
                g_loss = g_loss + r_loss
                metrics.update(ground_reg_loss=r_loss.detach(), ground_err_cm=err)
            loss = loss + self.cfg.grounding_loss * g_loss
            metrics.update(ground_loss=g_loss.detach(), loss=loss.detach())
        return loss, metrics

    def _soft_ce(self, logits: torch.Tensor, values: torch.Tensor, dims: torch.Tensor) -> torch.Tensor:
        """Cross-entropy against Gaussian soft targets over the bins (one-hot for gripper dimensions).

        logits (M, A) over the action vocabulary, values (M,) continuous targets, dims (M,) their dimension.
        """
        a = self.actions
        low, width = a.low.to(values.device)[dims], a.bin_width.to(values.device)[dims]
        pos = (values.float() - low) / width - 0.5                                       # in bin-centre units
        centres = torch.arange(a.vocab_size, device=values.device, dtype=torch.float32)
        score = -0.5 * ((centres[None] - pos[:, None]) / self.cfg.action.label_sigma) ** 2
        score[:, a.n_bins:] = float("-inf")
        soft = score.softmax(-1)                          # normalised in log space: no underflow when narrow
        grip = a.gripper.to(values.device)[dims]
        hard = F.one_hot(a.n_bins + (values >= 0.5).long(), a.vocab_size).float()     # open / closed token
        target = torch.where(grip[:, None], hard, soft)
        logp = logits.float().log_softmax(-1)
        return -torch.where(target > 0, target * logp, torch.zeros_like(logp)).sum(-1).mean()

    def _aux_loss(self, features, labels, ok) -> tuple[torch.Tensor, torch.Tensor]:
        """Smooth-L1 on normalised (waypoint, goal) over frames with valid labels; also the goal's xy error (cm)."""
        pred = self.aux_head(features.float())                                           # (B, 6) normalised
        if not bool(ok.any()):
            return pred.sum() * 0.0, torch.tensor(float("nan"))
        target = (labels - self.wp_mean) / self.wp_std
        loss = F.smooth_l1_loss(pred[ok], target[ok], beta=0.1)
        with torch.no_grad():
            xy = pred[ok][:, 4:6] * self.wp_std[4:6] + self.wp_mean[4:6]
            err = (xy - labels[ok][:, 4:6]).norm(dim=-1).mean() * 100
        return loss, err

    def _slots_hidden(self, embeds, mask, targets, decoding: str | None = None, dense: bool = False) -> torch.Tensor:
        """Hidden states that predict the K*D action tokens: from the slot queries (parallel) or from the
        teacher-forced previous tokens (autoregressive training); `decoding` defaults to the config's."""
        B, P = mask.shape
        ones = torch.ones(B, self.n_act, dtype=mask.dtype, device=mask.device)
        if (decoding or self.cfg.action.decoding) == "parallel":
            slots = self.action_queries.to(embeds.dtype).expand(B, -1, -1)                # (B, K*D, H)
            out = self._body(torch.cat([embeds, slots], 1), torch.cat([mask, ones], 1), dense)
            return out.last_hidden_state[:, P:]
        fed = self.llm.get_input_embeddings()(targets[:, :-1]).to(embeds.dtype)          # (B, K*D-1, H)
        out = self._body(torch.cat([embeds, fed], 1), torch.cat([mask, ones[:, :-1]], 1))
        return out.last_hidden_state[:, P - 1:]

    # ----- inference -----
    @torch.no_grad()
    def predict_chunk(self, images, state, texts: list[str], decoding: str | None = None, goal=None,
                      pointer: bool = True) -> torch.Tensor:
        """-> actions (B, K, D), decoded greedily from action tokens only. `goal` (B, 2) in metres: what the
        grounding token carries (NaN rows: the head's own estimate); else the goal pointer's when one is
        attached and `pointer`, else the head's own."""
        device = self.action_queries.device
        text_ids, text_mask = self.encode_text(texts, device)
        if goal is None and pointer and self.goal_pointer is not None:
            goal = self.goal_pointer.predict(images, texts, state)
        embeds, mask, _ = self.prefix_parts(images, state, text_ids, text_mask, teacher_goal=goal)
        decoding = decoding or self.cfg.action.decoding
        local = self._decode_parallel(embeds, mask) if decoding == "parallel" else self._decode_ar(embeds, mask)
        K, D = self.cfg.action.horizon, self.cfg.action.dim
        return self.actions.decode_local(local.view(-1, K, D))

    def _decode_parallel(self, embeds, mask, dense: bool = False) -> torch.Tensor:
        hidden = self._slots_hidden(embeds, mask, None, "parallel", dense)
        return self.action_logits(hidden).argmax(-1)                                     # (B, K*D)

    def _decode_ar(self, embeds, mask) -> torch.Tensor:
        out = self._body(embeds, mask, use_cache=True)
        cache, hidden = out.cache, out.last_hidden_state[:, -1:]
        embed = self.llm.get_input_embeddings()
        tokens = []
        for j in range(self.n_act):
            tok = self.action_logits(hidden, start=j).argmax(-1)                         # (B, 1) local index
            tokens.append(tok)
            if j == self.n_act - 1:
                break
            mask = torch.cat([mask, mask[:, :1]], 1)
            step = embed(tok + self.actions.offset).to(embeds.dtype)                     # (B, 1, H)
            out = self._body(step, mask, cache=cache, use_cache=True)
            cache, hidden = out.cache, out.last_hidden_state
        return torch.cat(tokens, 1)                                                      # (B, K*D)
