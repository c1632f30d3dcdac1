"""Rendered scenes with ground-truth annotations: the training and evaluation data of the perception tools.

Each episode resets a random task with a seed, then steps the scripted oracle and keeps a few snapshots at
random steps, so scenes include held objects, objects in bowls and stacks. A set is one `.npz` with
`images` uint8 (N, S, S, 3), `seg` uint8 (N, S, S) object ids (0 = background) and `annotations` (JSON
strings, `scene_annotation()` of each snapshot). Seeds of the splits never overlap: training uses seeds from
`TRAIN_SEED`, held-out scenes from `HELDOUT_SEED`; the `unseen_colors` env split gives held-out colours.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vla import ROOT, VLAError

TRAIN_SEED, HELDOUT_SEED = 0, 1_000_000
TASKS = ("reach", "pick", "place", "stack", "push", "put_all", "chain")
DATA_DIR = ROOT / "data" / "tools"


@dataclass(frozen=True)
class SceneSet:
    name: str
    split: str          # env split: "seen" or "unseen_colors"
    first_seed: int
    episodes: int
    snapshots: int      # scenes kept per episode
    image_size: int = 96


SETS = {
    "train": SceneSet("train", "seen", TRAIN_SEED, 1200, 4),
    # the same first 1200 episodes and 4800 more, 6 snapshots each (~17k scenes, 12 min on 2 cores)
    "train_xl": SceneSet("train_xl", "seen", TRAIN_SEED, 6000, 6),
    "heldout": SceneSet("heldout", "seen", HELDOUT_SEED, 150, 2),
    "unseen_colors": SceneSet("unseen_colors", "unseen_colors", HELDOUT_SEED, 100, 2),
    "debug": SceneSet("debug", "seen", TRAIN_SEED, 3, 2),
}


def render_episode(spec: SceneSet, seed: int) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """(front image, segmentation, annotation) at `spec.snapshots` random oracle steps of one seeded episode."""
    from vla.envs import make_env

    rng = random.Random(seed)
    env = make_env(rng.choice(TASKS), split=spec.split, image_size=spec.image_size, segmentation=True)
    try:
        obs, _ = env.reset(seed=seed)
        stops = sorted(rng.sample(range(0, 90), spec.snapshots))
        out, step = [], 0
        for stop in stops:
            while step < stop:
                obs, _, term, trunc, _ = env.step(env.unwrapped.oracle_action())
                step += 1
                if term or trunc:
                    break
            out.append((obs["front"].copy(), obs["front_seg"].astype(np.uint8), env.unwrapped.scene_annotation()))
            if step < stop:
                break
        return out
    finally:
        env.close()


def _render_range(args) -> list:
    spec, seeds = args
    return [item for seed in seeds for item in render_episode(spec, seed)]


def render_set(spec: SceneSet, workers: int = 1, progress=None) -> dict:
    """Render every episode of `spec` -> {"images", "seg", "annotations"} (arrays, list of JSON strings)."""
    seeds = list(range(spec.first_seed, spec.first_seed + spec.episodes))
    chunks = [(spec, seeds[i:i + 10]) for i in range(0, len(seeds), 10)]
    items = []
    if workers > 1:
        from multiprocessing import get_context

        with get_context("spawn").Pool(workers) as pool:
            for part in pool.imap(_render_range, chunks):
                items += part
                progress and progress(len(part))
    else:
        for chunk in chunks:
            part = _render_range(chunk)
            items += part
            progress and progress(len(part))
    return {"images": np.stack([i[0] for i in items]), "seg": np.stack([i[1] for i in items]),
            "annotations": [json.dumps(i[2]) for i in items]}


def set_path(name: str, data_dir: Path = DATA_DIR) -> Path:
    return Path(data_dir) / f"{name}.npz"


def load_set(name: str, data_dir: Path = DATA_DIR, workers: int = 1) -> dict:
    """The scene set `name`, rendered and cached under data/tools/ on first use."""
    spec = known_set(name, SETS, "scene set")

    def render() -> dict:
        data = _render_with_progress(spec, workers)
        return {**data, "annotations": np.array(data["annotations"])}

    f = cached_arrays(set_path(name, data_dir), render)
    return {"images": f["images"], "seg": f["seg"], "annotations": [json.loads(a) for a in f["annotations"]]}


def visible_sets(data: dict) -> list[set[int]]:
    """Per scene of a loaded set, the ids of the objects its image shows (`qa_data.visible_ids` on the
    segmentation): what questions and captions may name."""
    from vla.models.tools.qa_data import visible_ids

    return [visible_ids(seg, ann) for seg, ann in zip(data["seg"], data["annotations"])]


def shown_annotations(data: dict) -> list[dict]:
    """Per scene of a loaded set, its annotation without the objects its image does not show (`qa_data.seen_only`
    of `visible_sets`): what a caption or a prompt of that image names."""
    from vla.models.tools.qa_data import seen_only

    return [seen_only(a, v) for a, v in zip(data["annotations"], visible_sets(data))]


def known_set(name: str, sets: dict, kind: str):
    """`sets[name]`, or a VLAError naming the known ones."""
    if name not in sets:
        from vla import did_you_mean

        raise VLAError(f"unknown {kind} {name!r}; " + did_you_mean(name, sorted(sets)))
    return sets[name]


def cached_arrays(path: Path, render) -> dict:
    """The arrays saved at `path` (.npz); when it is missing, `render()` (a dict of arrays) is saved there first,
    atomically (a killed render leaves no file behind)."""
    if not path.is_file():
        data = render()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **data)
        tmp.rename(path)
    with np.load(path) as f:
        return {key: f[key] for key in f.files}


def _render_with_progress(spec: SceneSet, workers: int) -> dict:
    from rich.console import Console
    from rich.progress import Progress

    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(f"rendering {spec.name} scenes", total=spec.episodes * spec.snapshots)
        return render_set(spec, workers, progress=lambda n: bar.advance(task, n))


def object_crops(images: np.ndarray, seg: np.ndarray, annotations: list[dict], size: int = 32, margin: int = 3,
                 free_only: bool = True) -> tuple[np.ndarray, list[dict]]:
    """Square crops (M, size, size, 3) around single objects (from the segmentation) and their objects' dicts.

    With `free_only`, objects in or on another, held, or holding others are skipped, so a crop shows one object.
    """
    import cv2

    crops, objs = [], []
    for image, mask, ann in zip(images, seg, annotations):
        busy = {ann["gripper"].get("holding")} | {o.get("in") for o in ann["objects"]} | \
               {o.get("on") for o in ann["objects"]}
        for obj in ann["objects"]:
            if free_only and (obj["id"] in busy or obj.get("in") is not None or obj.get("on") is not None):
                continue
            ys, xs = np.nonzero(mask == obj["id"])
            if len(ys) < 4:
                continue
            cy, cx = (ys.min() + ys.max()) // 2, (xs.min() + xs.max()) // 2
            half = max(ys.max() - ys.min(), xs.max() - xs.min()) // 2 + margin
            y0, x0 = max(cy - half, 0), max(cx - half, 0)
            crop = image[y0: cy + half + 1, x0: cx + half + 1]
            crops.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
            objs.append(obj)
    return (np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8)), objs
