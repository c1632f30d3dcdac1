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
        b, t = (is_color & (order < M)).nonzero(as_tuple=True)
        rgb = torch.zeros(B, M, 3, device=ids.device)
        valid = torch.zeros(B, M, device=ids.device)
        rgb[b, order[b, t]] = self.word_colors(ids, color_matrix)[b, t]
        valid[b, order[b, t]] = 1.0
        return rgb, valid

    # ----- inputs -----
    def encode_text(self, texts: list[str], device) -> tuple[torch.Tensor, torch.Tensor]:
        # Padded to the batch's longest (at most max_text_tokens): the LM's rotary positions are relative,
        # and padding in the middle of the prefix is masked, so any pad length is in-distribution.
        enc = self.tokenizer(list(texts), padding="longest", truncation=True,
                             max_length=self.cfg.max_text_tokens, return_tensors="pt")
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

    def _body(self, embeds, mask, **kwargs):
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

    def _slots_hidden(self, embeds, mask, targets, decoding: str | None = None) -> torch.Tensor:
        """Hidden states that predict the K*D action tokens: from the slot queries (parallel) or from the
        teacher-forced previous tokens (autoregressive training); `decoding` defaults to the config's."""
        B, P = mask.shape
        ones = torch.ones(B, self.n_act, dtype=mask.dtype, device=mask.device)
        if (decoding or self.cfg.action.decoding) == "parallel":
            slots = self.action_queries.to(embeds.dtype).expand(B, -1, -1)                # (B, K*D, H)
            out = self._body(torch.cat([embeds, slots], 1), torch.cat([mask, ones], 1))
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

    def _decode_parallel(self, embeds, mask) -> torch.Tensor:
        hidden = self._slots_hidden(embeds, mask, None, "parallel")
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


def color_match_maps(images: torch.Tensor, rgb: torch.Tensor, valid: torch.Tensor, shade: tuple = (0.55, 1.0),
                     tol: float = 0.06) -> torch.Tensor:
    """How well each pixel matches each colour, whatever its shading: images (B, 3, S, S) in [0, 1], rgb (B, M, 3)
    colour values, valid (B, M) -> (B, M, S, S) in [0, 1] (0 for invalid slots).

    A lit surface of colour c renders as about k * c with k in `shade` (measured: 0.6-0.95 for every colour of the
    vocabulary), so the pixel p is scored by its distance to the best such k * c: black, grey and white differ
    by brightness beyond that range, and hues by the residual.
    """
    p = images[:, None].float()                                                           # (B, 1, 3, S, S)
    c = rgb[..., None, None].float()                                                      # (B, M, 3, 1, 1)
    residual = shaded_residual(p, c, dim=2, shade=shade)                                  # (B, M, S, S)
    return torch.exp(-0.5 * residual / tol ** 2) * valid[..., None, None]


def shaded_residual(p: torch.Tensor, c: torch.Tensor, dim: int, shade: tuple = (0.55, 1.0)) -> torch.Tensor:
    """Squared distance from colours p to k * c for the best shading k in `shade`, the channels along `dim`
    (p and c broadcast against each other)."""
    k = ((p * c).sum(dim, keepdim=True) / (c * c).sum(dim, keepdim=True).clamp_min(1e-4)).clamp(*shade)
    return ((p - k * c) ** 2).sum(dim)


