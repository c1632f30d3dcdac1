"""Object tokens for the VLM: a CenterNet-style detector over the pixels whose peaks become LM tokens.

A frozen CLIP tower's 12-pixel patches mix the 4-8 pixel objects of a 96-pixel scene. This module finds the
objects instead (Zhou et al. 2019, "Objects as Points"): a small conv net scores every cell of a grid at half the
image's resolution for the centre of a block, a cylinder or a bowl, trained with CenterNet's focal loss against
Gaussians around the centroids of the segmentation. Beside it, as CenterNet regresses a box beside each centre, an
attribute head learns the colour and size at every true centre: the answer loss alone did not put colour into the
features there (a linear probe read it from 23 % of the tokens after 6000 steps).

Each centre becomes one token: the conv features there plus a shape-class embedding, its (x, y) in sin-cos form,
and the raw colour of the 3x3 pixels there. Tokens are sorted left to right, so their order in the sequence says
the same as their x. Training reads the true centres (jittered by up to half a cell); inference takes the peaks
above `threshold`, at most `slots` of them: of a second heatmap at the image's own resolution when there is one
(`fine`), since on the half-resolution grid two stacked blocks made one peak.

Grounding (`roles`): a head on the LM's hidden states at the tokens learns which of them each object phrase of the
question names (`role_loss`; the targets come from the questions' `refs`). `relate` turns its soft pointers into
the named objects' positions and their offset, for the VLM's [SEP] token.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vla.models.tools.qa_data import COLORS

SHAPE_CLASSES = ("block", "cylinder", "bowl")
SIZES = (None, "small", "large")
ROLES = 3   # an object token's role in a question: not named, named by its first object phrase, by its second


def visible_objects(seg: np.ndarray, annotation: dict) -> list[tuple[dict, np.ndarray, np.ndarray]]:
    """(object, ys, xs of its pixels) for the objects of `annotation` with at least one pixel in `seg` (S, S)."""
    out = []
    for obj in annotation["objects"]:
        ys, xs = np.nonzero(seg == obj["id"])
        if len(ys):
            out.append((obj, ys, xs))
    return out


def object_centres(seg: np.ndarray, annotation: dict, grid: int, colors: tuple[str, ...] = COLORS,
                   visible: list | None = None) -> np.ndarray:
    """(M, 5) float rows (shape class, x, y, colour, size), in `visible_objects` order, for the objects of
    `annotation` that show at least one pixel in a segmentation (S, S) of object ids: x, y is the centroid of the
    visible pixels in grid cells, colour the index in `colors` (-1 if not there), size the index in SIZES.
    `visible` is `visible_objects(seg, annotation)` when the caller has it already. A sixth column may be added
    for training: the object's role in the question (see `ObjectTokens.role_loss`)."""
    scale = grid / seg.shape[0]
    rows = []
    for obj, ys, xs in visible_objects(seg, annotation) if visible is None else visible:
        rows.append((SHAPE_CLASSES.index(obj["shape"]), (xs.mean() + 0.5) * scale - 0.5,
                     (ys.mean() + 0.5) * scale - 0.5,
                     colors.index(obj["color"]) if obj.get("color") in colors else -1,
                     SIZES.index(obj.get("size"))))
    return np.array(rows, np.float32).reshape(-1, 5)


