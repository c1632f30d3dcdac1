"""Task semantics: oracles succeed, success checks tell constructed positives from negatives, phrasings round-trip."""
import numpy as np
import pytest

from vla import VLAError
from vla.envs import CANONICAL, SPLITS, TASKS, make_env, parse_instruction, vocab
from vla.envs.splits import get_split
from vla.envs.tasks.base import Sampler


def _oracle_episode(env, seed, options=None):
    env.reset(seed=seed, options=options)
    for _ in range(env.max_steps):
        _, _, terminated, truncated, info = env.step(env.oracle_action())
        if terminated or truncated:
            return info
    return info


@pytest.mark.parametrize("task", sorted(TASKS))
def test_oracle_succeeds(task):
    env = make_env(task, image_size=0)
    for seed, split in [(0, "seen"), (1, "unseen_colors"), (2, "unseen_combos")]:
        env.split = SPLITS[split]
        info = _oracle_episode(env, seed)
        assert info["is_success"], (task, split, seed, info)


def _teleport(env, oid, xyz):
    p = env.world.p
    p.resetBasePositionAndOrientation(env.world.uids[oid - 1], xyz, [0, 0, 0, 1])


def _height(env, oid):
    return env.world.spec(oid).height()


def test_place_success_positive_and_negative():
    env = make_env("place", image_size=0)
    env.reset(seed=3)
    goal, task = env.goal, env.task
    bowl = env.world.position(goal.bowl.oid)
    inside = [bowl[0], bowl[1], vocab.BOWL_WALL + _height(env, goal.target.oid) / 2]
    _teleport(env, goal.target.oid, inside)
    assert task.success(env.world, goal)
    _teleport(env, goal.target.oid, [bowl[0] + 0.12, bowl[1], _height(env, goal.target.oid) / 2])
    assert not task.success(env.world, goal)


def test_stack_success_positive_and_negative():
    env = make_env("stack", image_size=0)
    env.reset(seed=4)
    goal, task = env.goal, env.task
    base = env.world.position(goal.base.oid)
    z = base[2] + (_height(env, goal.top.oid) + _height(env, goal.base.oid)) / 2
    _teleport(env, goal.top.oid, [base[0], base[1], z])
    assert task.success(env.world, goal)
    _teleport(env, goal.top.oid, [base[0], base[1], z + 0.05])  # floating above, not on
    assert not task.success(env.world, goal)


def _push_env(kind):
    env = make_env("push", image_size=0)
    for seed in range(20):
        env.reset(seed=seed)
        if (env.goal.landmark is None) == (kind == "side"):
            return env
    raise AssertionError(f"no {kind} push goal in 20 seeds")


def test_push_success_needs_the_named_side():
    env = _push_env("side")
    goal, task = env.goal, env.task
    sign = vocab.SIDES[goal.side][1]
    pos = env.world.position(goal.target.oid)
    _teleport(env, goal.target.oid, [pos[0], 0.25 * sign, pos[2]])
    assert task.success(env.world, goal)
    _teleport(env, goal.target.oid, [pos[0], -0.25 * sign, pos[2]])
    assert not task.success(env.world, goal)


def test_push_next_to_needs_the_landmark_close():
    env = _push_env("next")
    goal, task = env.goal, env.task
    assert "next to the" in env.instruction
    pos, other = env.world.position(goal.target.oid), env.world.position(goal.landmark.oid)
    assert not task.success(env.world, goal)
    gap = env.world.spec(goal.target.oid).footprint() + env.world.spec(goal.landmark.oid).footprint() + 0.01
    _teleport(env, goal.target.oid, [other[0], other[1] - gap * np.sign(other[1]), pos[2]])
    assert task.success(env.world, goal)


@pytest.mark.parametrize("kind", ["side", "next"])
def test_a_push_skill_goal_is_where_the_experts_plan_ends(kind):
    from vla.envs.tasks import push

    env = _push_env(kind)
    goal, world = env.goal, env.world
    oid = goal.target.oid
    landmark = None if goal.landmark is None else \
        (world.position(goal.landmark.oid), world.spec(goal.landmark.oid).footprint())
    expected = env.task.plan(world, goal)[-1].pos[:2]
    got = push.skill_goal(world.position(oid), world.spec(oid).footprint(), goal.side, landmark)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert abs(got[1] - world.position(oid)[1]) > 0.05        # beyond the object, in the push's direction


