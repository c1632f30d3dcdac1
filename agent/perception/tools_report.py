"""Put every perception-tool measurement together into the `vla eval tools` report (one JSON-able dict)."""
from __future__ import annotations

import time

import numpy as np

from vla.agent.perception import evaluate as ev
from vla.agent.perception.scenes import load_set


def latency_ms(image: np.ndarray, weights: dict, repeats: int = 5, device: str = "cpu", names=None) -> dict:
    """Median milliseconds per call of each registered tool (or those `names`) on one scene image (after one
    warm-up call)."""
    import torch

    from vla.models.tools import get_tool

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    calls = {"classify": {"image": image, "labels": ["red block", "blue bowl", "green cylinder"]},
             "locate": {"image": image, "text": "the red block"},
             "caption": {"image": image}, "vqa": {"image": image, "question": "how many bowls are there?"},
             "generate": {"prompt": "a red block in a green bowl", "steps": 25}}
    out = {}
    for name, inputs in calls.items():
        if names is not None and name not in names:
            continue
        tool = get_tool(name, weights=weights[name], device=device)
        tool(**inputs)
        times = []
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            tool(**inputs)
            sync()
            times.append(time.perf_counter() - start)
        out[name] = round(1000 * float(np.median(times)), 2)
    return out


def evaluate_tools(clip_w: str, vlm_w: str, diffusion_w: str, scenes: str = "heldout", n_diffusion: int = 32) -> dict:
    from vla.models.clip import load_clip
    from vla.models.diffusion import load_diffusion
    from vla.models.vlm import load_vlm

    from rich.console import Console
    from rich.progress import Progress

    data, unseen = load_set(scenes), load_set("unseen_colors")
    clip, vlm, diffusion = load_clip(clip_w), load_vlm(vlm_w), load_diffusion(diffusion_w)
    baseline = ev.QuestionOnly(vlm.extra["baseline.json"]) if "baseline.json" in getattr(vlm, "extra", {}) else None
    weights = {"classify": clip_w, "locate": clip_w, "caption": vlm_w, "vqa": vlm_w, "generate": diffusion_w}
    stages = {
        "zero": lambda: ev.eval_clip_zero_shot(clip, data),
        "zero_unseen": lambda: ev.eval_clip_zero_shot(clip, unseen, colors=ev.qa_data.COLORS),
        "r1": lambda: ev.eval_clip_retrieval(clip, data), "locate": lambda: ev.eval_clip_locate(clip, data),
        "vqa": lambda: ev.eval_vqa(vlm, data, baseline), "vqa_unseen": lambda: ev.eval_vqa(vlm, unseen, None),
        "checks": lambda: ev.eval_vqa(vlm, data, baseline, types=ev.qa_data.CHECK_TYPES),
        "checks_unseen": lambda: ev.eval_vqa(vlm, unseen, None, types=ev.qa_data.CHECK_TYPES),
        "caps": lambda: ev.eval_captions(vlm, data), "objects": lambda: ev.eval_objects(vlm, data),
        "diff": lambda: (ev.eval_diffusion(diffusion, vlm, data, n=n_diffusion) if n_diffusion > 0 else
                         {"attr_acc": None, "object_acc": None, "real_attr_acc": None, "real_object_acc": None,
                          "vae_attr_acc": None, "vae_object_acc": None, "images_per_s": None}),
        "ms": lambda: latency_ms(data["images"][0], weights),
    }
    res = {}
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("evaluating tools", total=len(stages))
        for key, fn in stages.items():
            bar.update(task, description=f"evaluating {key}")
            res[key] = fn()
            bar.advance(task)
    zero, zero_unseen, vqa, caps, diff = res["zero"], res["zero_unseen"], res["vqa"], res["caps"], res["diff"]
    return {
        "clip_zero_shot_acc": zero["acc"], "clip_zero_shot_color_acc": zero["color_acc"],
        "clip_zero_shot_shape_acc": zero["shape_acc"], "clip_zero_shot_n": zero["n"],
        "clip_zero_shot_acc_unseen_colors": zero_unseen["acc"],
        "clip_retrieval_r1": res["r1"], "clip_locate_acc": res["locate"],
        "vqa_acc": vqa["acc"], "vqa_question_only_acc": vqa.get("question_only_acc"), "vqa_acc_by_type": vqa["by_type"],
        "vqa_n": vqa["n"], "vqa_acc_with_hidden": vqa["acc_with_hidden"], "vqa_n_hidden": vqa["n_hidden"],
        "vqa_acc_unseen_colors": res["vqa_unseen"]["acc"],
        "vqa_checks": {"acc": res["checks"]["acc"], "question_only_acc": res["checks"].get("question_only_acc"),
                       "by_type": res["checks"]["by_type"], "n": res["checks"]["n"],
                       "acc_unseen_colors": res["checks_unseen"]["acc"]},
        "caption_precision": caps["precision"], "caption_recall": caps["recall"],
        "caption_recall_with_hidden": caps["recall_with_hidden"], "vlm_objects": res["objects"],
        "diffusion_attr_acc": diff["attr_acc"], "diffusion_object_acc": diff["object_acc"],
        "diffusion_attr_acc_real_scenes": diff["real_attr_acc"], "diffusion_object_acc_real_scenes":
        diff["real_object_acc"], "diffusion_attr_acc_vae": diff["vae_attr_acc"],
        "diffusion_object_acc_vae": diff["vae_object_acc"],
        "diffusion_images_per_s": diff["images_per_s"], "ms_per_call": res["ms"],
        "scenes": {"name": scenes, "n": len(data["images"]), "unseen_colors_n": len(unseen["images"])},
    }