def _labelled_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the rows with a label (>= 0); zero, with a zero gradient, when none has one (a mean over
    no rows would be NaN, and so would its gradient)."""
    ok = target >= 0
    return F.cross_entropy(logits[ok], target[ok]) if bool(ok.any()) else logits.sum() * 0.0


def sample_cells(maps: torch.Tensor, cells: torch.Tensor, grid: int) -> torch.Tensor:
    """Bilinear samples of maps (B, C, H, W) at cells (B, K, 2) given as (x, y) in cells of a grid x grid
    layout over the maps -> (B, K, C)."""
    where = ((cells + 0.5) / grid * 2 - 1)[:, :, None]                                  # grid_sample coords
    return F.grid_sample(maps, where.to(maps.dtype), align_corners=False)[..., 0].transpose(1, 2)


def _sincos(xy: torch.Tensor, bands: int) -> torch.Tensor:
    """(..., 2) positions in [0, 1] -> (..., 4 * bands) sin-cos features at octave frequencies."""
    freqs = math.pi * 2.0 ** torch.arange(bands, device=xy.device, dtype=xy.dtype)      # (F,)
    angles = xy[..., None] * freqs                                                       # (..., 2, F)
    return torch.cat([angles.sin(), angles.cos()], -1).flatten(-2)


def subcell_offsets(prob: torch.Tensor) -> torch.Tensor:
    """(B, C, g, g) peak probabilities -> (B, C, g, g, 2) the (x, y) offset, within +-0.5 cell, of the maximum of
    a parabola through each cell's log probability and its two neighbours along each axis. The detector is trained
    against a Gaussian around every centre, whose log is exactly such a parabola, so this recovers the part of
    the centre a whole cell rounds away (up to half a cell, about 1 cm of table at the policy's camera); CenterNet
    regresses that part with an extra head instead."""
    logp = F.pad(prob.clamp_min(1e-6).log(), (1, 1, 1, 1), mode="replicate")
    mid = logp[..., 1:-1, 1:-1]

    def vertex(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
        curve = before - 2 * mid + after
        ok = curve < -1e-6                                                               # a maximum
        return torch.where(ok, 0.5 * (before - after) / torch.where(ok, curve, -1.0), 0.0).clamp(-0.5, 0.5)

    return torch.stack([vertex(logp[..., 1:-1, :-2], logp[..., 1:-1, 2:]),
                        vertex(logp[..., :-2, 1:-1], logp[..., 2:, 1:-1])], -1)


def focal_loss(heat: torch.Tensor, centres: list[np.ndarray], sigma: float) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss of heat logits (B, C, h, w) against a Gaussian of `sigma` cells around
    every centre (rows (class, x, y, ...) in cells of that map), per class, divided by the number of centres."""
    B, C, h, w = heat.shape
    target = torch.zeros(B, C, h, w, device=heat.device)
    yy, xx = torch.meshgrid(torch.arange(h, device=heat.device), torch.arange(w, device=heat.device), indexing="ij")
    for b, rows in enumerate(centres):
        for cls, x, y in np.asarray(rows)[:, :3]:
            blob = torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2))
            target[b, int(cls)] = torch.maximum(target[b, int(cls)], blob)
            target[b, int(cls), int(round(float(y))), int(round(float(x)))] = 1.0
    prob = heat.float().sigmoid().clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    pos_loss = -(prob.log() * (1 - prob) ** 2 * pos).sum()
    neg_loss = -((1 - prob).log() * prob ** 2 * (1 - target) ** 4 * (1 - pos)).sum()
    return (pos_loss + neg_loss) / pos.sum().clamp_min(1)


