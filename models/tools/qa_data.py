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
#: the questions the agent asks to check a manipulation step (its `--verify vqa`), per task; their answers follow
#: the task's own success test, so the VQA tool learns the verdict the simulator would give.
CHECK_QUESTIONS = {
    "place": "is {obj} in {bowl}?", "put_all": "are all the {color} blocks in {bowl}?",
    "stack": "is {obj} on {base}?", "pick": "is the gripper holding {obj}?",
    "push": "is {obj} on the {side} side of the table?", "push_next": "is {obj} next to {base}?",
    "reach": "is the gripper touching {obj}?",
}
#: question types of the step checks without a QA_TYPES counterpart ("in" and "holding" already are checks)
CHECK_TYPES = ("on", "touching", "side", "next_to", "all_in")
MIN_GAP = 0.03
#: how often a scene whose gripper is empty gets a holding question (see `_qa_holding`)
EMPTY_HAND_SHARE = 0.5
MIN_VISIBLE_PIXELS = 5
#: the longest question in words and marks (the shipped VLM's `max_prompt_tokens`); longer ones are not asked
MAX_QUESTION_TOKENS = 16
_TOKEN = re.compile(r"[a-z0-9]+|[^\sa-z0-9]")   # as the word-level tokenizer splits (vla.models.llm.words)
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
    """As many "no" as "yes" questions. A "no" pairs a colour and a shape the scene shows, but not together (a red
    cylinder beside a red block and a blue cylinder), while the scene has such pairs: then every asked colour and
    shape is one the scene shows, so neither the words alone nor the colours a scene set uses tell the answer."""
    present = {(o["color"], o["shape"]) for o in ann["objects"]}
    out = [(f"is there a {c} {s}?", "yes", [_ids(ann, color=c, shape=s)]) for c, s in sorted(present)]
    colors, shapes = sorted({c for c, _ in present}), sorted({s for _, s in present})
    near = [(c, s) for c in colors for s in shapes if (c, s) not in present]
    far = [(c, s) for c in COLORS for s in SHAPES if (c, s) not in present and (c, s) not in near]
    rng.shuffle(near)
    rng.shuffle(far)
    out += [(f"is there a {c} {s}?", "no", [[]]) for c, s in (near + far)[:len(present)]]
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


def _balanced(out: list, rng, at_least_one: bool = True) -> list:
    """Every "yes" question and as many "no" ones (at least one unless `at_least_one` is False), drawn at random."""
    yes = [q for q in out if q[1] == "yes"]
    no = [q for q in out if q[1] == "no"]
    rng.shuffle(no)
    return yes + no[:max(int(at_least_one), len(yes))]


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
    # only scenes with something in a bowl ask: one "no" from each of the others made "no" 78 % of the answers
    return _balanced(out, rng, at_least_one=False)


def _qa_holding(ann, rng):
    """A scene whose gripper holds something asks what it holds, whether it holds that object (yes) and whether
    it holds another (no); one whose gripper is empty asks, half the time, one of "what is the gripper holding?"
    (nothing) or whether it holds an object (no). With a third of the scenes holding something (the scene sets'
    share) neither answer of either form is then the rule: "nothing" and "no" had been 85 % of the answers."""
    objs, held = ann["objects"], ann["gripper"].get("holding")
    graspable = [o for o in objs if o["shape"] != "bowl" and refer(o, objs)]
    if held is None:
        if rng.random() >= EMPTY_HAND_SHARE:
            return []
        if graspable and rng.random() < 0.5:
            o = rng.choice(graspable)
            return [(f"is the gripper holding the {refer(o, objs)}?", "no", [[o["id"]]])]
        return [("what is the gripper holding?", "nothing", [[]])]
    ref = refer(_by_id(ann)[held], objs)
    if ref is None:
        return []
    out = [("what is the gripper holding?", ref, [[held]]), (f"is the gripper holding the {ref}?", "yes", [[held]])]
    others = [o for o in graspable if o["id"] != held]
    if others:
        o = rng.choice(others)
        out.append((f"is the gripper holding the {refer(o, objs)}?", "no", [[o["id"]]]))
    return out


def _height(obj: dict) -> float:
    from vla.envs.vocab import height

    return height(obj["shape"], obj.get("size"))


def _on_table(obj: dict, ann: dict) -> bool:
    """Resting on the table itself (the push task's test), not held."""
    return obj["position"][2] < _height(obj) / 2 + 0.01 and obj["id"] != ann["gripper"].get("holding")


def _footprint(obj: dict) -> float:
    from vla.envs.vocab import footprint

    return footprint(obj["shape"], obj.get("size"))


def side_of_bowl(obj: dict, twins: list[dict], objects: list[dict]) -> str:
    """" left of the blue bowl" when a bowl separates `obj` from all its `twins` (left is -y), else ""."""
    y = obj["position"][1]
    for bowl in (o for o in objects if o["shape"] == "bowl"):
        by = bowl["position"][1]
        if all((t["position"][1] - by) * (y - by) < 0 for t in twins):
            return f" {'left' if y < by else 'right'} of the {bowl['color']} bowl"
    return ""


def _by_side(obj: dict, objects: list[dict]) -> str | None:
    """"the green block left of the yellow bowl" for one of twins, as the task instructions name it, or None."""
    twins = [o for o in objects if o is not obj and _matches(o, describe(obj))]
    where = side_of_bowl(obj, twins, objects)
    return f"the {describe(obj, size=False)}{where}" if where else None