def relation_features(maps: torch.Tensor, grid: int, box: int = 9) -> torch.Tensor:
    """Geometry of the instruction's colours for each of grid x grid patches: maps (B, M, S, S) colour-match maps
    -> (B, grid*grid, 4M) features [dx, dy, area, area * row] per map.

    dx, dy: the patch centre's offset from the map's centroid (image units in [-1, 1]; 0 where the colour is
    absent): where the landmark bowl is, or the midpoint of two same-coloured twins. area: the largest share of a
    box x box window that matches, within the patch (a large block fills more of it than a small one); times the
    patch's row (-1 top .. 1 bottom) so that a learnt weight can undo perspective (nearer objects look larger).
    """
    B, M, S, _ = maps.shape
    maps = maps.float()
    coords = (torch.arange(S, device=maps.device, dtype=torch.float32) + 0.5) / S * 2 - 1
    mass = maps.sum((2, 3))                                                               # (B, M)
    cx = (maps.sum(2) * coords).sum(-1) / mass.clamp_min(1e-6)
    cy = (maps.sum(3) * coords).sum(-1) / mass.clamp_min(1e-6)
    present = (mass > 2.0).float()[..., None]                                             # (B, M, 1)
    cells = (torch.arange(grid, device=maps.device, dtype=torch.float32) + 0.5) / grid * 2 - 1
    px, py = cells.repeat(grid), cells.repeat_interleave(grid)                            # (N,) row-major
    dx = (px - cx[..., None]) * present                                                   # (B, M, N)
    dy = (py - cy[..., None]) * present
    share = F.avg_pool2d(maps, (box, 1), 1, (box // 2, 0), count_include_pad=False)      # separable box filter
    share = F.avg_pool2d(share, (1, box), 1, (0, box // 2), count_include_pad=False)
    area = F.adaptive_max_pool2d(share, grid)
    area = 2.0 * area.flatten(2)                                                          # (B, M, N)
    return torch.cat([dx, dy, area, area * py], 1).transpose(1, 2)                        # (B, N, 4M)


class GroundingHead(nn.Module):
    """Where is the object the current step is about? A text- and state-conditioned score for every patch.

    score_n = w . GELU(W_p LN(patch_n) + W_c condition); softmax over patches gives a spatial attention whose
    expected patch centre (x, y in [-1, 1]) and attention-pooled patch feature become one extra LM token.
    Trained (when labels exist) with cross-entropy against the patch holding the oracle's skill goal, it is a
    dense, per-patch signal that teaches the vision tower to find small named objects quickly.
    """

    def __init__(self, vision_width: int, hidden: int, grid: int, width: int = 128, goal: str = "",
                 color_maps: int = 0, relations: bool = False, peak: int = 0, pixel_depth: int = 0):
        super().__init__()
        self.grid, self.goal, self.color_maps = grid, goal, color_maps
        self.patch = nn.Sequential(nn.LayerNorm(vision_width), nn.Linear(vision_width, width))
        # the instruction's colour-match maps, max-pooled per patch; zero-initialised, so adding them to a trained
        # head (fine-tuning with train.init) starts from the same function
        self.color_patch = _zeros(nn.Linear(color_maps, width)) if color_maps else None
        self.cond = nn.Linear(hidden, width)
        # relation_features of the colour maps: into the patch features, and scored directly by a vector the
        # instruction and state give (zero-initialised, like color_patch)
        n_rel = 4 * color_maps if relations else 0
        self.relate_patch = _zeros(nn.Linear(n_rel, width)) if n_rel else None
        self.relate = _zeros(nn.Linear(hidden, n_rel)) if n_rel else None
        self.score = nn.Linear(width, 1)
        self.token = nn.Linear(vision_width + 2, hidden)
        # "patch": every patch near the goal says where the goal is on the table (normalised x, y)
        self.regress = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, 2)) \
            if goal == "patch" else None
        self.fine = PixelGrounding(hidden, color_maps=color_maps, peak=peak, depth=pixel_depth) \
            if goal == "pixel" else None
        self.geometry = nn.Sequential(nn.Linear(4, hidden), nn.GELU(), nn.Linear(hidden, hidden)) if goal else None
        ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
        centres = torch.stack([xs, ys], -1).reshape(-1, 2).float()
        self.register_buffer("centres", (centres + 0.5) / grid * 2 - 1, persistent=False)   # (N, 2)
        self.register_buffer("cells", centres.long(), persistent=False)                     # (N, 2) column, row

    def forward(self, patches: torch.Tensor, condition: torch.Tensor, ee: torch.Tensor | None = None,
                teacher: torch.Tensor | None = None, std: torch.Tensor | None = None,
                pixels: torch.Tensor | None = None, maps: torch.Tensor | None = None):
        """patches (B, N, Dv), condition (B, H) -> LM token (B, H) and {"logits" (B, N), "reg", "goal", ...}.

        With a goal estimate, ee (B, 2) is the end effector's normalised x, y; teacher (B, 2) optional normalised
        goals to carry instead of the estimate (NaN rows keep it); std (2,) the normalisation scale (m); pixels
        (B, 3, S, S) the normalised image ("pixel" only); maps (B, M, S, S) the colour-match maps (color_maps).
        """
        h = self.patch(patches) + self.cond(condition.to(patches.dtype))[:, None]
        if self.color_patch is not None:
            pooled = F.adaptive_max_pool2d(maps, self.grid).flatten(2).transpose(1, 2)    # (B, N, M)
            h = h + self.color_patch(pooled.to(h.dtype))
        rel = None
        if self.relate is not None:
            rel = relation_features(maps, self.grid)                                     # (B, N, 4M)
            h = h + self.relate_patch(rel.to(h.dtype))
        h = F.gelu(h)
        logits = self.score(h).squeeze(-1).float()                                       # (B, N)
        if rel is not None:
            logits = logits + torch.einsum("bnf,bf->bn", rel, self.relate(condition).float())
        attn = logits.softmax(-1).to(patches.dtype)
        pooled = torch.einsum("bn,bnd->bd", attn, patches)
        xy = attn @ self.centres.to(patches.dtype)                                       # (B, 2)
        token = self.token(torch.cat([pooled, xy], -1))
        out = {"logits": logits, "reg": None, "goal": None}
        if self.regress is not None:
            reg = self.regress(h).float()                                                # (B, N, 2)
            out.update(reg=reg, goal=(attn.float()[..., None] * reg).sum(1))            # (B, 2)
        elif self.fine is not None:
            out.update(self.fine(pixels, condition, logits, self.grid, maps))
        if self.goal:
            goal = out["goal"]
            carried = goal if teacher is None else torch.where(torch.isnan(teacher), goal, teacher)
            offset = (carried - ee) * std / 0.05                                         # in 5 cm units
            token = token + self.geometry(torch.cat([carried, offset], -1).to(token.dtype))
        return token, out

    def loss(self, logits, pixel, valid, image_hw) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Cross-entropy against the patch holding `pixel` (B, 2: column, row in the input image).

        -> (loss, accuracy, target patch per sample (B,), -1 where there is no valid target).
        """
        h, w = int(image_hw[0]), int(image_hw[1])
        col = torch.floor(pixel[:, 0] / w * self.grid).long()
        row = torch.floor(pixel[:, 1] / h * self.grid).long()
        ok = valid & (col >= 0) & (col < self.grid) & (row >= 0) & (row < self.grid)
        target = torch.where(ok, row * self.grid + col, torch.full_like(col, -1))
        if not bool(ok.any()):
            return logits.sum() * 0.0, torch.tensor(float("nan")), target
        loss = F.cross_entropy(logits[ok], target[ok])
        acc = (logits[ok].argmax(-1) == target[ok]).float().mean()
        return loss, acc, target

    def regress_loss(self, out: dict, goal: torch.Tensor, target: torch.Tensor, std: torch.Tensor):
        """Smooth-L1 of every patch within one cell of the target patch, and of the attention-weighted goal,
        against the normalised goal (B, 2). -> (loss, mean goal error in cm of the weighted prediction)."""
        ok = target >= 0
        if not bool(ok.any()):
            return out["reg"].sum() * 0.0, torch.tensor(float("nan"))
        cell = self.cells[target.clamp_min(0)]                                          # (B, 2)
        near = (self.cells[None] - cell[:, None]).abs().amax(-1) <= 1                   # (B, N)
        near = near & ok[:, None]
        per_patch = F.smooth_l1_loss(out["reg"], goal[:, None].expand_as(out["reg"]), beta=0.05,
                                     reduction="none").sum(-1)                          # (B, N)
        loss = per_patch[near].mean()
        loss = loss + F.smooth_l1_loss(out["goal"][ok], goal[ok], beta=0.05, reduction="none").sum(-1).mean()
        with torch.no_grad():
            err = ((out["goal"][ok] - goal[ok]) * std).norm(dim=-1).mean() * 100
        return loss, err

    def pixel_loss(self, out: dict, goal: torch.Tensor, uv: torch.Tensor, valid: torch.Tensor, std: torch.Tensor):
        """"pixel": cross-entropy of the pixel-grid scores against a Gaussian (one cell) around the goal pixel
        `uv` (B, 2: column, row in [0, 1]); the camera map fitted on (goal pixel -> goal) pairs; and the
        end-to-end goal. -> (loss, mean goal error in cm of the estimate)."""
        ok = valid & (uv >= 0).all(-1) & (uv < 1).all(-1)
        if not bool(ok.any()):
            return out["fine_logits"].sum() * 0.0, torch.tensor(float("nan"))
        cells = self.fine.cell_centres(out["fine_logits"].shape[-2:], uv.device)           # (M, 2) in [0, 1]
        spacing = 1.0 / out["fine_logits"].shape[-1]
        d2 = ((cells[None] - uv[ok][:, None]) ** 2).sum(-1) / spacing ** 2                 # (b, M) in cells
        target = (-0.5 * d2).softmax(-1)
        logp = out["fine_logits"][ok].flatten(1).log_softmax(-1)
        loss = -(target * logp).sum(-1).mean()
        loss = loss + F.smooth_l1_loss(self.fine.camera(uv[ok]), goal[ok], beta=0.05, reduction="none").sum(-1).mean()
        loss = loss + F.smooth_l1_loss(out["goal"][ok], goal[ok], beta=0.05, reduction="none").sum(-1).mean()
        with torch.no_grad():
            err = ((out["goal"][ok] - goal[ok]) * std).norm(dim=-1).mean() * 100
        return loss, err


class PixelGrounding(nn.Module):
    """Pixel-precise grounding: a small conv net over the normalised image (a stride-2 grid), FiLM-conditioned on
    the instruction and state, whose scores are added to the coarse patch scores (so the patches choose the
    object and the pixels place it). The soft-argmax cell is mapped to the table's (x, y) by `camera`, an MLP
    fitted on the oracle labels' (goal pixel, goal) pairs: for a fixed camera a smooth map, learnt exactly.
    """

    def __init__(self, hidden: int, channels: int = 32, color_maps: int = 0, peak: int = 0, depth: int = 0):
        super().__init__()
        self.peak = peak        # at inference: soft-argmax only within this many cells of the best cell (0: all)
        self.c1 = nn.Conv2d(3, 24, 3, padding=1)
        self.c1_color = _zeros(nn.Conv2d(color_maps, 24, 3, padding=1)) if color_maps else None  # see GroundingHead
        self.c2 = nn.Conv2d(24, channels, 3, stride=2, padding=1)
        self.film = nn.Linear(hidden, 2 * channels)
        self.c3 = nn.Conv2d(channels, channels, 3, padding=1)
        self.out = nn.Conv2d(channels, 1, 1)
        self.camera = nn.Sequential(nn.Linear(2, 64), nn.GELU(), nn.Linear(64, 64), nn.GELU(), nn.Linear(64, 2))
        self.unet = PixelUNet(hidden, channels, depth) if depth else None

    @staticmethod
    def cell_centres(hw, device) -> torch.Tensor:
        h, w = int(hw[0]), int(hw[1])
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        return torch.stack([(xs.flatten() + 0.5) / w, (ys.flatten() + 0.5) / h], -1).float()   # (h*w, 2)

    def forward(self, pixels: torch.Tensor, condition: torch.Tensor, coarse: torch.Tensor, grid: int,
                maps: torch.Tensor | None = None) -> dict:
        """pixels (B, 3, S, S), condition (B, H), coarse patch logits (B, grid*grid), colour-match maps (B, M, S, S)
        -> fine logits (B, S/2, S/2), goal pixel uv (B, 2) in [0, 1] and goal (B, 2) normalised table x, y."""
        x = self.c1(pixels)
        if self.c1_color is not None:
            x = x + self.c1_color(maps.to(x.dtype))
        x = F.gelu(x)
        x = F.gelu(self.c2(x))
        scale, shift = self.film(condition.to(x.dtype)).chunk(2, -1)
        x = x * (1 + scale[..., None, None]) + shift[..., None, None]
        logits = self.out(F.gelu(self.c3(x))).squeeze(1).float()                           # (B, h, w)
        if self.unet is not None:
            logits = logits + self.unet(x, condition).float()
        B, h, w = logits.shape
        up = coarse.view(B, grid, grid)
        up = up.repeat_interleave(-(-h // grid), 1).repeat_interleave(-(-w // grid), 2)[:, :h, :w]
        logits = logits + up
        prob = logits.flatten(1).softmax(-1)
        if self.peak and not self.training:
            # commit to the best mode: two look-alike candidates otherwise average to a point between them
            best = logits.flatten(1).argmax(-1)
            rows = torch.arange(h, device=logits.device)[None, :, None] - (best // w)[:, None, None]
            cols = torch.arange(w, device=logits.device)[None, None, :] - (best % w)[:, None, None]
            near = ((rows.abs() <= self.peak) & (cols.abs() <= self.peak)).flatten(1)
            prob = torch.where(near, prob, torch.zeros_like(prob))
            prob = prob / prob.sum(-1, keepdim=True)
        uv = prob @ self.cell_centres((h, w), logits.device)                               # (B, 2)
        return {"fine_logits": logits, "uv": uv, "goal": self.camera(uv)}


class PixelUNet(nn.Module):
    """Context for the pixel scores: `depth` stride-2 levels down from the pixel branch's (B, C, h, w) features and
    back up to h/2 with skip connections, FiLM-conditioned on the instruction and state at every level, so a
    pixel's score can depend on what lies up to 2^(depth+2) pixels around it (its object's shape and size, a bowl
    beside it); the shallow branch keeps placing the goal to the pixel. -> scores (B, h, w), zero until trained
    (the output layer starts at zero)."""

    def __init__(self, hidden: int, channels: int, depth: int):
        super().__init__()
        widths = [channels] + [min(channels + 16 * (i + 1), 64) for i in range(depth)]
        self.down = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(widths, widths[1:]))
        self.mix = nn.ModuleList(nn.Conv2d(b, b, 3, padding=1) for b in widths[1:])
        self.film = nn.ModuleList(nn.Linear(hidden, 2 * b) for b in widths[1:])
        self.up = nn.ModuleList(nn.Conv2d(b, a, 1) for a, b in zip(widths[1:], widths[2:]))
        self.out = _zeros(nn.Conv2d(widths[1], 1, 1))

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        hw, skips = x.shape[-2:], []
        for down, mix, film in zip(self.down, self.mix, self.film):
            x = F.gelu(down(x))
            scale, shift = film(condition.to(x.dtype)).chunk(2, -1)
            x = F.gelu(mix(x * (1 + scale[..., None, None]) + shift[..., None, None]))
            skips.append(x)
        for up, skip in zip(reversed(self.up), reversed(skips[:-1])):
            x = F.gelu(up(F.interpolate(x, size=skip.shape[-2:], mode="nearest")) + skip)
        return F.interpolate(self.out(x), size=hw, mode="nearest").squeeze(1)


def _zeros(layer: nn.Module) -> nn.Module:
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer
