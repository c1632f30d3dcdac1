"""Captions and templated question-answer pairs from a scene annotation (pure Python, no rendering).

The annotation is `env.unwrapped.scene_annotation()` (docs/INTERFACES.md): objects with id, colour, shape,
size, position, `in` / `on`, and the gripper with the id it holds. "Left" is -y as seen from the front
camera. Every generated question refers to objects unambiguously (a reference that matches two objects is
never used), and spatial questions skip pairs closer than `MIN_GAP` metres sideways.

Visibility: the annotation lists every object, including one the arm or a bowl's rim hides from the camera. A
question about an object that shows fewer than `MIN_VISIBLE_PIXELS` pixels has no answer in the image, and a caption
cannot be expected to name it (as CLEVR re-renders scenes whose objects are too occluded). `visible_ids` finds the
objects that show; `questions(..., visible=)` keeps only the questions whose named objects all show (the same
random draws, so the kept ones are a subset of the full set), and `seen_only` is the annotation of what shows.
"""
from __future__ import annotations

import random
import re
from collections import Counter

COLORS = ("red", "green", "blue", "yellow", "orange", "purple", "pink", "cyan", "brown", "gray", "white", "black")
SHAPES = ("block", "cylinder", "bowl")
QA_TYPES = ("colour", "count", "existence", "spatial", "in", "holding")
MIN_GAP = 0.03
MIN_VISIBLE_PIXELS = 5
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def describe(obj: dict, size: bool = True, color: bool = True) -> str:
    """'small red block' / 'green bowl' (size only for objects that have one)."""
    words = [obj["size"] if size and obj.get("size") else "", obj["color"] if color else "", obj["shape"]]
    return " ".join(w for w in words if w)


def _matches(obj: dict, desc: str) -> bool:
    words = set(desc.split())
    return obj["shape"] in words and words <= {obj["shape"], obj["color"], obj.get("size") or obj["shape"]}


def refer(obj: dict, objects: list[dict], color: bool = True) -> str | None:
    """The shortest description that picks out `obj` alone among `objects`, or None if there is none."""
    options = [describe(obj, size=False, color=False), describe(obj, size=True, color=False)]
    if color:
        options += [describe(obj, size=False), describe(obj)]
    for desc in dict.fromkeys(options):
        if sum(_matches(o, desc) for o in objects) == 1:
            return desc
    return None


def visible_ids(seg, ann: dict, min_pixels: int = MIN_VISIBLE_PIXELS) -> set[int]:
    """Ids of the objects of `ann` that show at least `min_pixels` pixels in `seg`, an (S, S) array of object ids
    (the segmentation rendered with the image)."""
    import numpy as np

    ids = np.asarray(seg).ravel()
    counts = np.bincount(ids[ids >= 0].astype(np.int64))
    return {o["id"] for o in ann["objects"] if o["id"] < len(counts) and counts[o["id"]] >= min_pixels}


def seen_only(ann: dict, visible: set[int]) -> dict:
    """The annotation without the objects not in `visible` (and without containment, stacking or holding that
    names them): what the camera shows, for captions."""
    keep = lambda i: i if i in visible else None  # noqa: E731
    objects = [dict(o, **{k: keep(o.get(k)) for k in ("in", "on")}) for o in ann["objects"] if o["id"] in visible]
    return dict(ann, objects=objects, gripper=dict(ann["gripper"], holding=keep(ann["gripper"].get("holding"))))


def _by_id(ann: dict) -> dict:
    return {o["id"]: o for o in ann["objects"]}


def _a(desc: str) -> str:
    return "a " + desc


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _object_phrases(ann: dict) -> list[str]:
    """One phrase per object not resting in/on another, left to right, with what it holds stacked on it."""
    objs, held = _by_id(ann), ann["gripper"].get("holding")
    supported = {o["id"] for o in ann["objects"] if o.get("in") is not None or o.get("on") is not None}
    roots = sorted((o for o in ann["objects"] if o["id"] not in supported and o["id"] != held),
                   key=lambda o: o["position"][1])
    phrases = []
    for root in roots:
        inside = [o for o in ann["objects"] if o.get("in") == root["id"] and o["id"] != held]
        on_top = [o for o in ann["objects"] if o.get("on") == root["id"] and o["id"] != held]
        text = _a(describe(root))
        if on_top:
            text = _join([_a(describe(o)) for o in on_top]) + " on " + text
        if inside:
            text = _join([_a(describe(o)) for o in inside]) + " in " + text
        phrases.append(text)
    return phrases


def caption(ann: dict) -> str:
    """The canonical caption: objects left to right with containment and stacking, then what is held."""
    text = _join(_object_phrases(ann)) if _object_phrases(ann) else "an empty table"
    held = ann["gripper"].get("holding")
    if held is not None:
        text += ", and the gripper holds " + _a(describe(_by_id(ann)[held]))
    return text


def captions(ann: dict, rng: random.Random | None = None) -> list[str]:
    """Several phrasings of the same scene (for contrastive training): canonical, shuffled, relational."""
    rng = rng or random.Random(0)
    phrases = _object_phrases(ann)
    out = [caption(ann), "a robot scene with " + caption(ann)]
    if phrases:
        shuffled = phrases[:]
        rng.shuffle(shuffled)
        out.append("on the table: " + _join(shuffled))
    objs = sorted(ann["objects"], key=lambda o: o["position"][1])
    for left, right in zip(objs, objs[1:]):
        if right["position"][1] - left["position"][1] > MIN_GAP:
            out.append(f"the {describe(left)} is left of the {describe(right)}")
            break
    return out


