"""The grammar planner on a hand-written scene annotation: phrasings, compounds, references and refusals."""
from __future__ import annotations

import pytest

from vla.agent.planner import GrammarPlanner, Memory, get_planner, parse_command

pytestmark = pytest.mark.timeout(60)


def _obj(oid, color, shape, size=None, y=0.0):
    return {"id": oid, "color": color, "shape": shape, "size": size, "position": [0.5, y, 0.02], "in": None,
            "on": None}


SCENE = {"objects": [
    _obj(1, "red", "block", "small", y=-0.10),
    _obj(2, "green", "bowl", y=0.10),
    _obj(3, "blue", "block", "large", y=0.0),
    _obj(4, "red", "block", "large", y=0.20),
    _obj(5, "yellow", "cylinder", y=-0.20),
    _obj(6, "orange", "bowl", y=-0.05),
]}


def plan(command, memory=None, scene=SCENE):
    return GrammarPlanner().plan(command, scene, memory or Memory())


def summary(command, **kw):
    p, _ = plan(command, **kw)
    return [(s.kind, s.task, s.instruction or s.query or s.reason) for s in p.steps]


@pytest.mark.parametrize("command", [
    "put the blue block in the green bowl",
    "Put the blue block into the green bowl.",
    "please place the blue cube inside the green dish",
    "could you drop the blue block in the green bowl?",
    "into the green bowl, put the blue block",
    "the blue block goes into the green bowl",
    "blue block in the green bowl",
    "pick up the blue block and put it in the green bowl",
    "grab the blue cube, then drop it into the green bowl",
    "move the big blue block to the green bowl",
    "Hey robot, can you put the blue block in the green bowl for me",
])
def test_place_paraphrases_give_one_canonical_step(command):
    assert summary(command) == [("manipulate", "place", "put the blue block in the green bowl")]


@pytest.mark.parametrize("command, task, instruction", [
    ("stack the blue block on the small red block", "stack", "stack the blue block on the small red block"),
    ("put the blue block on top of the little red cube", "stack", "stack the blue block on the small red block"),
    ("build a tower with the blue block above the large red block", "stack",
     "stack the blue block on the large red block"),
    ("push the yellow cylinder to the left", "push", "push the yellow cylinder to the left side of the table"),
    ("slide the yellow can rightwards", "push", "push the yellow cylinder to the right side of the table"),
    ("without lifting it, move the blue block to the right", "push",
     "push the blue block to the right side of the table"),
    ("move the blue block next to the yellow cylinder", "push", "push the blue block next to the yellow cylinder"),
    ("keep the blue block on the table and push it to the left", "push",
     "push the blue block to the left side of the table"),
    ("pick up the blue block near the green bowl", "pick", "pick up the blue block"),
    ("pick up the yellow cylinder", "pick", "pick up the yellow cylinder"),
    ("lift the big blue block", "pick", "pick up the blue block"),
    ("touch the green bowl", "reach", "touch the green bowl"),
    ("move the gripper to the yellow cylinder", "reach", "touch the yellow cylinder"),
    ("put all the red blocks in the orange bowl", "put_all", "put all the red blocks in the orange bowl"),
    ("every red cube goes into the orange dish", "put_all", "put all the red blocks in the orange bowl"),
])
def test_tasks_and_canonical_phrasing(command, task, instruction):
    assert summary(command) == [("manipulate", task, instruction)]


def test_canonical_instructions_round_trip_through_the_env_parser():
    from vla.envs import parse_instruction

    for command in ("stack the blue block on the small red block", "push the yellow cylinder to the left",
                    "put all the red blocks in the orange bowl", "touch the green bowl", "lift the yellow can",
                    "put the small red block in the green bowl"):
        p, _ = plan(command)
        step = p.steps[0]
        parsed = parse_instruction(step.instruction)
        assert parsed.task == step.task, command


def test_compound_commands_keep_order_and_expand_all():
    assert [s[1] for s in summary("push the yellow cylinder left, then put the blue block in the green bowl "
                                  "and then pick up the small red block")] == ["push", "place", "pick"]
    # "after" reverses the spoken order into the execution order.
    assert [s[1] for s in summary("put the blue block in the green bowl after you push the yellow cylinder "
                                  "to the right")] == ["push", "place"]
    # a colour-less "everything" expands into one place step per movable object.
    steps = summary("put everything in the orange bowl")
    assert [s[1] for s in steps] == ["place"] * 4
    assert all(s[2].endswith("in the orange bowl") for s in steps)
    # two objects sharing one verb and destination.
    assert [s[2] for s in summary("put the yellow cylinder and the blue block in the green bowl")] == [
        "put the yellow cylinder in the green bowl", "put the blue block in the green bowl"]


def test_mixed_command_routes_each_part_to_its_tool():
    steps = summary("put the blue block in the green bowl, then tell me what is left on the table")
    assert [(k, t) for k, t, _ in steps] == [("manipulate", "place"), ("describe", None)]
    p, _ = plan("where is the yellow cylinder? then imagine a tower of red blocks. is there a pink block?")
    assert [(s.kind, s.tool) for s in p.steps] == [("locate", "locate"), ("imagine", "generate"),
                                                   ("question", "vqa")]
    assert p.steps[0].query == "yellow cylinder" and p.steps[0].objects == {"object": 5}
    assert p.steps[1].query == "a tower of red blocks"
    assert [s.kind for s in plan("what did you just do?")[0].steps] == ["recall"]
    assert [s.kind for s in plan("and what changed?")[0].steps] == ["recall"]
    assert [s.kind for s in plan("describe the scene")[0].steps] == ["describe"]


