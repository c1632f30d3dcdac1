"""Chained commands one at a time (`commands: steps`: splitting, when a command is judged done, going home) and
a kept grasp (`hold`: a reopening away from the goal lifted instead, a release followed by a rise)."""
from __future__ import annotations

import numpy as np
import pytest
from policy_testing import STATS, obs, tiny_policy

from vla import VLAError
from vla.models.policy.config import load_config
from vla.models.policy.hold import GraspHold
from vla.models.policy.steps import CommandSteps, split_commands

HOME = [0.45, 0.0, 0.29, 0.0]
BOUNDS = (np.array(STATS["action_space"]["low"]), np.array(STATS["action_space"]["high"]))


def state(x=0.5, y=0.0, z=0.2, opening=0.08) -> np.ndarray:
    s = np.zeros(12, np.float32)
    s[:5] = [x, y, z, 0.0, opening]
    return s


def act(dz=0.0, close=False, dy=0.0) -> np.ndarray:
    return np.array([0.0, dy, dz, 0.0, float(close)], np.float32)


def started(text: str) -> CommandSteps:
    steps = CommandSteps()
    steps.instruction({"instruction": text, "state": state(*HOME[:3])})
    return steps


@pytest.mark.parametrize("text, parts", [
    ("touch the red block then push the blue block to the left side of the table",
     ["touch the red block", "push the blue block to the left side of the table"]),
    ("first touch the red block, then put the blue block in the red bowl",
     ["touch the red block", "put the blue block in the red bowl"]),
    ("go to the red bowl and then lift the cyan block", ["go to the red bowl", "lift the cyan block"]),
    ("touch the red block; after that, grab the cyan block", ["touch the red block", "grab the cyan block"]),
    ("touch the red block and afterwards lift the cyan block", ["touch the red block", "lift the cyan block"]),
    ("put the red block in the green bowl", ["put the red block in the green bowl"]),
])
def test_split_commands_at_sequencing_words_and_keeps_a_single_command_whole(text, parts):
    assert split_commands(text) == parts


def test_a_grasp_then_a_release_finishes_a_place_once_the_fingers_are_open():
    steps = started("put the red block in the green bowl, then touch the blue block")
    assert steps.current == "put the red block in the green bowl"
    assert not steps.observe(state(z=0.02), act(close=True), None)           # closes around a block
    assert not steps.observe(state(z=0.02, opening=0.05), act(close=True), None)
    assert not steps.observe(state(z=0.15, opening=0.05), act(dz=0.05, close=True), None)
    assert not steps.observe(state(z=0.10, opening=0.05), act(), None)       # opens over the bowl
    for _ in range(2):                                                       # fingers open, settling
        assert not steps.observe(state(z=0.10, opening=0.08), act(), None)
    assert steps.observe(state(z=0.10, opening=0.08), act(), None)
    assert (steps.done, steps.index, steps.current) == (["released"], 1, "touch the blue block")
    assert steps.homing


def test_a_grasp_that_shut_on_nothing_and_reopens_is_not_a_release():
    steps = started("put the red block in the green bowl, then touch the blue block")
    for _ in range(3):
        steps.observe(state(z=0.02, opening=0.001), act(close=True), None)  # missed: the fingers meet
    for _ in range(6):
        assert not steps.observe(state(z=0.02, opening=0.08), act(), None)
    assert steps.index == 0


def test_a_push_is_done_when_the_policy_lifts_after_running_low_along_y():
    steps = started("push the red block to the left side of the table, then touch the blue block")
    steps.observe(state(z=0.10, opening=0.0), act(dz=-0.04, close=True), None)   # fingers shut high up
    y = 0.0
    for _ in range(3):                                                          # 3 cm along y: not enough
        y -= 0.01
        assert not steps.observe(state(y=y, z=0.02, opening=0.0), act(dy=-0.01, close=True), None)
    assert not steps.observe(state(y=y - 0.02, z=0.02, opening=0.0), act(dy=-0.02, close=True), None)
    assert steps.observe(state(y=y - 0.02, z=0.02, opening=0.0), act(dz=0.05, close=True), None)
    assert steps.done == ["pushed"]


def test_a_grasp_closed_low_and_dragged_is_not_a_push():
    steps = started("stack the red block on the blue block, then touch the green bowl")
    y = 0.0
    for _ in range(8):                                        # fingers shut low on nothing, dragged along y
        y -= 0.02
        assert not steps.observe(state(y=y, z=0.02, opening=0.0), act(dy=-0.02, close=True), None)
    assert not steps.observe(state(y=y, z=0.02, opening=0.0), act(dz=0.05, close=True), None)


