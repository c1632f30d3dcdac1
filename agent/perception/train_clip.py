"""`vla train clip`: contrastive training of the tiny open_clip CLIP on rendered scenes and object crops.

Two kinds of steps alternate: whole scenes with one of several caption phrasings (plus a patch-text
localisation loss that pulls the patches of one named object towards its description), and crops of single
objects with short descriptions, sampled so that no description repeats inside a batch (open_clip's ClipLoss
treats every other pair as a negative).
"""
from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F

from vla.agent.perception.runs import ClipRun
from vla.agent.perception.scenes import load_set, object_crops
from vla.models.tools import qa_data

CROP_PHRASES = ("{c} {s}", "a {c} {s}", "the {c} {s}", "a {z}{c} {s}", "a photo of a {c} {s}")


def crop_phrase(obj: dict, rng: random.Random) -> str:
    size = f"{obj['size']} " if obj.get("size") else ""
    return rng.choice(CROP_PHRASES).format(c=obj["color"], s=obj["shape"], z=size)


def corpus(annotations: list[dict]) -> list[str]:
    """Every sentence the text tower may see (captions, crop phrases, questions), for the tokenizer."""
    rng = random.Random(0)
    out = [f"a photo of the {z} {c} {s}" for c in qa_data.COLORS for s in qa_data.SHAPES for z in ("small", "large")]
    for ann in annotations[:2000]:
        out += qa_data.captions(ann, rng)
        out += [q["question"] + " " + q["answer"] for q in qa_data.questions(ann, rng)]
    return out + [" ".join(qa_data.NUMBERS), "left right of in on holds holding gripper nothing yes no"]


class ClipBatches:
    """Samples scene and crop batches from a rendered scene set."""

    def __init__(self, data: dict, batch_size: int, seed: int):
        self.images, self.seg, self.anns = data["images"], data["seg"], data["annotations"]
        self.crops, self.crop_objs = object_crops(self.images, self.seg, self.anns, size=48)
        self.by_desc: dict[str, list[int]] = {}
        for i, obj in enumerate(self.crop_objs):
            self.by_desc.setdefault(qa_data.describe(obj), []).append(i)
        self.batch_size, self.rng = batch_size, random.Random(seed)

    def scenes(self):
        idx = self.rng.sample(range(len(self.images)), self.batch_size)
        texts = [self.rng.choice(qa_data.captions(self.anns[i], self.rng)) for i in idx]
        targets = [self._target(i) for i in idx]
        return self.images[idx], texts, targets

    def _target(self, i: int) -> tuple[str, np.ndarray]:
        """One object of scene i that can be named alone, and its segmentation mask."""
        objs = [o for o in self.anns[i]["objects"] if (self.seg[i] == o["id"]).sum() >= 3]
        if not objs:
            return "", np.zeros(self.seg[i].shape, np.float32)
        obj = self.rng.choice(objs)
        return qa_data.describe(obj), (self.seg[i] == obj["id"]).astype(np.float32)

    def crops_batch(self):
        descs = self.rng.sample(sorted(self.by_desc), min(self.batch_size, len(self.by_desc)))
        idx = [self.rng.choice(self.by_desc[d]) for d in descs]
        images = self.crops[idx].copy()
        flip = np.array([self.rng.random() < 0.5 for _ in idx])
        images[flip] = images[flip, :, ::-1]
        return images, [crop_phrase(self.crop_objs[i], self.rng) for i in idx]


def _locate_loss(clip, tokens, targets, scale) -> torch.Tensor:
    """Soft cross-entropy between patch-text logits (B, N) and each named object's mask share per patch."""
    keep = [j for j, (text, _) in enumerate(targets) if text]
    if not keep:
        return tokens.sum() * 0
    text = clip.model.encode_text(clip.tokens([targets[j][0] for j in keep]), normalize=True)   # (b, E)
    patches = F.normalize(tokens[keep] @ clip.model.visual.proj, dim=-1)                       # (b, N, E)
    logits = scale * (patches @ text[:, :, None])[..., 0]                                       # (b, N)
    grid = int(round(logits.shape[1] ** 0.5))
    masks = torch.as_tensor(np.stack([targets[j][1] for j in keep]))[:, None]                 # (b, 1, H, W)
    share = F.adaptive_avg_pool2d(masks, grid).flatten(1)                                       # (b, N)
    share = share / share.sum(1, keepdim=True).clamp_min(1e-6)
    return -(share * logits.log_softmax(-1)).sum(-1).mean()


def train_clip(run: ClipRun, out: str, data_dir=None) -> dict:
    """Train a CLIP from `run` on the scene set `run.scenes` and save it to `out`; returns the train metrics."""
    import open_clip

    from vla.agent.perception.loop import run_loop
    from vla.models.clip import ClipConfig, load_clip, new_clip
    from vla.models.config import from_dict, to_dict

    torch.manual_seed(run.train.seed)
    torch.set_num_threads(run.train.threads)
    data = load_set(run.scenes, workers=run.train.threads, **({"data_dir": data_dir} if data_dir else {}))
    if run.init:
        clip = load_clip(run.init)
        run.model = from_dict(ClipConfig, clip.config)
    else:
        clip = new_clip(run.model, corpus(data["annotations"]))
    clip.model.train()
    batches = ClipBatches(data, run.train.batch_size, run.train.seed)
    loss_fn = open_clip.ClipLoss()
    rng = random.Random(run.train.seed + 1)

    def step(_):
        scale = clip.model.logit_scale.exp()
        if rng.random() < run.crop_fraction:
            images, texts = batches.crops_batch()
            img = clip.model.encode_image(clip.pixels(images), normalize=True)                  # (B, E)
            txt = clip.model.encode_text(clip.tokens(texts), normalize=True)                    # (B, E)
            loss = loss_fn(img, txt, scale)
            return loss, {"crop_loss": loss.detach()}
        images, texts, targets = batches.scenes()
        visual = clip.model.visual
        visual.output_tokens = True
        pooled, tokens = visual(clip.pixels(images))                                            # (B, E), (B, N, W)
        visual.output_tokens = False
        txt = clip.model.encode_text(clip.tokens(texts), normalize=True)
        contrast = loss_fn(F.normalize(pooled, dim=-1), txt, scale)
        locate = _locate_loss(clip, tokens, targets, scale)
        return contrast + run.locate_weight * locate, {"scene_loss": contrast.detach(), "locate_loss": locate.detach()}

    metrics = run_loop(clip.model.parameters(), step, run.train, title=f"train clip ({run.name})")
    clip.model.eval()
    clip.save(out, extra={"run": to_dict(run), "train_metrics": metrics})
    return metrics
