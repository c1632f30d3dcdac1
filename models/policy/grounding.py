"""The policy's grounding: where the instruction's object (then its destination) is in the image.

`color_match_maps` scores pixels against the instruction's colour words by value (shading-invariant),
`relation_features` pools those maps into per-patch "left of / right of" evidence, `GroundingHead` turns patches
and the instruction into a goal cell and table point for the LM's grounding token, and `PixelGrounding`
(with an optional `PixelUNet`) refines that cell at pixel resolution. See docs/POLICY.md.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
        ry, rx = -(-h // grid), -(-w // grid)                 # each patch's score over its ry x rx cells
        up = coarse.view(B, grid, 1, grid, 1).expand(B, grid, ry, grid, rx).reshape(B, grid * ry, grid * rx)[:, :h, :w]
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
