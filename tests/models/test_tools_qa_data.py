"""Caption and QA generation on hand-built scene annotations (no rendering)."""
import random
import re

from vla.models.tools import qa_data


def _obj(i, color, shape, y, size=None, inside=None, on=None):
    return {"id": i, "color": color, "shape": shape, "size": size, "position": [0.5, y, 0.02], "in": inside,
            "on": on}


def _scene(holding=None):
    objects = [_obj(1, "red", "block", -0.10, "small", inside=3), _obj(2, "blue", "cylinder", 0.12),
               _obj(3, "green", "bowl", -0.10), _obj(4, "yellow", "bowl", 0.02), _obj(5, "red", "block", 0.2, "large")]
    return {"objects": objects, "gripper": {"position": [0.5, 0.0, 0.3], "opening": 0.04, "holding": holding}}


def _qa(ann, kind):
    return {q["question"]: q["answer"] for q in qa_data.questions(ann, random.Random(1), types=(kind,))}


def test_canonical_caption_orders_left_to_right_with_containment():
    assert qa_data.caption(_scene()) == ("a small red block in a green bowl, a yellow bowl, a blue cylinder "
                                         "and a large red block")


def test_caption_names_what_the_gripper_holds():
    ann = _scene(holding=2)
    text = qa_data.caption(ann)
    assert text.endswith("and the gripper holds a blue cylinder")
    assert text.count("blue cylinder") == 1


def test_refer_is_unambiguous_or_none():
    objs = _scene()["objects"]
    assert qa_data.refer(objs[1], objs) == "cylinder"
    assert qa_data.refer(objs[0], objs) == "small block"
    assert qa_data.refer(objs[2], objs) == "green bowl"
    assert qa_data.refer(objs[2], objs, color=False) is None  # two bowls, colour not allowed


def test_colour_questions_only_for_unique_references():
    qa = _qa(_scene(), "colour")
    assert set(qa.values()) == {"red", "blue"}
    assert all("bowl" not in q for q in qa)  # "the bowl" is ambiguous with two bowls


def test_counts_and_existence_are_correct_and_balanced():
    counts = _qa(_scene(), "count")
    assert counts["how many blocks are there?"] == "2"
    assert counts["how many bowls are there?"] == "2"
    assert counts["how many cylinders are there?"] == "1"
    exist = qa_data.questions(_scene(), random.Random(0), types=("existence",))
    answers = [q["answer"] for q in exist]
    assert answers.count("yes") == answers.count("no") == 4
    for q in exist:
        words = q["question"].split()
        color, shape = words[3], words[4].rstrip("?")
        truth = any(o["color"] == color and o["shape"] == shape for o in _scene()["objects"])
        assert q["answer"] == ("yes" if truth else "no")


def test_spatial_and_containment_answers_follow_positions():
    for q, a in _qa(_scene(), "spatial").items():
        if "cylinder" in q and "yellow bowl" in q and q.startswith("is the cylinder"):
            assert a == ("yes" if " right of" in q else "no")
    inside = _qa(_scene(), "in")
    assert inside["is the small block in the green bowl?"] == "yes"
    assert "no" in inside.values()


def test_holding_questions_balance_what_is_held_against_an_empty_gripper():
    held = _qa(_scene(holding=2), "holding")
    assert held["what is the gripper holding?"] == "cylinder" and held["is the gripper holding the cylinder?"] == "yes"
    assert len(held) == 3 and sorted(held.values()) == ["cylinder", "no", "yes"]     # and one other object: no
    empty = [qa_data.questions(_scene(), random.Random(seed), types=("holding",)) for seed in range(400)]
    asked = [qs for qs in empty if qs]
    assert all(len(qs) == 1 for qs in asked) and 0.4 < len(asked) / len(empty) < 0.6
    forms = {q["question"].startswith("what"): q["answer"] for qs in asked for q in qs}
    assert forms == {True: "nothing", False: "no"}                       # both forms, the empty gripper's answers


def test_existence_negatives_pair_the_scenes_own_colours_and_shapes():
    ann = _scene()
    colours, shapes = {o["color"] for o in ann["objects"]}, {o["shape"] for o in ann["objects"]}
    for seed in range(20):
        for q in qa_data.questions(ann, random.Random(seed), types=("existence",)):
            color, shape = q["question"].split()[3], q["question"].split()[4].rstrip("?")
            if q["answer"] == "no":                  # 4 of the 8 absent pairs of these colours and shapes
                assert color in colours and shape in shapes


def test_containment_is_asked_only_where_something_is_in_a_bowl():
    empty = _scene()
    empty["objects"][0]["in"] = None
    assert qa_data.questions(empty, random.Random(0), types=("in",)) == []
    answers = [q["answer"] for q in qa_data.questions(_scene(), random.Random(0), types=("in",))]
    assert answers.count("yes") == answers.count("no") == 1


