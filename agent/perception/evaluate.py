"""`vla eval tools`: the perception tools measured on held-out scenes (seeds and colours never trained on).

Each `eval_*` function takes a loaded model and a scene set (see scenes.py) and returns plain numbers.
"""
from __future__ import annotations

import random
import time
from collections import Counter

import numpy as np

from vla.agent.perception.scenes import object_crops, shown_annotations, visible_sets
from vla.models.tools import qa_data

SEEN_COLORS = qa_data.COLORS[:8]


def eval_clip_zero_shot(clip, data: dict, colors=SEEN_COLORS) -> dict:
    """Zero-shot '<colour> <shape>' classification of single-object crops among every colour x shape label."""
    crops, objs = object_crops(data["images"], data["seg"], data["annotations"], size=48)
    labels = [f"{c} {s}" for c in colors for s in qa_data.SHAPES]
    txt = clip.encode_texts(labels)                                                      # (L, E)
    preds = []
    for i in range(0, len(crops), 64):
        preds += (clip.encode_images(crops[i:i + 64]) @ txt.T).argmax(-1).tolist()
    guess = [labels[p].split() for p in preds]
    color_ok = [g[0] == o["color"] for g, o in zip(guess, objs)]
    shape_ok = [g[1] == o["shape"] for g, o in zip(guess, objs)]
    both = [a and b for a, b in zip(color_ok, shape_ok)]
    return {"acc": float(np.mean(both)), "color_acc": float(np.mean(color_ok)), "shape_acc": float(np.mean(shape_ok)),
            "n": len(objs)}


def eval_clip_retrieval(clip, data: dict) -> float:
    """Text-to-image R@1 with canonical captions; a retrieved scene with the identical caption counts as a hit."""
    caps = [qa_data.caption(a) for a in data["annotations"]]
    img = np.concatenate([clip.encode_images(data["images"][i:i + 64]).numpy()
                          for i in range(0, len(caps), 64)])                              # (N, E)
    uniq = sorted(set(caps))
    txt = np.concatenate([clip.encode_texts(uniq[i:i + 64]).numpy() for i in range(0, len(uniq), 64)])
    best = (txt @ img.T).argmax(1)                                                       # (U,)
    return float(np.mean([caps[b] == u for u, b in zip(uniq, best)]))


def eval_clip_locate(clip, data: dict) -> float:
    """Share of uniquely named objects whose predicted centre falls inside the object's (2 px padded) box."""
    hits = []
    for image, seg, ann in zip(data["images"], data["seg"], data["annotations"]):
        for obj in ann["objects"]:
            ref = qa_data.refer(obj, ann["objects"])
            ys, xs = np.nonzero(seg == obj["id"])
            if not ref or len(ys) < 3:
                continue
            _, _, (cx, cy), _ = clip.locate(image, "the " + ref)
            hits.append(xs.min() - 2 <= cx <= xs.max() + 2 and ys.min() - 2 <= cy <= ys.max() + 2)
    return float(np.mean(hits)) if hits else 0.0


def qa_set(annotations: list[dict], seed: int = 0, types=qa_data.QA_TYPES) -> list[tuple[int, dict]]:
    """(scene index, question) pairs for every scene of a set, generated with a fixed seed."""
    rng = random.Random(seed)
    return [(i, q) for i, ann in enumerate(annotations) for q in qa_data.questions(ann, rng, types)]


class QuestionOnly:
    """The strongest image-blind answerer for templated questions: the most frequent training answer per
    question (falling back to the most frequent answer of its type)."""

    def __init__(self, table: dict):
        self.table = table

    @classmethod
    def fit(cls, qas: list[dict]) -> "QuestionOnly":
        by_q, by_t = {}, {}
        for q in qas:
            by_q.setdefault(q["question"], Counter())[q["answer"]] += 1
            by_t.setdefault(q["type"], Counter())[q["answer"]] += 1
        return cls({"question": {k: c.most_common(1)[0][0] for k, c in by_q.items()},
                    "type": {k: c.most_common(1)[0][0] for k, c in by_t.items()}})

    def __call__(self, q: dict) -> str:
        return self.table["question"].get(q["question"], self.table["type"].get(q["type"], "yes"))


def eval_vqa(vlm, data: dict, baseline: QuestionOnly | None, batch: int = 64, types=qa_data.QA_TYPES) -> dict:
    """Exact-match accuracy over the questions whose named objects the image shows (`acc`, `by_type`, `n`; the
    question-only baseline on the same ones), and over every generated question (`acc_with_hidden`, `n_hidden`:
    those that ask about an object the arm or a bowl hides). `types`: the question types asked (the agent's step
    checks are `qa_data.CHECK_TYPES`)."""
    qas = qa_set(data["annotations"], seed=12345, types=types)
    visible = visible_sets(data)
    shown = [all(r in visible[i] for group in q["refs"] for r in group) for i, q in qas]
    preds = []
    for s in range(0, len(qas), batch):
        part = qas[s:s + batch]
        preds += vlm.answers(data["images"][[i for i, _ in part]], [q["question"] for _, q in part])
    ok = [p == q["answer"] for p, (_, q) in zip(preds, qas)]
    kept = [(o, q) for o, (_, q), v in zip(ok, qas, shown) if v]
    by_type = {t: float(np.mean([o for o, q in kept if q["type"] == t])) for t in types
               if any(q["type"] == t for _, q in kept)}
    out = {"acc": float(np.mean([o for o, _ in kept])), "by_type": by_type, "n": len(kept),
           "acc_with_hidden": float(np.mean(ok)), "n_hidden": len(qas) - len(kept)}
    if baseline is not None:
        out["question_only_acc"] = float(np.mean([baseline(q) == q["answer"] for _, q in kept]))
    return out