def test_references_resolve_across_turns():
    memory = Memory()
    p, memory = plan("pick up the yellow cylinder", memory)
    assert p.steps[0].objects == {"object": 5}
    p, memory = plan("now put it in the green bowl", memory)
    assert p.steps[0].instruction == "put the yellow cylinder in the green bowl"
    p, memory = plan("what colour is it?", memory)
    assert p.steps[0].query == "what colour is the yellow cylinder?"
    p, memory = plan("put the blue block in the orange bowl, then put the other one in it", memory)
    # "the other one" is another block than the blue one; "it" as a destination is the bowl just used.
    assert [s.objects for s in p.steps] == [{"object": 3, "target": 6}, {"object": 1, "target": 6}]


def test_twins_get_a_size_or_a_side_in_the_canonical_phrase():
    assert summary("put the large red block in the green bowl")[0][2] == "put the large red block in the green bowl"
    scene = {"objects": [_obj(1, "red", "block", "small", y=-0.2), _obj(2, "blue", "bowl", y=0.0),
                         _obj(3, "red", "block", "small", y=0.2), _obj(4, "green", "bowl", y=0.1)]}
    assert summary("put the red block in the green bowl", scene=scene)[0][2] == \
        "put the red block left of the blue bowl in the green bowl"


@pytest.mark.parametrize("command, obj, target", [
    ("stack the red block on the green block right of the blue bowl", (None,), ("right of", "blue", "bowl")),
    ("stack the red block left of the blue bowl on the green block right of the blue bowl",
     ("left of", "blue", "bowl"), ("right of", "blue", "bowl")),
    ("put the red block left of the blue bowl on the green block", ("left of", "blue", "bowl"), (None,)),
    ("put the yellow block in the bowl left of the green block", (None,), ("left of", "green", "block")),
])
def test_a_relation_stays_with_the_phrase_it_follows(command, obj, target):
    from vla.agent.planner import parse_command

    (step,) = parse_command(command)
    for role, want in (("object", obj), ("target", target)):
        rel = step.refs[role].relation
        assert (rel if rel is None else (rel[0], rel[1].color, rel[1].shape)) == (want[0] if want == (None,) else want)


@pytest.mark.parametrize("command, reply", [
    ("put the purple block in the green bowl", "I don't see a purple block"),
    ("put the magenta block in the bowl", "I don't know the word 'magenta'"),
    ("where is the pink cylinder?", "I don't see a pink cylinder"),
    ("pick up the green bowl", "I can only move blocks and cylinders"),
    ("pick up all the red blocks", "one object at a time"),
    ("push the blue block left and right", "to the left and to the right at the same time"),
    ("put the blue block in the green bowl and in the orange bowl", "two places at once"),
    ("put the blue block in the green bowl and don't touch the blue block", "contradict each other"),
    ("put the blue block on itself", "on or in itself"),
    ("stack the yellow cylinder on the blue block", "only stack blocks on blocks"),
    ("put the blue block in the red block", "only put things into a bowl"),
    ("move the blue block", "Where should the blue block go?"),
    ("push the blue block", "to the left or to the right?"),
    ("put it in the green bowl", "not sure what 'it' refers to"),
    ("", "I didn't get a command"),
    ("   ?!  ", "I didn't get a command"),
    ("asdf qwer zxcv", "I don't understand 'asdf qwer zxcv'"),
    ("sing me a song", "I don't understand"),
])
def test_refusals_are_plain_sentences_and_nothing_moves(command, reply):
    p, _ = plan(command)
    assert p.refused
    assert all(s.kind == "refuse" for s in p.steps)  # a refused plan carries no step that could move
    assert reply in p.answer


def test_a_refused_command_does_not_change_what_it_means():
    memory = Memory()
    _, memory = plan("pick up the yellow cylinder", memory)
    p, after = plan("put it in the purple bowl", memory)
    assert p.refused and after.focus == [5]
    assert GrammarPlanner().plan("put it in the green bowl", SCENE, memory)[0].steps[0].objects["object"] == 5


def test_negation_alone_is_acknowledged_without_motion():
    p, _ = plan("don't move the blue block")
    assert [(s.kind, s.reason) for s in p.steps] == [("say", "OK, I won't move the blue block.")]
    assert not p.refused


def test_parse_command_needs_no_scene_and_is_deterministic():
    a = parse_command("grab the red cube then drop it into the green bowl")
    b = parse_command("grab the red cube then drop it into the green bowl")
    assert [(s.kind, s.task, s.refs["object"].color) for s in a] == [("manipulate", "place", "red")]
    assert [s.to_json() for s in a] == [s.to_json() for s in b]


def test_unknown_planner_name_is_a_clear_error():
    from vla import VLAError

    with pytest.raises(VLAError, match="unknown planner 'gramar'.*Did you mean 'grammar'"):
        get_planner("gramar")
