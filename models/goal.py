"""The goal pointer: which object the instruction's current skill is about, read from detected objects.

The policy's LM moves the arm well toward the goal its grounding token carries; what fails is the goal. Fed the
oracle's goal instead of its own, the shipped policy solved about twice as many episodes (docs/POLICY.md item
16). Its patch-and-pixel grounding head is torn between look-alikes ("the small red block" beside a large one,
"the red block left of the pink bowl") and follows the arm after a wrong start.

This module chooses among objects rather than pixels:
- **Objects** come from the VLM's CenterNet detector (vla.models.objects; its weights copied in and fine-tuned on
  recoloured scenes, see vla.agent.train.goal): per peak the shape class, the size probabilities of its
  attribute head, the mean colour of the 3x3 pixels at the centre, the cell, the point on the table the cell
  shows (`unproject_front` at the height of a small block).
- **Colour by value.** Each object gets, for each of the instruction's first `color_words` colour words, its
  distance to that word's RGB value under any shading k in [0.55, 1]. A colour word enters the text as "the j-th
  colour word", never by name, so a colour never seen in training is found like any other; training recolours
  objects and colour values with the same random linear map (as the policy's `data.color_aug`).
- **Relations.** A transformer over [words | objects | state] whose object-to-object attention adds an MLP of
  the two objects' offset on the table to the values, so an object token learns where it lies relative to
  the landmark the words name ("left of the pink bowl"; twins of a size).
- **Output.** Per object a pointer logit and an offset (a push ends beside its object; a bowl takes the second
  block beside the first): the goal is the chosen object's table position plus its offset. Inference commits to
  the best object (item 12 of docs/POLICY.md: averaging look-alikes lands between them); training uses the
  softmax-weighted goal plus a cross-entropy on the object nearest the oracle's goal.

No object detected: the goal is NaN and the policy's own grounding is used (`prefix_parts`' `teacher_goal`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vla.models.objects import SHAPE_CLASSES, SIZES, ObjectTokens, sample_cells
from vla.models.vision import CLIP_MEAN, CLIP_STD

OBJECT_Z = 0.02        # the height at which a detected centre is taken to lie on the table (a small block's centre)
TABLE_CENTRE, TABLE_SCALE = (0.5, 0.0), (0.2, 0.3)   # table positions are normalised as (p - centre) / scale
PAD, UNK, COLOR = 0, 1, 2
STICK_RADIUS, STICK_SHARE = 0.03, 0.2   # inference: keep the previous choice if it is this near and this likely
#: a caller's point (`predict(point=)`) takes the detection within this distance: a detection lies within about
#: 1 cm of its object, and scenes start with objects 4 cm or more apart, so a nearer one is that object
POINT_RADIUS = 0.03
OFFSET_TRUST = 0.02    # ... and its candidate goal when that lies this near it
#: `predict(exclude=)`: a detection this near a point where the policy set an object down is that object
EXCLUDE_RADIUS = 0.025
RAW = 3 + len(SIZES) + 3 + 2 + 2   # per detected object: shape one-hot, size probs, rgb, cell (x, y), table (x, y)


@dataclass
class GoalConfig:
    dim: int = 96
    layers: int = 3
    heads: int = 4
    slots: int = 12
    color_words: int = 4
    max_words: int = 24
    image_size: int = 128              # the camera images the pointer reads (the policy's)
    detector_size: int = 96            # the detector's input size
    detector_channels: int = 32
    detector_threshold: float = 0.5
    word_dropout: float = 0.1
    vocab: list = field(default_factory=list)          # instruction words, index 3.. (0 pad, 1 unknown, 2 colour)
    word_rgb: dict = field(default_factory=dict)       # colour word -> [r, g, b] in [0, 1]
    state_mean: list = field(default_factory=lambda: [0.0] * 12)
    state_std: list = field(default_factory=lambda: [1.0] * 12)
    # which proprio values the state token sees (None: all). The end effector's x, y would let the pointer learn
    # "the object under the arm is the goal", true along the oracle's path and self-confirming in a rollout (the
    # policy's own copycat shortcut, docs/POLICY.md item 6); z, yaw and the opening tell whether it holds.
    state_dims: list | None = None
    # inference: a push's goal is where the expert's push would end (at the named side, or beside the landmark the
    # pointer finds for that phrase alone; `GoalPointer.push_end`) rather than the mover's learnt offset
    push_end: bool = False


NEXT_TO = re.compile(r"\bnext to\s+(.+?)[\s.]*$")
SIDE = re.compile(r"\bto the (left|right) side of the table\b")


def push_destination(text: str) -> tuple[str, str] | None:
    """Where a single push command ends: ("side", "left" | "right") for "... to the left side of the table",
    ("landmark", "the blue bowl") for "... next to the blue bowl"; None for other commands and for a chain of
    them (those words are the push templates' own, seen and held out alike)."""
    from vla.models.policy.steps import split_commands

    text = text.lower()
    if len(split_commands(text)) > 1:
        return None
    side, near = SIDE.search(text), NEXT_TO.search(text)
    return ("side", side.group(1)) if side else ("landmark", near.group(1)) if near else None


def footprint(row: torch.Tensor) -> float:
    """A detected object's radius on the table (m) from its shape and size classes (one object row (RAW,))."""
    from vla.envs import vocab

    shape = SHAPE_CLASSES[int(row[:len(SHAPE_CLASSES)].argmax())]
    size = SIZES[int(row[3:3 + len(SIZES)].argmax())] or "small"
    return vocab.footprint(shape, size if shape == "block" else None)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def color_distance(rgb: torch.Tensor, word: torch.Tensor) -> torch.Tensor:
    """Distance from colours rgb (..., K, 3) to k * word (..., M, 3) for the best shading k in [0.55, 1]
    -> (..., K, M) (the residual of the policy's `color_match_maps`, per object rather than per pixel)."""
    from vla.models.policy.grounding import shaded_residual

    return shaded_residual(rgb[..., :, None, :], word[..., None, :, :], dim=-1).sqrt()


def table_xy(rows: torch.Tensor) -> torch.Tensor:
    """Object rows (..., RAW) -> the table points (..., 2) in metres they show."""
    return rows[..., 11:13] * rows.new_tensor(TABLE_SCALE) + rows.new_tensor(TABLE_CENTRE)


def choose(logits: torch.Tensor, goals: torch.Tensor, previous=None) -> torch.Tensor:
    """Pointer logits (B, K) and goal candidates (B, K, 2) -> the committed goals (B, 2): the most likely
    candidate's, or the previous goal's neighbour (see `GoalPointer.predict`)."""
    best = logits.argmax(-1)
    if previous is not None:
        prev = torch.as_tensor(previous, dtype=goals.dtype).to(goals.device).reshape(-1, 2)
        p = logits.softmax(-1).nan_to_num(0.0)                                          # (B, K)
        near = (goals - prev[:, None]).norm(dim=-1) < STICK_RADIUS                       # NaN rows: never near
        keep = torch.where(near, p, torch.zeros_like(p)).max(-1)
        ok = (keep.values > 0) & (keep.values >= STICK_SHARE * p.max(-1).values)
        best = torch.where(ok, keep.indices, best)
    return goals[torch.arange(len(best), device=best.device), best]


def pointed_goal(table: torch.Tensor, goals: torch.Tensor, mask: torch.Tensor, point: torch.Tensor,
                 radius: float) -> torch.Tensor:
    """Detected objects' table points and goal candidates (B, K, 2), the detections' mask (B, K) and the points
    a caller names (B, 2) -> the goal of the detection nearest each point (B, 2), NaN where none is within `radius`.
    The candidate's own goal refines the detection's centre (it was trained against the expert's goal); where
    it lies farther than `OFFSET_TRUST` from the object (an offset learnt for another object's role), the
    detection's centre is taken."""
    dist = (table - point[:, None]).norm(dim=-1).masked_fill(~mask, float("inf"))
    best = dist.argmin(-1)
    rows = torch.arange(len(best), device=best.device)
    centre, goal = table[rows, best], goals[rows, best]
    goal = torch.where((goal - centre).norm(dim=-1, keepdim=True) < OFFSET_TRUST, goal, centre)
    near = dist[rows, best][:, None] < radius
    return torch.where(near, goal, torch.full_like(goal, float("nan")))


def excluded(logits: torch.Tensor, table: torch.Tensor, points, radius: float = EXCLUDE_RADIUS) -> torch.Tensor:
    """Pointer logits (B, K) with -inf for the detections (table points (B, K, 2)) within `radius` of any of
    `points` (E, 2), in the rows where a finite candidate remains (else unchanged)."""
    points = torch.as_tensor(np.asarray(points, np.float32)).to(table.device).reshape(-1, 2)
    if not len(points):
        return logits
    near = ((table[:, :, None] - points[None, None]).norm(dim=-1) < radius).any(-1)      # (B, K)
    out = logits.masked_fill(near, float("-inf"))
    left = torch.isfinite(out).any(-1, keepdim=True)
    return torch.where(left, out, logits)


class RelationalLayer(nn.Module):
    """Pre-norm transformer layer whose attention from object i to object j adds MLP(table offset j - i) to the
    value of j."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.out = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.rel = nn.Sequential(nn.Linear(2, dim), nn.GELU(), nn.Linear(dim, dim))
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x, mask, obj_slice: slice, obj_xy):
        B, L, D = x.shape
        h = self.heads
        q, k, v = self.qkv(self.norm1(x)).view(B, L, 3, h, D // h).permute(2, 0, 3, 1, 4)   # (B, h, L, d) each
        logits = q @ k.transpose(-1, -2) / (D // h) ** 0.5
        logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
        attn = logits.softmax(-1)                                                       # (B, h, L, L)
        out = attn @ v                                                                  # (B, h, L, d)
        offset = obj_xy[:, None, :, :] - obj_xy[:, :, None, :]                          # (B, K, K, 2): j - i
        rel = self.rel(offset).view(B, *offset.shape[1:3], h, D // h)                   # (B, K, K, h, d)
        a = attn[:, :, obj_slice, obj_slice]                                            # (B, h, K, K)
        extra = torch.einsum("bhij,bijhd->bhid", a, rel)                                # (B, h, K, d)
        out = torch.cat([out[:, :, :obj_slice.start], out[:, :, obj_slice] + extra, out[:, :, obj_slice.stop:]], 2)
        x = x + self.out(out.transpose(1, 2).reshape(B, L, D))
        return x + self.mlp(self.norm2(x))


class GoalPointer(nn.Module):
    def __init__(self, cfg: GoalConfig):
        super().__init__()
        self.cfg = cfg
        self.detector = ObjectTokens(cfg.slots, cfg.detector_channels, cfg.dim, cfg.detector_size,
                                     threshold=cfg.detector_threshold)
        for unused in ("proj", "rgb", "shape_embed"):   # the VLM's token layers; only the detection is used here
            delattr(self.detector, unused)
        self.detector.requires_grad_(False)
        self.index = {w: i + 3 for i, w in enumerate(cfg.vocab)}
        D = cfg.dim
        self.word = nn.Embedding(len(cfg.vocab) + 3, D)
        self.color_slot = nn.Embedding(cfg.color_words + 1, D)                          # 0: not a colour word
        self.position = nn.Embedding(cfg.max_words, D)
        self.obj_in = nn.Sequential(nn.Linear(RAW + cfg.color_words, D), nn.GELU(), nn.Linear(D, D))
        self.obj_type = nn.Parameter(torch.zeros(D))
        self.state_in = nn.Linear(len(cfg.state_mean) if cfg.state_dims is None else len(cfg.state_dims), D)
        self.layers = nn.ModuleList([RelationalLayer(D, cfg.heads) for _ in range(cfg.layers)])
        self.norm = nn.LayerNorm(D)
        self.pointer, self.offset = nn.Linear(D, 1), nn.Linear(D, 2)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("state_mean", torch.tensor(cfg.state_mean, dtype=torch.float32), persistent=False)
        self.register_buffer("state_std", torch.tensor(cfg.state_std, dtype=torch.float32), persistent=False)

    # ----- text -----
    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> word ids (B, T), colour slot per word (B, T; 0 = none, j = the j-th colour word) and the colour
        words' RGB (B, M, 3; zeros where fewer)."""
        cfg = self.cfg
        B, T, M = len(texts), cfg.max_words, cfg.color_words
        ids = torch.zeros(B, T, dtype=torch.long)
        slots = torch.zeros(B, T, dtype=torch.long)
        rgb = torch.zeros(B, M, 3)
        for b, text in enumerate(texts):
            n = 0
            for t, w in enumerate(words(text)[:T]):
                if w in cfg.word_rgb:
                    ids[b, t] = COLOR
                    if n < M:
                        slots[b, t], rgb[b, n] = n + 1, torch.tensor(cfg.word_rgb[w][:3])
                    n += 1
                else:
                    ids[b, t] = self.index.get(w, UNK)
        return ids, slots, rgb

    # ----- objects -----
    @torch.no_grad()
    def detect(self, images) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (B, H, W, 3) -> raw object rows (B, K, RAW) and their mask (B, K) bool."""
        from vla.envs.camera import unproject_front

        cfg, det = self.cfg, self.detector
        x = images if torch.is_tensor(images) else torch.as_tensor(np.ascontiguousarray(images))  # any device
        x = x.to(self.mean.device).permute(0, 3, 1, 2).float() / 255.0
        S = cfg.detector_size
        small = F.interpolate(x, size=(S, S), mode="bilinear", antialias=True, align_corners=False)
        feats = det.net((small - self.mean) / self.std)
        found = det.detect(det.heat(feats))
        B, K = len(found), cfg.slots
        cells = torch.zeros(B, K, 2)
        shape = torch.zeros(B, K, dtype=torch.long)
        mask = torch.zeros(B, K, dtype=torch.bool)
        for b, f in enumerate(found):
            n = min(len(f), K)
            cells[b, :n], shape[b, :n], mask[b, :n] = torch.as_tensor(f[:n, 1:3]), torch.as_tensor(f[:n, 0]), True
        size = det.attrs(sample_cells(feats, cells.to(x.device), det.grid))[..., det.colors:].softmax(-1)
        rgb = sample_cells(F.avg_pool2d(small, 3, stride=1, padding=1), cells.to(x.device), det.grid)
        pix = (cells.numpy() + 0.5) / det.grid * cfg.image_size - 0.5
        table = torch.as_tensor(unproject_front(pix, cfg.image_size, cfg.image_size, OBJECT_Z)[..., :2],
                                dtype=torch.float32)
        table = (table - torch.tensor(TABLE_CENTRE)) / torch.tensor(TABLE_SCALE)
        rows = torch.cat([F.one_hot(shape, len(SHAPE_CLASSES)).float().to(x.device), size, rgb,
                          (cells / det.grid).to(x.device), table.to(x.device)], -1)
        mask = mask.to(x.device)
        return rows * mask[..., None], mask

    # ----- the pointer -----
    def forward(self, rows, mask, ids, slots, word_rgb, state, color_matrix=None):
        """Detected objects' rows (B, K, RAW) -> pointer logits (B, K; -inf where no object) and goal candidates
        (B, K, 2) in metres (each object's table position plus its offset)."""
        dev = rows.device
        rgb = rows[..., 6:9]
        if color_matrix is not None:                      # the same recolouring for objects and colour words
            rgb = torch.einsum("bij,bkj->bki", color_matrix, rgb).clamp(0, 1)
            word_rgb = torch.einsum("bij,bmj->bmi", color_matrix, word_rgb)
        dist = color_distance(rgb, word_rgb.to(dev))                                     # (B, K, M)
        have = (word_rgb.to(dev).abs().sum(-1) > 0)[:, None, :]
        dist = torch.where(have, dist, torch.full_like(dist, 2.0))
        raw = torch.cat([rows[..., :6], rgb, rows[..., 9:]], -1)
        obj = self.obj_in(torch.cat([raw, dist], -1)) + self.obj_type                   # (B, K, D)
        T = ids.shape[1]
        text = self.word(ids.to(dev)) + self.color_slot(slots.to(dev)) + self.position.weight[:T]
        st = (state.to(dev).float() - self.state_mean) / self.state_std
        st = self.state_in(st if self.cfg.state_dims is None else st[:, self.cfg.state_dims])[:, None]
        x = torch.cat([text, obj, st], 1)
        full = torch.cat([ids.to(dev) != PAD, mask, torch.ones_like(mask[:, :1])], 1)
        obj_slice = slice(T, T + obj.shape[1])
        table = table_xy(rows)
        for layer in self.layers:
            x = layer(x, full, obj_slice, table * 10.0)
        h = self.norm(x[:, obj_slice])
        logits = self.pointer(h)[..., 0].masked_fill(~mask, float("-inf"))
        goals = table + 0.1 * self.offset(h)
        return logits, goals

    @torch.no_grad()
    def predict(self, images, texts: list[str], state, previous=None, point=None,
                radius: float = POINT_RADIUS, exclude=None) -> torch.Tensor:
        """uint8 images (B, H, W, 3), instructions, states (B, 12) -> goals (B, 2) in metres, NaN where nothing
        was detected. Commits to the best object, or, given the `previous` goals (B, 2; NaN: none), to a candidate
        within `STICK_RADIUS` of the previous goal whose probability is at least `STICK_SHARE` of the best's:
        between equally good objects ("all the red blocks") the arm keeps its choice instead of turning from one
        to the other at every chunk, and a clear change (the grasp: now the bowl) still switches.
        Given a `point` (B, 2) from a caller that knows which object is meant, the goal is instead that of the
        detected object nearest it within `radius` (`pointed_goal`: the camera says where, the caller which). Where
        no detection is that near, the previous goal is kept if it is, else the point itself is the goal: the
        camera missed the object (a gray cylinder on the gray table) and the caller knows where it lies.
        `exclude` (E, 2): table points where the policy has set objects down in this command (every row of the
        batch); a detection within `EXCLUDE_RADIUS` of one is not chosen while another remains ("put all the red
        blocks": the block just put in the bowl is still red, and the goal near the bowl would stick to it)."""
        rows, mask = self.detect(images)
        ids, slots, rgb = self.encode(texts)
        state = state.float() if torch.is_tensor(state) else torch.as_tensor(np.asarray(state, np.float32))
        logits, goals = self(rows, mask, ids, slots, rgb, state)
        if exclude is not None:
            logits = excluded(logits, table_xy(rows), exclude)
        goal = choose(logits, goals, previous)
        if self.cfg.push_end and point is None:
            goal = self.push_end(rows, mask, texts, state, logits, goal)
        if point is not None:
            point = torch.as_tensor(point, dtype=goal.dtype).to(goal.device).reshape(-1, 2)
            pointed = pointed_goal(table_xy(rows), goals, mask, point, radius)
            if previous is not None:  # a frame that misses the object keeps the goal already near the point
                prev = torch.as_tensor(previous, dtype=goal.dtype).to(goal.device).reshape(-1, 2)
                near = (prev - point).norm(dim=-1, keepdim=True) < radius
                pointed = torch.where(pointed.isnan() & near, prev, pointed)
            return torch.where(pointed.isnan(), point, pointed)
        return torch.where(mask.any(-1, keepdim=True), goal, torch.full_like(goal, float("nan")))

    def push_end(self, rows, mask, texts: list[str], state, logits, goal) -> torch.Tensor:
        """For each push command (`push_destination`): the table point where the expert's push of the chosen
        object (the mover) would end (`vla.envs.tasks.push.skill_goal`, from the detections' positions and
        shape/size classes), at the named side or beside the object the pointer chooses for "touch <landmark>";
        other rows, and a landmark choice that is the mover itself, keep `goal` (B, 2)."""
        from vla.envs.tasks.push import skill_goal

        where = [push_destination(t) if bool(mask[b].any()) else None for b, t in enumerate(texts)]
        todo = [b for b, w in enumerate(where) if w is not None and w[0] == "landmark"]
        near = None
        if todo:
            ids, slots, rgb = self.encode([f"touch {where[b][1]}" for b in todo])
            near = self(rows[todo], mask[todo], ids, slots, rgb, state[todo])[0].argmax(-1).tolist()
        table, goal = table_xy(rows).cpu().numpy(), goal.clone()
        for b, w in enumerate(where):
            if w is None:
                continue
            mover = int(logits[b].argmax())
            pos, radius = table[b, mover], footprint(rows[b, mover])
            if w[0] == "side":
                goal[b] = torch.tensor(skill_goal(pos, radius, w[1]), dtype=goal.dtype)
                continue
            landmark = near[todo.index(b)]
            if landmark != mover:
                other = (table[b, landmark], footprint(rows[b, landmark]))
                goal[b] = torch.tensor(skill_goal(pos, radius, None, other), dtype=goal.dtype)
        return goal

    def loss(self, logits, goals, target_index, target_goal) -> tuple[torch.Tensor, dict]:
        """Cross-entropy on the object nearest the oracle's goal (-1: none near, skipped) plus the smooth-L1 (cm)
        of the softmax-weighted goal."""
        p = logits.softmax(-1).nan_to_num(0.0)
        soft = (p[..., None] * goals).sum(1)
        err = (soft - target_goal) * 100.0
        reg = F.smooth_l1_loss(err, torch.zeros_like(err), beta=1.0)
        ok = target_index >= 0
        ce = F.cross_entropy(logits[ok], target_index[ok]) if bool(ok.any()) else logits.sum() * 0
        best = goals[torch.arange(len(goals)), logits.argmax(-1)]
        hit = ((best - target_goal).norm(dim=-1) < 0.03).float().mean()
        return ce + 0.1 * reg, {"ce": ce.detach(), "err_cm": err.norm(dim=-1).mean().detach(), "hit3cm": hit}