def test_a_touch_is_two_pauses_near_the_pointers_goal_at_touching_height():
    steps = started("touch the red block left of the blue bowl, then lift the green block")
    goal = np.array([0.5, 0.0])
    assert not steps.observe(state(z=0.12), act(), goal)                   # pausing at the approach height
    assert not steps.observe(state(z=0.12), act(), goal)
    assert not steps.observe(state(x=0.53, z=0.05), act(), goal)           # low, 3 cm off the goal
    assert not steps.observe(state(z=0.05), act(), goal)
    assert not steps.observe(state(z=0.05), act(dz=-0.02), goal)            # still descending: count restarts
    assert not steps.observe(state(z=0.05), act(), goal)
    assert steps.observe(state(z=0.05), act(), goal)
    assert steps.done == ["touched"]


def test_a_place_pausing_above_its_object_is_not_a_touch():
    steps = started("put the red block in the green bowl, then touch the blue block")
    goal = np.array([0.5, 0.0])
    for _ in range(4):
        assert not steps.observe(state(z=0.04), act(), goal)


def test_home_rises_before_crossing_and_ends_at_the_start_pose():
    steps = started("touch the red block, then touch the blue block")
    steps.homing = 1
    low = steps.home_action(state(x=0.6, y=0.2, z=0.05), *BOUNDS)
    assert low[0] == low[1] == 0.0 and low[2] > 0 and low[4] == 0.0
    high = steps.home_action(state(x=0.6, y=0.2, z=0.28), *BOUNDS)
    assert high[0] < 0 and high[1] < 0 and np.abs(high[:3]).max() <= 0.05
    assert steps.home_action(state(*HOME[:3]), *BOUNDS) is None and steps.homing == 0


def test_a_single_command_is_never_split_or_judged():
    steps = started("put the red block in the green bowl")
    assert not steps.active
    steps.observe(state(z=0.1, opening=0.05), act(close=True), None)
    assert not any(steps.observe(state(z=0.1, opening=0.08), act(), None) for _ in range(6))


def test_policy_follows_the_first_command_then_goes_home_then_the_second():
    policy = tiny_policy().configure(commands="steps")
    o = obs(0)
    o["instruction"] = "touch the red block, then pick up the red block"
    o["state"] = state(*HOME[:3])
    seen = []
    predict = policy.predict_chunk
    policy.predict_chunk = lambda ob, goal=None: seen.append(ob["instruction"]) or predict(ob, goal=goal)
    policy.select_action(o)
    assert seen == ["touch the red block"]
    policy.steps.index, policy.steps.homing = 1, 1                          # judged done away from home
    away = {**o, "state": state(x=0.6, z=0.05)}
    home_step = policy.select_action(away)
    assert home_step[2] > 0 and len(seen) == 1                               # a home step, no prediction
    policy.select_action(o)                                                  # home: the second command
    assert seen[-1] == "pick up the red block" and policy.steps.homing == 0
    policy.select_action({**o, "instruction": "go to the blue bowl and then touch the red block"})
    assert seen[-1] == "go to the blue bowl" and policy.steps.index == 0       # a new instruction restarts
    policy.reset()
    assert policy.steps.commands is None and policy.steps.index == 0
    with pytest.raises(VLAError, match="unknown commands 'some'; choose whole or steps"):
        policy.configure(commands="some")
    with pytest.raises(VLAError, match="unknown model.action.commands"):
        load_config("debug", ["model.action.commands=all"])


def test_a_reopening_of_a_held_object_away_from_the_goal_becomes_a_lift():
    hold = GraspHold()
    grip = state(z=0.02, opening=0.07)
    assert hold.filter(grip, act(close=True), None)[1] is False
    assert hold.filter(grip, act(close=True), None)[1] is False
    action, lifted = hold.filter(grip, act(), np.array([0.5, 0.0]))      # reopens over the object it holds
    assert lifted and action[2] > 0 and action[4] == 1.0
    assert len(hold.pending) == 1 and hold.pending[0][4] == 1.0 and hold.total == 1


def test_a_release_over_a_goal_away_from_the_grasp_passes_then_rises_and_shut_fingers_never_lift():
    hold = GraspHold()
    for _ in range(3):
        hold.filter(state(z=0.02, opening=0.05), act(close=True), None)   # grasped at (0.5, 0)
    over_bowl = state(y=0.2, z=0.1, opening=0.05)
    action, planned = hold.filter(over_bowl, act(), np.array([0.5, 0.21]))
    assert planned and action[4] == 0.0 and hold.total == 0                 # let go, then a still step and a rise
    assert [a[2] > 0 for a in hold.pending] == [False, True, True, True]
    assert all(a[4] == 0.0 for a in hold.pending)
    assert hold.placed[0].tolist() == pytest.approx([0.5, 0.2])            # where it was set down
    hold.filter(state(y=0.2, z=0.1, opening=0.08), hold.pending.pop(0), np.array([0.5, 0.21]))
    assert hold.done_with() is hold.placed                                  # open again: pass over it
    hold.reset()
    for _ in range(3):
        hold.filter(state(z=0.1, opening=0.002), act(close=True), None)   # shut on nothing up high (a push)
    action, planned = hold.filter(state(z=0.1, opening=0.002), act(), None)
    assert planned is False and action[4] == 0.0 and hold.placed == [] and hold.done_with() is None


