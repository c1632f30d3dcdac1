"""`vla train vlm`: train the BLIP-2-style captioner / VQA model on rendered scenes and their annotations.

Every example is a scene image with either its canonical caption (prompt `CAPTION_PROMPT`) or one templated
question; the question type is drawn uniformly first so rare types (holding, containment) are not drowned by
frequent ones. The vision tower starts from the CLIP checkpoint when `clip_init` exists. The question-only
baseline (most frequent training answer per question) is fitted on the same questions and saved with the
weights as baseline.json, so `vla eval tools` can show how much the image matters.
"""
from __future__ import annotations

import random

import numpy as np
import torch

from vla import VLAError, project_path
from vla.agent.perception.evaluate import QuestionOnly
from vla.agent.perception.runs import VlmRun
from vla.agent.perception.scenes import load_set, visible_sets
from vla.models.objects import object_centres, visible_objects
from vla.models.tools import qa_data
from vla.models.vlm import CAPTION_PROMPT


class VlmExamples:
    """(image index, prompt, answer) samples; QA pairs are pre-generated per scene with a seeded generator."""

    def __init__(self, annotations: list[dict], caption_fraction: float, seed: int,
                 visible: list[set[int]] | None = None, types: tuple[str, ...] = qa_data.QA_TYPES):
        """`visible`: per scene, the ids of the objects its image shows (`qa_data.visible_ids`); then no question
        names another object and the captions leave them out. None: every object of the annotation. `types`: the
        question types asked."""
        rng = random.Random(seed)
        shown = visible or [None] * len(annotations)
        self.captions = [qa_data.caption(a if v is None else qa_data.seen_only(a, v))
                         for a, v in zip(annotations, shown)]
        self.by_type: dict[str, list[tuple[int, dict]]] = {t: [] for t in types}
        for i, ann in enumerate(annotations):
            for variant in range(3):
                draw = random.Random(seed * 7919 + i * 3 + variant)
                for q in qa_data.questions(ann, draw, types, visible=shown[i]):
                    self.by_type[q["type"]].append((i, q))
        self.types = [t for t, items in self.by_type.items() if items]
        self.caption_fraction, self.rng = caption_fraction, rng

    def all_questions(self) -> list[dict]:
        return [q for items in self.by_type.values() for _, q in items]

    def sentences(self) -> list[str]:
        return self.captions + [q["question"] + " " + q["answer"] for q in self.all_questions()] + \
            [" ".join(qa_data.COLORS)]

    def batch(self, size: int) -> tuple[list[int], list[str], list[str], list[list | None]]:
        """A batch of captions (with probability `caption_fraction`) or of QA pairs: short QA answers then
        need no padding to caption length, which roughly halves the cost of a QA step. The last list holds
        each question's `refs` (None for a caption)."""
        if self.rng.random() < self.caption_fraction:
            idx = [self.rng.randrange(len(self.captions)) for _ in range(size)]
            return idx, [CAPTION_PROMPT] * size, [self.captions[i] for i in idx], [None] * size
        pairs = [self.rng.choice(self.by_type[self.rng.choice(self.types)]) for _ in range(size)]
        return ([i for i, _ in pairs], [q["question"] for _, q in pairs], [q["answer"] for _, q in pairs],
                [q["refs"] for _, q in pairs])


