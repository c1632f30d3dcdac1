"""`vla train goal`: train the policy's goal pointer (vla.models.goal) on oracle frames, and attach it to a policy.

The detector is the shipped VLM's (copied in, frozen), so detections are computed once per frame and cached; a
step then costs only the small transformer. Targets: the oracle's skill goal (`labels.current_label`) and, as the
pointer's class, the detected object nearest that goal (within `near` metres), or else the one nearest the object
the task moves (a push ends beside it).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from vla import VLAError, project_path
from vla.agent.perception.runs import GoalRun


def load_detector(pointer, vlm: str) -> None:
    """Copy the VLM checkpoint's detector (`objects.net/heat/attrs`) into `pointer.detector`."""
    from safetensors import safe_open

    path = project_path(vlm)
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise VLAError(f"no VLM checkpoint at {str(path)!r}: the goal pointer takes its object detector from one.")
    want = pointer.detector.state_dict()
    got = {}
    with safe_open(str(weights), "pt") as f:
        for key in want:
            name = f"objects.{key}"
            if name not in f.keys():
                raise VLAError(f"the VLM at {str(path)!r} has no object detector ({name} missing).")
            got[key] = f.get_tensor(name).float()
    pointer.detector.load_state_dict(got)


def recolor_objects(images: torch.Tensor, seg: torch.Tensor, annotations: list[dict], p: float,
                    gen: torch.Generator) -> torch.Tensor:
    """uint8 images (B, H, W, 3) with each object (from the segmentation (B, H, W)) recoloured with probability p to
    a random colour (a grey from black to white for 40 % of them), keeping its shading: a pixel's luma over the
    luma of the object's own colour. The table and the robot keep theirs, unlike a recolouring of the whole
    image, which keeps every contrast and so never shows a grey block on the tan table."""
    from vla.agent.train.data import LUMA
    from vla.envs.vocab import COLORS

    out = images.float()
    for b, ann in enumerate(annotations):
        for obj in ann["objects"]:
            if float(torch.rand(1, generator=gen)) >= p:
                continue
            where = seg[b] == obj["id"]
            if not bool(where.any()):
                continue
            own = float((LUMA * torch.tensor(COLORS[obj["color"]][:3])).sum())
            shade = ((out[b][where] @ LUMA) / (255.0 * max(own, 0.05))).clamp(0.0, 1.2)       # (n,)
            grey = float(torch.rand(1, generator=gen)) < 0.4
            color = torch.rand(1, generator=gen).expand(3) if grey else torch.rand(3, generator=gen)
            out[b][where] = shade[:, None] * color[None] * 255.0
    return out.round().clamp(0, 255).to(torch.uint8)


def tune_detector(pointer, run: GoalRun, data_dir=None) -> dict:
    """Fine-tune the pointer's copy of the detector on rendered scenes (96 px, with segmentation) whose objects are
    mostly recoloured (`recolor_objects`; a share of whole images too), so that it finds objects of any colour:
    the CenterNet heat loss and the size head (colour labels are dropped, a recoloured block has none).
    `data_dir`: where the goal frames are; the scenes are then under its scenes/ (else data/tools/)."""
    import torch.nn.functional as F

    from vla.agent.perception.loop import LoopConfig, run_loop
    from vla.agent.perception.scenes import load_set as load_scenes
    from vla.agent.train.data import random_color_matrices, recolor
    from vla.models.objects import object_centres, sample_cells

    det = pointer.detector
    data = load_scenes(run.detector_scenes, **({"data_dir": Path(data_dir) / "scenes"} if data_dir else {}))
    images, seg = torch.as_tensor(data["images"]), torch.as_tensor(data["seg"])
    centres = [object_centres(s, a, det.grid) for s, a in zip(data["seg"], data["annotations"])]
    gen = torch.Generator().manual_seed(run.train.seed + 1)
    S = pointer.cfg.detector_size
    det.requires_grad_(True)
    det.train()

    def step(_):
        idx = torch.randint(0, len(images), (32,), generator=gen).tolist()
        img = recolor_objects(images[idx], seg[idx], [data["annotations"][i] for i in idx], run.detector_color_aug,
                              gen)
        img = recolor(img, random_color_matrices(len(idx), 0.3, gen))
        x = img.permute(0, 3, 1, 2).float() / 255.0
        if x.shape[-1] != S:
            x = F.interpolate(x, size=(S, S), mode="bilinear", antialias=True, align_corners=False)
        feats = det.net((x - pointer.mean) / pointer.std)
        heat = det.heat(feats)
        true = [centres[i][:det.slots] for i in idx]
        rows = torch.full((len(idx), det.slots, 6), -1.0)
        for b, c in enumerate(true):
            rows[b, :len(c), :5] = torch.as_tensor(c)
        rows[..., 3] = -1.0                                   # no colour labels
        sampled = sample_cells(feats, rows[..., 1:3].clamp_min(0), det.grid)
        loss = det.loss({"heat": heat, "attrs": det.attrs(sampled), "rows": rows}, true)
        return loss, {"detector_loss": loss.detach()}

    loop = LoopConfig(steps=run.detector_steps, batch_size=32, lr=run.detector_lr, warmup_steps=50,
                      weight_decay=0.0, threads=run.train.threads, log_every=run.train.log_every)
    metrics = run_loop(list(det.parameters()), step, loop, title="tune goal detector")
    det.requires_grad_(False)
    det.eval()
    return metrics