def name(obj: dict, objects: list[dict]) -> str | None:
    """"the " + the shortest description that picks out `obj` alone, or its side of a bowl; None if neither does."""
    ref = refer(obj, objects)
    return "the " + ref if ref else _by_side(obj, objects)


def _any_ref(obj: dict, objects: list[dict], rng) -> str | None:
    """As `name`, but any of the unique descriptions at random (the agent may name an object by its colour even
    where the shape alone would do)."""
    options = [describe(obj, size=s, color=c) for c in (False, True) for s in (False, True)]
    unique = [d for d in dict.fromkeys(options) if sum(_matches(o, d) for o in objects) == 1]
    return "the " + rng.choice(unique) if unique else _by_side(obj, objects)


def _movable_refs(ann, rng) -> list[tuple[dict, str]]:
    objs = ann["objects"]
    return [(o, ref) for o in objs if o["shape"] != "bowl" and (ref := _any_ref(o, objs, rng))]


def _qa_on(ann, rng):
    movable = _movable_refs(ann, rng)
    return _balanced([(CHECK_QUESTIONS["stack"].format(obj=ra, base=rb), "yes" if a.get("on") == b["id"] else "no",
                       [[a["id"]], [b["id"]]]) for a, ra in movable for b, rb in movable if a is not b], rng)


def _qa_touching(ann, rng):
    """The reach task's test: the fingertips' centre within 2 cm of the object's top centre sideways, and from
    0.5 cm below to 3 cm above its top."""
    ee = ann["gripper"]["position"]
    out = []
    for o, ref in _movable_refs(ann, rng):
        x, y, z = o["position"]
        touch = ((ee[0] - x) ** 2 + (ee[1] - y) ** 2) ** 0.5 < 0.02 and -0.005 < ee[2] - z - _height(o) / 2 < 0.03
        out.append((CHECK_QUESTIONS["reach"].format(obj=ref), "yes" if touch else "no", [[o["id"]]]))
    return _balanced(out, rng)


def _qa_side(ann, rng):
    """The push task's test: on the table, the centre past `SIDE_LINE` on the named side."""
    from vla.envs import vocab
    from vla.envs.tasks.push import SIDE_LINE

    out = []
    for o, ref in _movable_refs(ann, rng):
        side = rng.choice(list(vocab.SIDES))
        there = _on_table(o, ann) and vocab.SIDES[side][1] * o["position"][1] > SIDE_LINE
        out.append((CHECK_QUESTIONS["push"].format(obj=ref, side=side), "yes" if there else "no", [[o["id"]]]))
    return _balanced(out, rng)


def _qa_next_to(ann, rng):
    """The push task's "next to" test: footprints at most `NEXT_GAP` apart, the pushed object on the table."""
    from vla.envs.tasks.push import NEXT_GAP

    objs, out = ann["objects"], []
    for a, ra in _movable_refs(ann, rng):
        on_table = _on_table(a, ann)
        for b in objs:
            rb = _any_ref(b, objs, rng)
            if b is a or not rb:
                continue
            gap = ((a["position"][0] - b["position"][0]) ** 2 + (a["position"][1] - b["position"][1]) ** 2) ** 0.5
            near = on_table and gap < _footprint(a) + _footprint(b) + NEXT_GAP
            out.append((CHECK_QUESTIONS["push_next"].format(obj=ra, base=rb), "yes" if near else "no",
                        [[a["id"]], [b["id"]]]))
    return _balanced(out, rng)


def _qa_all_in(ann, rng):
    """The put_all test: every block of the colour in the bowl, none held."""
    objs, out = ann["objects"], []
    held = ann["gripper"].get("holding")
    for color in sorted({o["color"] for o in objs if o["shape"] == "block"}):
        blocks = [o for o in objs if o["shape"] == "block" and o["color"] == color]
        for bowl in (o for o in objs if o["shape"] == "bowl"):
            rb = _any_ref(bowl, objs, rng)
            if rb:
                done = all(o.get("in") == bowl["id"] and o["id"] != held for o in blocks)
                out.append((CHECK_QUESTIONS["put_all"].format(color=color, bowl=rb), "yes" if done else "no",
                            [[o["id"] for o in blocks], [bowl["id"]]]))
    return _balanced(out, rng)


_GENERATORS = {"colour": _qa_colour, "count": _qa_count, "existence": _qa_existence, "spatial": _qa_spatial,
               "in": _qa_in, "holding": _qa_holding, "on": _qa_on, "touching": _qa_touching, "side": _qa_side,
               "next_to": _qa_next_to, "all_in": _qa_all_in}


def questions(ann: dict, rng: random.Random | None = None, types=QA_TYPES,
              visible: set[int] | None = None) -> list[dict]:
    """Templated QA pairs `{"type", "question", "answer", "refs"}` for the scene, grouped by type in QA_TYPES
    order. `refs` grounds the question: per object phrase in the order the question names them, the ids of the
    objects it refers to ("how many blue objects" -> every blue one; "is there a red bowl?" -> none when absent).
    Questions of more than MAX_QUESTION_TOKENS words and marks are left out. With `visible` (see `visible_ids`),
    only the questions whose referents all show."""
    rng = rng or random.Random(0)
    out = [{"type": t, "question": q, "answer": a, "refs": refs} for t in types
           for q, a, refs in _GENERATORS[t](ann, rng) if question_tokens(q) <= MAX_QUESTION_TOKENS]
    if visible is None:
        return out
    return [q for q in out if all(i in visible for group in q["refs"] for i in group)]


def question_tokens(text: str) -> int:
    return len(_TOKEN.findall(text.lower()))


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