def train_vlm(run: VlmRun, out: str, data_dir=None) -> dict:
    """Train a VLM from `run` on scene set `run.scenes` and save it (with baseline.json) to `out`."""
    from vla.agent.perception.loop import run_loop
    from vla.models.config import to_dict
    from vla.models.vlm import OBJECT_FIELDS, load_vlm, new_vlm

    torch.manual_seed(run.train.seed)
    torch.set_num_threads(run.train.threads)
    data = load_set(run.scenes, workers=run.train.threads, **({"data_dir": data_dir} if data_dir else {}))
    examples = VlmExamples(data["annotations"], run.caption_fraction, run.train.seed,
                           visible_sets(data) if run.visible_only else None,
                           qa_data.QA_TYPES + (qa_data.CHECK_TYPES if run.check_questions else ()))
    if run.clip_init:
        run.model.vision.weights = run.clip_init if project_path(run.clip_init).exists() else None
    if run.init:
        grow = {k: getattr(run.model, k) for k in OBJECT_FIELDS} if run.model.objects else None
        vlm = load_vlm(run.init, objects=grow)
        if not run.fine_only and (new := vlm.add_words(examples.sentences())):
            print(f"new words for the tokenizer: {', '.join(new)}")
        run.model = vlm.net.cfg
        vlm.net.vision.tower.requires_grad_(not run.model.vision.freeze)
    else:
        vlm = new_vlm(run.model, examples.sentences())
    if run.fine_only:
        return _train_fine(vlm, data, run, out)
    vlm.net.train()
    images = data["images"]
    cached = _frozen_patches(vlm.net, images) if run.model.vision.freeze else None       # (N, P, Dv) or None
    centres = ids = None
    if vlm.net.objects is not None:
        grid = vlm.net.objects.grid
        visible = [visible_objects(s, a) for s, a in zip(data["seg"], data["annotations"])]
        centres = [object_centres(s, a, grid, visible=v) for s, a, v in zip(data["seg"], data["annotations"], visible)]
        ids = [[o["id"] for o, _, _ in v] for v in visible]

    def step(_):
        idx, prompts, answers, refs = examples.batch(run.train.batch_size)
        return vlm.net(images[idx], prompts, answers, None if cached is None else cached[idx],
                       None if centres is None else [with_roles(centres[i], ids[i], r) for i, r in zip(idx, refs)])

    metrics = run_loop(vlm.net.parameters(), step, run.train, title=f"train vlm ({run.name})")
    vlm.net.eval()
    baseline = QuestionOnly.fit(examples.all_questions())
    vlm.save(out, extra={"baseline.json": baseline.table, "run.json": {"run": to_dict(run), "metrics": metrics}})
    return metrics


def _train_fine(vlm, data: dict, run: VlmRun, out: str) -> dict:
    """Train the object detector's full-resolution heatmap alone (`run.fine_only`) against the scenes' object
    centres; the detector's other layers run frozen, without gradients."""
    from vla.agent.perception.loop import run_loop
    from vla.models.config import to_dict

    det = vlm.net.objects
    if det is None or det.fine is None:
        raise VLAError("fine_only trains the full-resolution object heatmap: set model.objects > 0 and "
                       "model.object_fine=true (with init= a trained VLM).")
    vlm.net.requires_grad_(False)
    det.fine.requires_grad_(True)
    images = data["images"]
    centres = [object_centres(s, a, det.grid) for s, a in zip(data["seg"], data["annotations"])]
    gen = torch.Generator().manual_seed(run.train.seed)

    def step(_):
        idx = torch.randint(0, len(images), (run.train.batch_size,), generator=gen).tolist()
        with torch.no_grad():
            stem = det.net[:2](vlm.net._pixels(images[idx]))
            feats = det.net[2:](stem)
        loss = det.fine_loss(det.fine_heat(stem, feats), [centres[i] for i in idx])
        return loss, {"fine_loss": loss.detach()}

    metrics = run_loop(list(det.fine.parameters()), step, run.train, title=f"train vlm fine heatmap ({run.name})")
    vlm.net.eval()
    vlm.save(out, extra={**vlm.extra, "run.json": {"run": to_dict(run), "metrics": metrics}})
    return metrics


def with_roles(rows: np.ndarray, ids: list[int], refs: list[list[int]] | None) -> np.ndarray:
    """`object_centres` rows (M, 5) of objects `ids` plus their role in a question with `refs` (0 = not named,
    k = named by its k-th object phrase; -1 for all without refs, as for a caption)."""
    role = np.full(len(rows), -1.0 if refs is None else 0.0, np.float32)
    for k, group in enumerate(refs or []):
        role[[j for j, i in enumerate(ids) if i in group]] = k + 1
    return np.concatenate([rows, role[:, None]], 1)


@torch.no_grad()
def _frozen_patches(net, images, batch: int = 64) -> torch.Tensor:
    """Patch tokens of every training image, computed once because the vision tower does not train."""
    net.vision.eval()
    return torch.cat([net.tower_tokens(images[i:i + batch]) for i in range(0, len(images), batch)])