def test_pick_requires_a_grasp_and_reach_requires_contact_height():
    env = make_env("pick", image_size=0)
    env.reset(seed=0)
    pos = env.world.position(env.goal.target.oid)
    _teleport(env, env.goal.target.oid, [pos[0], pos[1], 0.2])  # lifted but not held
    assert not env.task.success(env.world, env.goal)
    reach = make_env("reach", image_size=0)
    reach.reset(seed=0)
    assert not reach.task.success(reach.world, reach.goal)
    ee = reach.world.robot.ee_pose()[0]
    oid = reach.goal.target.oid
    _teleport(reach, oid, [ee[0], ee[1], ee[2] - 0.012 - _height(reach, oid) / 2])
    assert reach.task.success(reach.world, reach.goal)


def test_put_all_needs_every_block():
    env = make_env("put_all", image_size=0)
    env.reset(seed=2)
    goal = env.goal
    bowl = env.world.position(goal.bowl.oid)
    offsets = [(-0.025, -0.025), (0.025, 0.025), (0.025, -0.025)]
    for oid, (dx, dy) in zip(goal.blocks, offsets):
        _teleport(env, oid, [bowl[0] + dx, bowl[1] + dy, vocab.BOWL_WALL + _height(env, oid) / 2])
    assert env.task.success(env.world, goal)
    _teleport(env, goal.blocks[-1], [bowl[0], bowl[1] + 0.2, _height(env, goal.blocks[-1]) / 2])
    assert not env.task.success(env.world, goal)


def test_chain_needs_first_command_before_second():
    env = make_env("chain", image_size=0)
    env.reset(seed=0)
    goal = env.goal
    goal.first_done = False
    sub = env.task.tasks[goal.second_task]
    assert not env.task.success(env.world, goal) or not sub.success(env.world, goal.second)
    info = _oracle_episode(env, 0)
    assert info["is_success"] and env.goal.first_done


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_phrasing_renders_and_parses_back(task):
    cls = TASKS[task]
    assert len(cls.TEMPLATES) >= 6
    env = make_env(task, image_size=0)
    for seed in range(4):
        sampler = Sampler(np.random.default_rng(seed), get_split("seen"), task)
        try:
            goal = env.tasks[task].sample(sampler)
        except VLAError:
            continue
        for index in range(len(cls.TEMPLATES)):
            text = env.tasks[task].instruction(goal, index)
            assert "{" not in text and "}" not in text
            parsed = parse_instruction(text)
            assert parsed.task == task, text
            assert parsed.template == index or task == "chain", text


@pytest.mark.parametrize("text,colors", [
    ("put the small red block in the green bowl", {"red", "green"}),
    ("stack the blue block on the yellow block", {"blue", "yellow"}),
    ("pick up the red cylinder left of the blue bowl", {"red", "blue"}),
    ("push the gray block to the left side of the table", {"gray"}),
    ("slide the red block next to the blue cylinder", {"red", "blue"}),
    ("put all the white blocks in the black bowl", {"white", "black"}),
    ("touch the red block then put the blue block in the green bowl", {"red", "blue", "green"}),
])
def test_reset_from_instruction_builds_matching_scene(text, colors):
    env = make_env("reach", image_size=0)
    _, info = env.reset(seed=0, options={"instruction": text})
    assert info["instruction"] == text and info["task"] == parse_instruction(text).task
    present = {o["color"] for o in env.scene_annotation()["objects"]}
    assert colors <= present
    info = _oracle_episode(env, 0, {"instruction": text})
    assert info["is_success"]


@pytest.mark.parametrize("text,kind", [
    ("touch the red block", "plain"),
    ("put the small red block in the green bowl", "size"),
    ("pick up the red cylinder left of the blue bowl", "relation"),
    ("touch the blue block then put the large red block in the green bowl", "size"),   # either step counts
    ("put all the white blocks in the black bowl", "plain"),
])
def test_reference_kind_says_how_the_instruction_picks_out_its_object(text, kind):
    env = make_env("reach", image_size=0)
    env.reset(seed=0, options={"instruction": text})
    inner = env.unwrapped
    assert inner.task.reference_kind(inner.goal) == kind
    env.close()


@pytest.mark.parametrize("text,match", [
    ("put the magenta block in the green bowl", "allowed colours: red"),
    ("put the red banana in the green bowl", "allowed objects"),
    ("push the red block to the top side of the table", "allowed sides"),
    ("push the red block to the moon", "where to push"),
    ("please dance", "could not understand"),
    ("", "empty"),
])
def test_malformed_instructions_name_the_allowed_values(text, match):
    with pytest.raises(VLAError, match=match):
        parse_instruction(text)