def test_every_type_generated_and_deterministic():
    a = qa_data.questions(_scene(holding=2), random.Random(3))
    b = qa_data.questions(_scene(holding=2), random.Random(3))
    assert a == b
    assert {q["type"] for q in a} == set(qa_data.QA_TYPES)


def test_caption_attribute_matching():
    ann = _scene()
    tp, said, there = qa_data.attribute_match(qa_data.caption(ann), ann)
    assert tp == said == there == 5
    tp, said, there = qa_data.attribute_match("a purple block and a red block", ann)
    assert (tp, said, there) == (1, 2, 5)
    assert len(qa_data.captions(ann)) >= 3


def test_refs_ground_every_question_in_the_order_it_names_the_objects():
    ann = _scene(holding=2)
    by_id = {o["id"]: o for o in ann["objects"]}
    qas = qa_data.questions(ann, random.Random(4))
    assert {q["type"] for q in qas} == set(qa_data.QA_TYPES)
    for q in qas:
        text, refs = q["question"], q["refs"]
        if q["type"] in ("spatial", "in"):            # two phrases, each one object, named in this order
            first, second = (by_id[g[0]] for g in refs)
            assert [len(g) for g in refs] == [1, 1]
            a, b = qa_data.refer(first, ann["objects"]), qa_data.refer(second, ann["objects"])
            assert f"the {a} " in text and text.index(f"the {a} ") < text.rindex(f"the {b}")
        elif q["question"] == "how many blocks are there?":
            assert refs == [[1, 5]]                   # every block
        elif q["type"] == "existence":
            assert refs == ([[]] if q["answer"] == "no" else
                            [[o["id"] for o in ann["objects"] if f"a {o['color']} {o['shape']}?" in text]])
        elif q["question"] == "what is the gripper holding?":
            assert refs == [[2]]
        elif q["type"] in ("colour", "holding"):
            assert len(refs) == 1 and len(refs[0]) == 1 and qa_data.refer(by_id[refs[0][0]], ann["objects"]) in text
    nothing = [q for seed in range(20) for q in qa_data.questions(_scene(), random.Random(seed), types=("holding",))
               if q["answer"] == "nothing"]
    assert nothing and all(q["refs"] == [[]] for q in nothing)


def _segmentation(pixels: dict[int, int], size: int = 16):
    """A (size, size) id map where object i covers pixels[i] pixels (row-major), the rest background (0)."""
    import numpy as np

    flat = np.zeros(size * size, np.uint8)
    at = 0
    for i, n in pixels.items():
        flat[at:at + n] = i
        at += n
    return flat.reshape(size, size)


def test_visible_ids_count_pixels_of_the_segmentation():
    seg = _segmentation({1: 4, 2: 30, 3: 5, 4: 0, 5: 12})
    assert qa_data.visible_ids(seg, _scene()) == {2, 3, 5}            # 4 pixels < MIN_VISIBLE_PIXELS = 5
    assert qa_data.visible_ids(seg, _scene(), min_pixels=1) == {1, 2, 3, 5}
    assert qa_data.visible_ids(_segmentation({}), _scene()) == set()


def test_questions_about_hidden_objects_are_left_out_and_the_rest_kept_unchanged():
    ann = _scene(holding=2)
    full = qa_data.questions(ann, random.Random(4))
    shown = qa_data.questions(ann, random.Random(4), visible={1, 2, 3, 4})   # the large red block (5) is hidden
    named = lambda q: {i for g in q["refs"] for i in g}  # noqa: E731
    assert shown == [q for q in full if 5 not in named(q)]                     # a subset, same draws and order
    assert len(shown) < len(full)
    assert "how many blocks are there?" not in {q["question"] for q in shown}  # it would count the hidden one
    assert any(q["answer"] == "no" and q["type"] == "existence" for q in shown)  # absent objects are still asked


def test_seen_only_drops_hidden_objects_and_what_names_them():
    ann = _scene(holding=1)
    seen = qa_data.seen_only(ann, {1, 2, 4, 5})                  # the green bowl (3) holding the red block is hidden
    assert [o["id"] for o in seen["objects"]] == [1, 2, 4, 5]
    assert seen["objects"][0]["in"] is None and seen["gripper"]["holding"] == 1
    assert qa_data.seen_only(ann, {2, 3})["gripper"]["holding"] is None
    assert qa_data.caption(qa_data.seen_only(_scene(), {2, 4})) == "a yellow bowl and a blue cylinder"
    assert ann["objects"][0]["in"] == 3                          # the input is not changed