class ObjectTokens(nn.Module):
    """Normalised pixels (B, 3, S, S) -> object tokens (B, slots, out_dim), their mask, and what `loss` needs."""

    def __init__(self, slots: int, channels: int, out_dim: int, image_size: int, colors: int = len(COLORS),
                 threshold: float = 0.5, bands: int = 6, roles: bool = False, hidden: int | None = None,
                 relation: bool = False, fine: bool = False):
        super().__init__()
        self.slots, self.grid, self.threshold, self.bands = slots, image_size // 2, threshold, bands
        c = channels
        # receptive field 1 + 2 + 2 + 2 * (4 + 8 + 16) = 61 pixels: a bowl, what lies in it and the gripper above
        self.net = nn.Sequential(
            nn.Conv2d(3, c // 2, 3, padding=1), nn.GELU(),
            nn.Conv2d(c // 2, c, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(c, c, 3, padding=2, dilation=2), nn.GELU(),
            nn.Conv2d(c, c, 3, padding=4, dilation=4), nn.GELU(),
            nn.Conv2d(c, c, 3, padding=8, dilation=8), nn.GELU(),
            nn.Conv2d(c, c, 1))
        self.heat = nn.Conv2d(c, len(SHAPE_CLASSES), 1)
        nn.init.constant_(self.heat.bias, -2.19)                                        # CenterNet's prior 0.1
        # `fine`: a second heatmap at the image's own resolution, from the features upsampled and the first (full
        # resolution) layer's, for the detections. A block stacked on another shows its centre 1-2 cells above the
        # lower one's, and one cell's 3x3 peak test keeps only one of the two (see `fine_heat`).
        self.fine = None
        if fine:
            self.fine = nn.Sequential(nn.Conv2d(c + c // 2, c, 3, padding=1), nn.GELU(),
                                      nn.Conv2d(c, c, 3, padding=1), nn.GELU(), nn.Conv2d(c, len(SHAPE_CLASSES), 1))
            nn.init.constant_(self.fine[-1].bias, -2.19)
        self.shape_embed = nn.Embedding(len(SHAPE_CLASSES), c)
        self.proj = nn.Sequential(nn.Linear(c + 4 * bands, out_dim), nn.GELU(), nn.Linear(out_dim, out_dim))
        self.attrs = nn.Linear(c, colors + len(SIZES))                                   # colour, size logits
        self.colors = colors
        self.rgb = nn.Linear(3, out_dim)                                                 # raw colour, zero at first
        nn.init.zeros_(self.rgb.weight)
        nn.init.zeros_(self.rgb.bias)
        # grounding: which object each token is in the question (none / first / second phrase), read from the
        # LM's hidden state at the token one layer before the last (see VLMNet._run)
        hidden = hidden or out_dim
        self.roles = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, ROLES)) if roles or relation else None
        # and where the named objects are: soft pointers from the roles to the tokens' positions (see `relate`)
        self.relation = None
        if relation:
            self.relation = nn.Sequential(nn.Linear(8, hidden), nn.GELU(), nn.Linear(hidden, hidden))
            nn.init.zeros_(self.relation[2].weight)                                    # adds nothing at first
            nn.init.zeros_(self.relation[2].bias)

    def forward(self, pixels: torch.Tensor, centres: list[np.ndarray] | None = None):
        """-> tokens (B, K, D), mask (B, K) long, and `aux` for `loss` (the heat logits (B, 3, g, g), attribute
        logits (B, K, A) and the rows behind the tokens (B, K, 6), -1 where empty). `centres`: per image (M, 5)
        rows of `object_centres`, or (M, 6) with each object's role (training); None detects them."""
        stem = self.net[:2](pixels)                                                      # (B, C/2, S, S)
        feats = self.net[2:](stem)                                                       # (B, C, g, g)
        heat = self.heat(feats)
        fine = self.fine_heat(stem, feats)
        found = self.detect(heat, fine=fine) if centres is None else centres
        B, K = len(found), self.slots
        rows = torch.full((B, K, 6), -1.0, device=pixels.device)
        mask = torch.zeros(B, K, dtype=torch.long, device=pixels.device)
        for b, c in enumerate(found):
            c = np.asarray(c, np.float32)[: K]
            c = c[np.argsort(c[:, 1], kind="stable")]                                    # left to right
            rows[b, :len(c), :c.shape[1]] = torch.as_tensor(c[:, :6], device=pixels.device)
            mask[b, :len(c)] = 1
        xy = rows[..., 1:3].clamp_min(0)                                                 # (B, K, 2) cells
        if centres is not None and self.training:  # true centres, moved by up to half a cell as a peak would be
            xy = xy + torch.empty_like(xy).uniform_(-0.5, 0.5)
        sampled = sample_cells(feats, xy, self.grid)                                     # (B, K, C)
        rgb = sample_cells(F.avg_pool2d(pixels, 3, stride=1, padding=1), xy, self.grid)  # (B, K, 3)
        kind = self.shape_embed(rows[..., 0].clamp_min(0).long())                        # (B, K, C)
        tokens = self.proj(torch.cat([sampled + kind, _sincos((xy + 0.5) / self.grid, self.bands)], -1))
        tokens = tokens + self.rgb(rgb)
        aux = {"heat": heat, "fine": fine, "attrs": self.attrs(sampled), "rows": rows}
        return tokens * mask[..., None], mask, aux

    def fine_heat(self, stem: torch.Tensor, feats: torch.Tensor) -> torch.Tensor | None:
        """The full-resolution heat logits (B, 3, S, S) from the first layer's output `stem` and the features; None
        without the `fine` head."""
        if self.fine is None:
            return None
        up = F.interpolate(feats, size=stem.shape[-2:], mode="bilinear", align_corners=False)
        return self.fine(torch.cat([up, stem], 1))

    @torch.no_grad()
    def detect(self, heat: torch.Tensor, refine: bool = True, fine: torch.Tensor | None = None) -> list[np.ndarray]:
        """Peaks of the heatmap (a 3x3 max-pool keeps local maxima per class) above `threshold`, strongest first,
        as (M, 3) rows (class, x, y) in cells. `refine` places each peak within its cell (`subcell_offsets`).
        Given the `fine` heatmap (B, 3, S, S), the peaks are its own, at the image's resolution, in cells too."""
        src = heat if fine is None else fine
        prob = src.float().sigmoid()
        peaks = (prob == F.max_pool2d(prob, 3, stride=1, padding=1)) & (prob > self.threshold)
        shift = subcell_offsets(prob) if refine else None                                # (B, C, h, w, 2)
        scale = self.grid / prob.shape[-1]
        out = []
        for b in range(len(prob)):
            cls, y, x = torch.nonzero(peaks[b], as_tuple=True)
            order = prob[b, cls, y, x].argsort(descending=True)[: self.slots]
            rows = torch.stack([cls, x, y], 1).float()
            if shift is not None:
                rows[:, 1:] += shift[b, cls, y, x]
            if scale != 1:
                rows[:, 1:] = (rows[:, 1:] + 0.5) * scale - 0.5                         # into cells of the grid
            out.append(rows[order].cpu().numpy())
        return out

    def loss(self, aux: dict, centres: list[np.ndarray], sigma: float = 1.0) -> torch.Tensor:
        """CenterNet's penalty-reduced focal loss against a Gaussian around every true centre, per class, plus the
        cross-entropy of the colour and size at every true centre (`aux` from a forward on those centres); with the
        `fine` head, its focal loss too (`fine_loss`)."""
        total = focal_loss(aux["heat"], centres, sigma)
        if aux.get("fine") is not None:
            total = total + self.fine_loss(aux["fine"], centres)
        attrs, rows = aux["attrs"].float(), aux["rows"]
        color = _labelled_ce(attrs[..., :self.colors].flatten(0, 1), rows[..., 3].long().flatten())
        size_target = torch.where(rows[..., 0] >= 0, rows[..., 4], -1.0).long().flatten()
        size = _labelled_ce(attrs[..., self.colors:].flatten(0, 1), size_target)
        return total + color + size

    def fine_loss(self, fine: torch.Tensor, centres: list[np.ndarray], sigma: float = 1.0) -> torch.Tensor:
        """The focal loss of the full-resolution heatmap: the centres (in cells) moved to its pixels, a Gaussian of
        `sigma` pixels (half a cell) around each, so that centres a cell apart stay two peaks."""
        scale = fine.shape[-1] / self.grid
        moved = []
        for rows in centres:
            rows = np.array(rows, np.float32)[:, :3].reshape(-1, 3)
            rows[:, 1:] = (rows[:, 1:] + 0.5) * scale - 0.5
            moved.append(rows)
        return focal_loss(fine, moved, sigma)

    def role_loss(self, hidden: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each token's role in the question (column 5 of `rows`; -1 = unknown, skipped) from the
        LM's hidden states at the object tokens (B, K, H): referring-expression grounding, so the LM binds "the
        red block" to its token before it compares positions or answers about it."""
        logits = self.roles(hidden.float())
        target = torch.where(rows[..., 0] >= 0, rows[..., 5], -1.0).long().flatten()
        if not bool((target >= 0).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits.flatten(0, 1), target, ignore_index=-1)

    def relate(self, hidden: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """(B, H) vector for [SEP]: where the objects the question names are, from the role head's soft pointers.

        The LM found which token each object phrase names (the role head reads that) but did not learn to compare
        two tokens' positions (left/right stayed at chance). So for each phrase k the tokens' (x, y), weighted by
        their probability of role k (divided by the total when it passes 1: several objects for "how many"),
        and the offset between the two phrases' positions and each phrase's total weight go through an MLP
        (zero at first) into the [SEP] embedding, which is where the answer is read."""
        prob = self.roles(hidden.float()).softmax(-1)[..., 1:]                          # (B, K, 2)
        weight = prob * (rows[..., 0] >= 0).float()[..., None]
        mass = weight.sum(1)                                                            # (B, 2)
        weight = weight / mass.clamp_min(1.0)[:, None]
        xy = (rows[..., 1:3].clamp_min(0) + 0.5) / self.grid                             # (B, K, 2) in [0, 1]
        pos = torch.einsum("bkr,bkc->brc", weight, xy)                                  # (B, 2 phrases, 2)
        feat = torch.cat([pos.flatten(1), 10 * (pos[:, 0] - pos[:, 1]), mass.clamp_max(1.0)], 1)
        return self.relation(feat)