def test_a_grasp_that_shut_on_nothing_reopens_while_rising_at_most_three_times():
    hold = GraspHold()
    rises = 0
    for _ in range(5):
        for _ in range(3):
            hold.filter(state(z=0.02, opening=0.002), act(close=True), None)   # closed low on nothing
        action, planned = hold.filter(state(z=0.02, opening=0.002), act(), None)
        assert action[4] == 0.0                                             # reopens either way
        if planned:
            assert action[2] > 0 and [a[2] > 0 and a[4] == 0.0 for a in hold.pending] == [True]
            rises += 1
        hold.pending.clear()
    assert rises == 3 and hold.total_misses == 3 and hold.total == 0
    hold.reset(episode=False)
    assert hold.misses == 0 and hold.total_misses == 3


def test_an_object_that_slips_from_the_fingers_over_the_goal_counts_as_set_down():
    hold = GraspHold()
    for _ in range(3):
        hold.filter(state(z=0.02, opening=0.05), act(close=True), None)   # grasped at (0.5, 0)
    bowl = np.array([0.5, 0.21])
    hold.filter(state(y=0.2, z=0.12, opening=0.03), act(close=True), bowl)
    assert hold.done_with() is None                                         # still holding: the bowl is the goal
    hold.filter(state(y=0.2, z=0.12, opening=0.004), act(close=True), np.array([0.6, -0.1]))  # it fell out
    assert len(hold.placed) == 1 and hold.done_with() is hold.placed
    hold.reset()
    for _ in range(3):
        hold.filter(state(z=0.02, opening=0.05), act(close=True), None)
    hold.filter(state(y=0.02, z=0.05, opening=0.004), act(close=True), bowl)  # fell out on the way: not placed
    assert hold.placed == [] and hold.done_with() is None


def test_at_most_three_lifts_per_command():
    hold = GraspHold()
    lifts = 0
    for _ in range(6):
        for _ in range(2):
            hold.filter(state(z=0.02, opening=0.07), act(close=True), None)
        hold.pending.clear()
        lifts += hold.filter(state(z=0.02, opening=0.07), act(), None)[1]
    assert lifts == 3
    hold.reset(episode=False)
    assert hold.lifts == 0 and hold.total == 3


def test_policy_with_hold_lifts_instead_of_reopening_and_plans_afresh():
    policy = tiny_policy().configure(hold=True)
    o = {**obs(0), "state": state(z=0.02, opening=0.07)}
    chunks = iter([np.array([[0, 0, 0, 0, 1.0]] * 2, np.float32), np.array([[0, 0, 0, 0, 0.0]] * 2, np.float32),
                   np.array([[0.01, 0, 0, 0, 1.0]] * 2, np.float32)])
    policy.predict_chunk = lambda ob, goal=None: next(chunks)
    taken = [policy.select_action(o) for _ in range(5)]
    assert [a[4] for a in taken[:2]] == [1.0, 1.0]
    assert taken[2][2] > 0 and taken[3][2] > 0 and taken[2][4] == taken[3][4] == 1.0   # lifted, still closed
    assert taken[4][0] == 0.01                                                       # a fresh chunk
    policy.configure(hold=False)
    chunks = iter([np.array([[0, 0, 0, 0, 1.0]] * 2, np.float32), np.array([[0, 0, 0, 0, 0.0]] * 2, np.float32)])
    assert [policy.select_action(o)[4] for _ in range(3)] == [1.0, 1.0, 0.0]


def test_every_chain_phrasing_splits_in_two_and_no_single_task_phrasing_splits():
    from vla.envs.tasks import TASKS

    first, second = "touch the red block", "push the blue block to the left side of the table"
    for template in TASKS["chain"].TEMPLATES:
        assert split_commands(template.format(first=first, second=second)) == [first, second], template
    slots = {"obj": "the red block", "bowl": "the green bowl", "base": "the blue block", "color": "red",
             "dest": "to the left side of the table"}
    for name, task in TASKS.items():
        for template in task.TEMPLATES if name != "chain" else ():
            text = template.format(**slots)
            assert split_commands(text) == [text], text