def test_objects_option_and_set_instruction_rebind_goals_without_reset():
    env = make_env("reach", image_size=0)
    objects = [{"color": "red", "shape": "block"}, {"color": "green", "shape": "bowl"},
               {"color": "blue", "shape": "block", "size": "small"}, {"color": "yellow", "shape": "block"}]
    env.reset(seed=0, options={"objects": objects})
    present = {(o["color"], o["shape"]) for o in env.scene_annotation()["objects"]}
    assert {(o["color"], o["shape"]) for o in objects} <= present
    for text in ["put the red block in the green bowl", "stack the blue block on the yellow block"]:
        _, info = env.set_instruction(text)
        assert info == {"is_success": False, "task": parse_instruction(text).task, "instruction": text,
                        "split": "seen", "step": 0}
        for _ in range(env.max_steps):
            _, _, terminated, truncated, info = env.step(env.oracle_action())
            if terminated or truncated:
                break
        assert info["is_success"], text
    ann = {o["color"] + " " + o["shape"]: o for o in env.scene_annotation()["objects"]}
    assert ann["red block"]["in"] == ann["green bowl"]["id"]  # the first goal still holds after the second
    assert ann["blue block"]["on"] == ann["yellow block"]["id"]
    with pytest.raises(VLAError, match="scene has no purple cylinder"):
        env.set_instruction("pick up the purple cylinder")
    with pytest.raises(VLAError, match="allowed colours"):
        env.reset(seed=0, options={"objects": [{"color": "teal", "shape": "block"}]})


def test_set_instruction_binds_the_preferred_one_of_twins_the_words_cannot_tell_apart():
    env = make_env("reach", image_size=0)
    objects = [{"color": "red", "shape": "block", "size": "small"}, {"color": "red", "shape": "block", "size": "small"},
               {"color": "green", "shape": "bowl"}]
    env.reset(seed=0, options={"objects": objects})
    ann = env.scene_annotation()["objects"]
    reds = [o["id"] for o in ann if o["color"] == "red" and o["shape"] == "block"]
    bowl = next(o["id"] for o in ann if o["shape"] == "bowl")
    env.set_instruction("put the red block in the green bowl")
    assert env.goal.target.oid == reds[0]                     # no preference: the first match
    env.set_instruction("put the red block in the green bowl", prefer=[reds[1], bowl])
    assert (env.goal.target.oid, env.goal.bowl.oid) == (reds[1], bowl)
    for _ in range(env.max_steps):
        _, _, terminated, truncated, info = env.step(env.oracle_action())
        if terminated or truncated:
            break
    where = {o["id"]: o.get("in") for o in env.scene_annotation()["objects"]}
    assert info["is_success"] and where[reds[1]] == bowl and where[reds[0]] != bowl
    _, info = env.set_instruction("put the red block in the green bowl", prefer=[reds[1]])
    assert info["is_success"]                                # the preferred twin is the one already in
    _, info = env.set_instruction("put the red block in the green bowl", prefer=[reds[0]])
    assert not info["is_success"]
    env.close()


def test_a_preferred_object_is_never_bound_as_its_own_landmark():
    env = make_env("reach", split="seen", image_size=0)
    _, info = env.reset(seed=4)                              # three cyan bowls
    assert info["instruction"] == "touch the cyan bowl right of the cyan bowl"
    target, landmark = env.goal.target.oid, env.goal.target.landmark.oid
    env.set_instruction(info["instruction"], prefer=[target])
    assert (env.goal.target.oid, env.goal.target.landmark.oid) == (target, landmark)
    env.close()


def test_plain_reset_returns_to_the_envs_own_task_after_an_instruction():
    env = make_env("pick", image_size=0)
    env.reset(seed=0)
    env.set_instruction(CANONICAL["reach"].format(obj=_first_object_phrase(env)))
    _, info = env.reset(seed=1)
    assert info["task"] == "pick"
    env.reset(seed=2, options={"instruction": "put the red block in the green bowl"})
    _, info = env.reset(seed=3)
    assert info["task"] == "pick"


def _first_object_phrase(env) -> str:
    obj = env.scene_annotation()["objects"][0]
    size = f"{obj['size']} " if obj.get("size") else ""
    return f"the {size}{obj['color']} {obj['shape']}"