def eval_objects(vlm, data: dict, batch: int = 64, tolerance: float = 1.0) -> dict | None:
    """The VLM's object detector (see vla.models.objects) against the segmentation's centres: a true object is
    found, and a peak is right, when a peak of its shape class lies within `tolerance` grid cells of it."""
    import torch

    from vla.models.objects import object_centres

    det = getattr(getattr(vlm, "net", None), "objects", None)
    if det is None:
        return None
    found = []
    with torch.no_grad():
        for s in range(0, len(data["images"]), batch):
            aux = det(vlm.net._pixels(data["images"][s:s + batch]))[2]
            found += det.detect(aux["heat"], fine=aux["fine"])
    truth = [object_centres(s, a, det.grid) for s, a in zip(data["seg"], data["annotations"])]
    near = lambda a, b: a[0] == b[0] and np.abs(a[1:3] - b[1:3]).max() <= tolerance  # noqa: E731
    recall = [any(near(f, t) for f in fs) for fs, ts in zip(found, truth) for t in ts]
    precision = [any(near(f, t) for t in ts) for fs, ts in zip(found, truth) for f in fs]
    return {"recall": float(np.mean(recall)), "precision": float(np.mean(precision)) if precision else 0.0,
            "count_exact": float(np.mean([len(f) == len(t) for f, t in zip(found, truth)]))}


def eval_captions(vlm, data: dict, batch: int = 64) -> dict:
    """Attribute precision (coloured objects named that the scene has, hidden or not) and recall (of the objects
    the image shows, how many the caption names); `recall_with_hidden` counts the hidden ones too."""
    counts, visible = np.zeros(5), visible_sets(data)
    for s in range(0, len(data["images"]), batch):
        for i, text in enumerate(vlm.captions(data["images"][s:s + batch]), s):
            ann = data["annotations"][i]
            tp, said, there = qa_data.attribute_match(text, ann)
            tp_shown, _, shown = qa_data.attribute_match(text, qa_data.seen_only(ann, visible[i]))
            counts += (tp, said, there, tp_shown, shown)
    tp, said, there, tp_shown, shown = np.maximum(counts, [0, 1, 1, 0, 1])
    return {"precision": tp / said, "recall": tp_shown / shown, "recall_with_hidden": tp / there}


def eval_diffusion(diffusion, vlm, data: dict, n: int = 32, steps: int = 25) -> dict:
    """Generate from held-out canonical captions (of the objects each scene's image shows); an image passes when
    the VQA model answers 'yes' to 'is there a <colour> <shape>?' for every described object. The same judge on
    the real scenes those captions describe (`real_*`) is the ceiling it can measure; for a latent model, on those
    scenes passed through its VAE (`vae_*`), the ceiling its decoder leaves. Also images per second."""
    anns = shown_annotations(data)[:n]
    prompts = [qa_data.caption(a) for a in anns]
    start = time.time()
    images = np.concatenate([diffusion.generate_batch(prompts[i:i + 16], seed=i, steps=steps)
                             for i in range(0, n, 16)])
    per_s = len(prompts) / (time.time() - start)
    judged = _judge_objects(vlm, images, anns)
    real = _judge_objects(vlm, data["images"][:n], anns)
    vae = (None, None)
    if getattr(diffusion, "vae", None) is not None:
        vae = _judge_objects(vlm, _through_vae(diffusion, data["images"][:n]), anns)
    return {"attr_acc": judged[0], "object_acc": judged[1], "real_attr_acc": real[0], "real_object_acc": real[1],
            "vae_attr_acc": vae[0], "vae_object_acc": vae[1], "images_per_s": per_s, "images": images}


def _through_vae(diffusion, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """uint8 scenes (N, H, W, 3), at the model's size as in training, encoded to its latents and decoded again."""
    from vla.agent.perception.train_diffusion import downscale
    from vla.models.diffusion import to_uint8

    size = diffusion.cfg.image_size
    return np.concatenate([to_uint8(diffusion.to_images(diffusion.to_model_space(downscale(images[s:s + batch], size))))
                           for s in range(0, len(images), batch)])


def _judge_objects(vlm, images, anns) -> tuple[float, float]:
    """(share of images with every described object found, share of objects found) by the VQA model."""
    ok_obj, ok_img = [], []
    for image, ann in zip(images, anns):
        pairs = sorted(qa_data.present(ann))
        answers = vlm.answers(np.stack([image] * len(pairs)), [f"is there a {c} {s}?" for c, s in pairs])
        hits = [a == "yes" for a in answers]
        ok_obj += hits
        ok_img.append(all(hits))
    return float(np.mean(ok_img)), float(np.mean(ok_obj))