def _ids(ann: dict, **attrs) -> list[int]:
    return [o["id"] for o in ann["objects"] if all(o[k] == v for k, v in attrs.items())]


def _qa_colour(ann, rng):
    out = []
    for o in ann["objects"]:
        ref = refer(o, ann["objects"], color=False)
        if ref:
            out.append((rng.choice(["what colour is the {}?", "what color is the {}?"]).format(ref), o["color"],
                        [[o["id"]]]))
    return out


def _qa_count(ann, rng):
    shapes = Counter(o["shape"] for o in ann["objects"])
    colors = Counter(o["color"] for o in ann["objects"])
    out = [(f"how many {s}s are there?", str(shapes.get(s, 0)), [_ids(ann, shape=s)]) for s in SHAPES]
    present = sorted(colors)
    for c in rng.sample(present, min(2, len(present))):
        out.append((f"how many {c} objects are there?", str(colors[c]), [_ids(ann, color=c)]))
    return out


def _qa_existence(ann, rng):
    present = {(o["color"], o["shape"]) for o in ann["objects"]}
    out = [(f"is there a {c} {s}?", "yes", [_ids(ann, color=c, shape=s)]) for c, s in sorted(present)]
    absent = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present]
    out += [(f"is there a {c} {s}?", "no", [[]]) for c, s in rng.sample(absent, min(len(present), len(absent)))]
    return out


def _qa_spatial(ann, rng):
    objs, out = ann["objects"], []
    free = [o for o in objs if o["id"] != ann["gripper"].get("holding")]
    for a in free:
        for b in free:
            gap = a["position"][1] - b["position"][1]
            ra, rb = refer(a, objs), refer(b, objs)
            if a is b or not ra or not rb or abs(gap) < MIN_GAP:
                continue
            word = rng.choice(["left", "right"])
            truth = (gap < 0) == (word == "left")
            out.append((f"is the {ra} {word} of the {rb}?", "yes" if truth else "no", [[a["id"]], [b["id"]]]))
            if rng.random() < 0.5:
                out.append((f"which side of the {rb} is the {ra} on?", "left" if gap < 0 else "right",
                            [[b["id"]], [a["id"]]]))
    rng.shuffle(out)
    return out[:4]


def _qa_in(ann, rng):
    objs, out = ann["objects"], []
    bowls = [o for o in objs if o["shape"] == "bowl"]
    for a in objs:
        ra = refer(a, objs)
        if a["shape"] == "bowl" or not ra:
            continue
        for b in bowls:
            rb = refer(b, objs)
            if rb:
                out.append((f"is the {ra} in the {rb}?", "yes" if a.get("in") == b["id"] else "no",
                            [[a["id"]], [b["id"]]]))
    yes = [q for q in out if q[1] == "yes"]
    no = [q for q in out if q[1] == "no"]
    rng.shuffle(no)
    return yes + no[:max(1, len(yes))]


def _qa_holding(ann, rng):
    objs, held = ann["objects"], ann["gripper"].get("holding")
    ref = refer(_by_id(ann)[held], objs) if held is not None else None
    if held is not None and ref is None:
        return []
    out = [("what is the gripper holding?", ref if ref else "nothing", [[held] if held is not None else []])]
    graspable = [o for o in objs if o["shape"] != "bowl" and refer(o, objs)]
    if graspable:
        o = rng.choice(graspable)
        out.append((f"is the gripper holding the {refer(o, objs)}?", "yes" if o["id"] == held else "no",
                    [[o["id"]]]))
    return out


_GENERATORS = {"colour": _qa_colour, "count": _qa_count, "existence": _qa_existence, "spatial": _qa_spatial,
               "in": _qa_in, "holding": _qa_holding}


def questions(ann: dict, rng: random.Random | None = None, types=QA_TYPES,
              visible: set[int] | None = None) -> list[dict]:
    """Templated QA pairs `{"type", "question", "answer", "refs"}` for the scene, grouped by type in QA_TYPES
    order. `refs` grounds the question: per object phrase in the order the question names them, the ids of the
    objects it refers to ("how many blue objects" -> every blue one; "is there a red bowl?" -> none when absent).
    With `visible` (see `visible_ids`), only the questions whose referents all show."""
    rng = rng or random.Random(0)
    out = [{"type": t, "question": q, "answer": a, "refs": refs} for t in types
           for q, a, refs in _GENERATORS[t](ann, rng)]
    if visible is None:
        return out
    return [q for q in out if all(i in visible for group in q["refs"] for i in group)]


_MENTION = re.compile(r"\b(?:(small|large) )?(" + "|".join(COLORS) + r") (" + "|".join(SHAPES) + r")\b")


def mentioned(text: str) -> Counter:
    """Multiset of (colour, shape) pairs named in a caption."""
    return Counter((m.group(2), m.group(3)) for m in _MENTION.finditer(text.lower()))


def present(ann: dict) -> Counter:
    """Multiset of (colour, shape) pairs in the scene."""
    return Counter((o["color"], o["shape"]) for o in ann["objects"])


def attribute_match(text: str, ann: dict) -> tuple[int, int, int]:
    """(true positives, mentioned, present) of coloured objects in a caption, for precision and recall."""
    said, there = mentioned(text), present(ann)
    return sum((said & there).values()), sum(said.values()), sum(there.values())