@pytest.mark.parametrize("task", sorted(TASKS))
def test_the_on_policy_expert_finishes_tasks_from_states_it_did_not_plan(task):
    """`oracle_action(on_policy=True)` plans from the state alone (DAgger labels): driving by itself, with every
    other step knocked 1.5 cm off course, it still finishes the task."""
    env = make_env(task, image_size=0)
    rng = np.random.default_rng(0)
    wins = 0
    for seed in range(3):
        env.reset(seed=seed)
        for _ in range(env.max_steps):
            action = env.oracle_action(on_policy=True)
            if rng.random() < 0.5:
                action = action.copy()
                action[:3] += rng.normal(0.0, 0.015, 3)
            _, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break
        wins += bool(info["is_success"])
    assert wins >= 2, (task, wins)


def test_the_on_policy_expert_resumes_where_the_arm_is():
    """Constructed states the stateful oracle gets wrong: an arm already below the approach point keeps
    descending; an arm holding the block carries it to the bowl with the gripper shut."""
    from vla.envs.oracle import grasp_height, grasp_yaw

    env = make_env("place", image_size=0)
    env.reset(seed=3)
    world, goal = env.world, env.goal
    oid = goal.target.oid
    pos = world.position(oid)
    z = grasp_height(world, oid)
    world.robot.teleport(np.array([pos[0], pos[1], z + 0.03]), grasp_yaw(world, oid), close=False)
    stale = env.oracle_action()                        # the stateful oracle climbs back to its approach point
    fresh = env.oracle_action(on_policy=True)
    assert stale[2] > 0 and fresh[2] < 0 and fresh[4] == 0.0
    assert env.oracle.plan[env.oracle.index].pos[2] == pytest.approx(z)
    for _ in range(12):                                # down, close and wait for the fingers
        _, _, _, _, info = env.step(env.oracle_action(on_policy=True))
        if world.holding() == oid:
            break
    assert world.holding() == oid
    bowl = world.position(goal.bowl.oid)[:2]
    for _ in range(6):
        action = env.oracle_action(on_policy=True)
        assert action[4] == 1.0                        # never lets go on the way
        assert np.linalg.norm(env.oracle.plan[-1].pos[:2] - bowl) < 1e-6
        env.step(action)
    assert world.holding() == oid and world.position(oid)[2] > pos[2] + 0.03


def _check_answer(env, kind: str, ids: tuple, side: str | None = None) -> str | None:
    """What the VQA training data (qa_data's step checks) says of the goal's objects in the current state (None
    when no draw asked about them: every "yes" is asked, "no" ones are drawn to balance them)."""
    import random

    from vla.models.tools import qa_data

    ann = env.scene_annotation()
    answers = {(tuple(g[0] for g in q["refs"]), next((s for s in vocab.SIDES if f" {s} side" in q["question"]), None)):
               q["answer"] for seed in range(12) for q in qa_data.questions(ann, random.Random(seed), types=(kind,))}
    return answers.get((ids, side))


@pytest.mark.parametrize("task", ["reach", "stack", "push", "put_all"])
def test_the_vqa_step_checks_say_what_the_task_success_says(task):
    """The agent's `--verify vqa` questions are trained on answers that must agree with the simulator: "no" at
    the start of an oracle episode, "yes" once the task succeeds (on scenes whose goal objects have a plain
    description: the checks do not name one of two twins by where it is)."""
    from vla.models.tools.qa_data import refer

    env = make_env(task, image_size=0)
    checked = 0
    for seed in range(12):
        env.reset(seed=seed)
        g = env.goal
        kind, ids = {"reach": lambda: ("touching", (g.target.oid,)), "stack": lambda: ("on", (g.top.oid, g.base.oid)),
                     "put_all": lambda: ("all_in", (g.blocks[0], g.bowl.oid)),
                     "push": lambda: ("side", (g.target.oid,)) if g.side else
                     ("next_to", (g.target.oid, g.landmark.oid))}[task]()
        objects = env.scene_annotation()["objects"]
        named = ids[1:] if kind == "all_in" else ids           # "all the red blocks" needs no description
        if any(refer(o, objects) is None for o in objects if o["id"] in named):
            continue
        side = g.side if kind == "side" else None
        assert _check_answer(env, kind, ids, side) in ("no", None), (task, seed)
        info = _oracle_episode(env, seed)
        assert info["is_success"] and _check_answer(env, kind, ids, side) == "yes", (task, seed, kind)
        checked += 1
        if checked == 3:
            break
    assert checked == 3