def cache_rows(pointer, images: np.ndarray, batch: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    rows, masks = [], []
    for s in range(0, len(images), batch):
        r, m = pointer.detect(images[s:s + batch])
        rows.append(r)
        masks.append(m)
    return torch.cat(rows), torch.cat(masks)


def targets(rows: torch.Tensor, mask: torch.Tensor, data: dict, near: float) -> tuple[torch.Tensor, torch.Tensor]:
    """-> the pointer's class per frame and the goal (N, 2). The class is the detected object nearest the oracle's
    goal (within `near` metres), else the one nearest the object the task moves (a push ends beside it), else -1
    (none)."""
    from vla.models.goal import table_xy

    table = table_xy(rows)                                                                            # (N, K, 2)
    goal = torch.as_tensor(data["labels"][:, 4:6])
    index = torch.full((len(goal),), -1, dtype=torch.long)
    for i in range(len(goal)):
        dist = (table[i] - goal[i]).norm(dim=-1).masked_fill(~mask[i], 9.0)
        j = int(dist.argmin())
        if float(dist[j]) < near:
            index[i] = j
            continue
        mover = int(data["movers"][i])
        pos = next((o["position"][:2] for o in data["annotations"][i]["objects"] if o["id"] == mover), None)
        if pos is not None:
            dist = (table[i] - torch.tensor(pos)).norm(dim=-1).masked_fill(~mask[i], 9.0)
            j = int(dist.argmin())
            if float(dist[j]) < near:
                index[i] = j
    return index, goal


def new_pointer(run: GoalRun, data: dict):
    from vla.envs.vocab import COLORS
    from vla.models.goal import GoalPointer, words

    vocab = sorted({w for text in data["instructions"] for w in words(text)} - set(COLORS))
    state = data["state"].astype(np.float64)
    cfg = replace(run.model, vocab=vocab, word_rgb={k: list(v[:3]) for k, v in COLORS.items()},
                  state_mean=state.mean(0).tolist(), state_std=np.maximum(state.std(0), 1e-3).tolist())
    pointer = GoalPointer(cfg)
    if run.detector_from:
        pointer.detector.load_state_dict(load_pointer(run.detector_from).detector.state_dict())
    else:
        load_detector(pointer, run.vlm)
    return pointer


@torch.no_grad()
def evaluate(pointer, data: dict, rows=None, mask=None, near: float = 0.03) -> dict:
    """Share of frames whose committed goal lies within 3 cm of the oracle's, overall and per task; mean error."""
    pointer.eval()
    if rows is None:
        rows, mask = cache_rows(pointer, data["images"])
    goals = []
    for s in range(0, len(rows), 256):
        ids, slots, rgb = pointer.encode(data["instructions"][s:s + 256])
        logits, cand = pointer(rows[s:s + 256], mask[s:s + 256], ids, slots, rgb,
                               torch.as_tensor(data["state"][s:s + 256]))
        best = cand[torch.arange(len(cand)), logits.argmax(-1)]
        goals.append(torch.where(mask[s:s + 256].any(-1, keepdim=True), best, torch.full_like(best, 9.0)))
    err = (torch.cat(goals) - torch.as_tensor(data["labels"][:, 4:6])).norm(dim=-1).numpy()
    tasks = np.array(data["tasks"])
    return {"hit3cm": float((err < near).mean()), "median_err_cm": float(np.median(err) * 100),
            "per_task": {t: float((err[tasks == t] < near).mean()) for t in sorted(set(tasks))}}


def train_goal(run: GoalRun, out: str, workers: int = 2, data_dir=None) -> dict:
    """Train a goal pointer from `run` on its frame set (rendered on first use), score it on `run.eval` and
    save it to `out` with the scores in report.json."""
    from vla.agent.perception.loop import run_loop
    from vla.agent.train.data import random_color_matrices
    from vla.agent.train.goal_data import load_set
    from vla.models.config import to_dict
    from vla.models.goal import COLOR, PAD, UNK

    torch.manual_seed(run.train.seed)
    torch.set_num_threads(run.train.threads)
    where = {"data_dir": data_dir} if data_dir else {}
    data = load_set(run.data, workers=workers, **where)
    pointer = new_pointer(run, data)
    report = {}
    if run.detector_steps > 0:
        report["detector_metrics"] = tune_detector(pointer, run, data_dir)
    rows, mask = cache_rows(pointer, data["images"])
    index, goal = targets(rows, mask, data, run.near)
    ids, slots, rgb = pointer.encode(data["instructions"])
    state = torch.as_tensor(data["state"])
    gen = torch.Generator().manual_seed(run.train.seed)
    # frames where the arm holds something weigh `held_weight` times as much: the oracle lifts at once, so the
    # frames right after a grasp, when the goal has moved to the destination, are few
    held = torch.tensor([a["gripper"].get("holding") is not None for a in data["annotations"]])
    weights = torch.where(held, float(run.held_weight), 1.0)
    pointer.train()

    def step(_):
        idx = torch.multinomial(weights, run.train.batch_size, replacement=True, generator=gen)
        words = ids[idx]
        drop = (torch.rand(words.shape, generator=gen) < pointer.cfg.word_dropout) & (words != PAD) & \
            (words != COLOR)
        words = torch.where(drop, torch.full_like(words, UNK), words)
        matrix = random_color_matrices(len(idx), run.color_aug, gen)
        logits, cand = pointer(rows[idx], mask[idx], words, slots[idx], rgb[idx], state[idx], matrix)
        keep = mask[idx].any(-1)
        return pointer.loss(logits[keep], cand[keep], index[idx][keep], goal[idx][keep])

    metrics = run_loop([p for p in pointer.parameters() if p.requires_grad], step, run.train,
                       title=f"train goal ({run.name})")
    report.update(train_metrics=metrics, pointer_targets=float((index >= 0).float().mean()))
    for name in run.eval:
        report[name] = evaluate(pointer, load_set(name, workers=workers, **where), near=run.near)
    save_pointer(pointer, out, {"run": to_dict(run), **report})
    return report


def save_pointer(pointer, out: str | Path, extra: dict | None = None) -> Path:
    from vla.models.checkpoint import write_checkpoint
    from vla.models.config import to_dict

    return write_checkpoint(out, config={"tool": "goal_pointer", "model": to_dict(pointer.cfg)},
                            state_dict=pointer.state_dict(), json_files={"report.json": extra or {}})


def load_pointer(path: str | Path):
    from vla.models.checkpoint import read_checkpoint
    from vla.models.config import from_dict
    from vla.models.goal import GoalConfig, GoalPointer

    ckpt = read_checkpoint(path, json_names=())
    if ckpt.config.get("tool") != "goal_pointer":
        raise VLAError(f"{str(path)!r} is not a goal pointer checkpoint (config.json says tool="
                       f"{ckpt.config.get('tool')!r}).")
    pointer = GoalPointer(from_dict(GoalConfig, ckpt.config["model"]))
    pointer.load_state_dict(ckpt.state_dict)
    return pointer.eval()


def attach(policy_path: str, pointer, out: str | Path, dtype: torch.dtype | None = torch.float16) -> Path:
    """Write the policy at `policy_path` with `pointer` attached (model.goal_pointer) to `out` (fp16 weights by
    default, as shipped). An attached pointer is replaced."""
    from vla.models.config import to_dict
    from vla.models.policy.policy import VLAPolicy, load_policy

    policy = load_policy(policy_path)
    cfg = policy.cfg
    cfg.model.goal_pointer = to_dict(pointer.cfg)
    cfg.validate()
    new = VLAPolicy(cfg, policy.net.tokenizer, policy.stats, load_weights=False)
    state = {k: v for k, v in policy.net.state_dict().items() if not k.startswith("goal_pointer.")}
    missing, unexpected = new.net.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("goal_pointer.") for k in missing):
        raise VLAError(f"cannot attach a goal pointer to {policy_path!r}: its weights do not fit its config.")
    new.net.goal_pointer.load_state_dict(pointer.state_dict())
    return new.save(out, dtype=dtype)