def _checks(ann, kind, seeds=range(8)) -> dict:
    """{(ids named, in order): answer} over the questions of `kind` drawn with several seeds."""
    return {tuple(g[0] for g in q["refs"]): q["answer"] for seed in seeds
            for q in qa_data.questions(ann, random.Random(seed), types=(kind,))}


def test_step_checks_on_constructed_scenes():
    ann = _scene()          # ids: 1 small red block in the green bowl 3, 2 blue cylinder, 4 yellow bowl, 5 large red
    top = _obj(6, "blue", "block", 0.2, "small", on=5)
    top["position"] = [0.5, 0.2, 0.065]
    ann["objects"].append(top)
    on = _checks(ann, "on")
    assert on[(6, 5)] == "yes" and {a for k, a in on.items() if k != (6, 5)} == {"no"}
    ann["gripper"]["position"] = [0.5, 0.2, 0.065 + 0.02 + 0.01]          # 1 cm above the small block's top
    touching = _checks(ann, "touching")
    assert touching[(6,)] == "yes" and {a for k, a in touching.items() if k != (6,)} == {"no"}
    ann["gripper"]["position"] = [0.5, 0.2, 0.065 + 0.02 + 0.05]          # 5 cm above: not touching
    assert set(_checks(ann, "touching").values()) == {"no"}


def test_step_checks_side_next_to_and_all_in():
    ann = _scene()
    side = {q["question"]: q["answer"] for seed in range(8)
            for q in qa_data.questions(ann, random.Random(seed), types=("side",))}
    assert side["is the large block on the right side of the table?"] == "yes"   # y 0.20 is past the 0.18 line
    assert {a for q, a in side.items() if "left side" in q or "cylinder" in q} == {"no"}   # y 0.12 is not
    near = _checks(ann, "next_to")
    # cylinder (r 2 cm) and large block (3.5 cm) 8 cm apart, 3.5 cm gap allowed: next to; the block and the
    # yellow bowl 18 cm apart are not; the small block sits in the green bowl
    assert near[(2, 5)] == near[(5, 2)] == near[(2, 4)] == near[(1, 3)] == "yes"
    assert near[(5, 4)] == near[(1, 5)] == "no"
    all_in = _checks(ann, "all_in")
    assert set(all_in.values()) == {"no"}            # one red block is in the green bowl, the other is not
    ann["objects"][4]["in"] = 3
    assert _checks(ann, "all_in")[(1, 3)] == "yes" and _checks(ann, "all_in")[(1, 4)] == "no"


def test_step_check_types_are_generated_and_the_agent_asks_the_same_words():
    qas = qa_data.questions(_scene(), random.Random(0), types=qa_data.CHECK_TYPES)
    assert {q["type"] for q in qas} == set(qa_data.CHECK_TYPES)
    obj = r"the (?:(?:small|large) )?(?:[a-z]+ )?(?:block|cylinder|bowl)\b"
    shapes = {t: {re.sub(obj, "X", q["question"]) for q in qas if q["type"] == t} for t in qa_data.CHECK_TYPES}
    asked = {k: re.sub(r"\{(obj|bowl|base)\}", "X", v) for k, v in qa_data.CHECK_QUESTIONS.items()}
    assert shapes["on"] == {asked["stack"]} and shapes["next_to"] == {asked["push_next"]}
    assert shapes["touching"] == {asked["reach"]}
    assert {s.replace("left", "{side}").replace("right", "{side}") for s in shapes["side"]} == {asked["push"]}
    assert {s.replace("red", "{color}") for s in shapes["all_in"]} == {asked["put_all"]}


def test_step_checks_name_one_of_twins_by_its_side_of_a_bowl_and_stay_short():
    ann = _scene()                                                 # the green bowl at y -0.10
    ann["objects"] += [_obj(6, "blue", "cylinder", -0.2)]         # twin of the blue cylinder at 0.12
    qas = [q for seed in range(8)
           for q in qa_data.questions(ann, random.Random(seed), types=("touching", "side", "on"))]
    touching = {q["refs"][0][0]: q["question"] for q in qas if q["type"] == "touching"}
    assert touching[2] == "is the gripper touching the blue cylinder right of the green bowl?"
    assert touching[6] == "is the gripper touching the blue cylinder left of the green bowl?"
    assert all(qa_data.question_tokens(q["question"]) <= qa_data.MAX_QUESTION_TOKENS for q in qas)
    long = "is the blue cylinder right of the green bowl on the blue cylinder left of the green bowl?"
    assert qa_data.question_tokens(long) > qa_data.MAX_QUESTION_TOKENS
    assert long not in {q["question"] for q in qas}