def print_report(r: dict) -> None:
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f} %"  # noqa: E731
    print(f"held-out scenes: {r['scenes']['n']} (+{r['scenes']['unseen_colors_n']} with unseen colours)")
    print(f"CLIP zero-shot colour+shape: {pct(r['clip_zero_shot_acc'])} (colour {pct(r['clip_zero_shot_color_acc'])}, "
          f"shape {pct(r['clip_zero_shot_shape_acc'])}, n={r['clip_zero_shot_n']}); unseen colours "
          f"{pct(r['clip_zero_shot_acc_unseen_colors'])}")
    print(f"CLIP text->image R@1: {pct(r['clip_retrieval_r1'])}; locate (centre in object box): "
          f"{pct(r['clip_locate_acc'])}")
    print(f"VQA exact match: {pct(r['vqa_acc'])} (question-only baseline {pct(r['vqa_question_only_acc'])}, "
          f"n={r['vqa_n']}); unseen colours {pct(r['vqa_acc_unseen_colors'])}")
    print(f"  with the {r['vqa_n_hidden']} questions about objects the image hides: {pct(r['vqa_acc_with_hidden'])}")
    print("  by type: " + ", ".join(f"{t} {pct(v)}" for t, v in r["vqa_acc_by_type"].items()))
    c = r["vqa_checks"]
    print(f"VQA step checks (the agent's --verify vqa questions): {pct(c['acc'])} (question-only baseline "
          f"{pct(c['question_only_acc'])}, n={c['n']}); unseen colours {pct(c['acc_unseen_colors'])}")
    print("  by type: " + ", ".join(f"{t} {pct(v)}" for t, v in c["by_type"].items()))
    print(f"captions: attribute precision {r['caption_precision']:.3f}, recall {r['caption_recall']:.3f} "
          f"(counting hidden objects {r['caption_recall_with_hidden']:.3f})")
    if r.get("vlm_objects"):
        o = r["vlm_objects"]
        print(f"VLM object detector: recall {pct(o['recall'])}, precision {pct(o['precision'])}, "
              f"right count in {pct(o['count_exact'])} of scenes")
    if r["diffusion_images_per_s"] is not None:
        print(f"diffusion: all described objects recognised in {pct(r['diffusion_attr_acc'])} of images "
              f"(per object {pct(r['diffusion_object_acc'])}; the same judge on the real scenes: "
              f"{pct(r['diffusion_attr_acc_real_scenes'])}, per object {pct(r['diffusion_object_acc_real_scenes'])}); "
              f"{r['diffusion_images_per_s']:.2f} images/s")
        if r.get("diffusion_attr_acc_vae") is not None:
            print(f"  the real scenes through its VAE: {pct(r['diffusion_attr_acc_vae'])}, per object "
                  f"{pct(r['diffusion_object_acc_vae'])} (the ceiling its decoder leaves)")
    print("ms per call: " + ", ".join(f"{k} {v:.1f}" for k, v in r["ms_per_call"].items()))
