"""The generalisation splits are disjoint by construction, and sampled episodes respect them."""
import itertools

import pytest

from vla.envs import SPLITS, TASKS, make_env, vocab
from vla.envs.splits import N_SEEN_TEMPLATES, SEEN_COLORS, UNSEEN_COLORS, held_out_combo


def test_colour_sets_are_disjoint_and_cover_the_vocabulary():
    assert not set(SEEN_COLORS) & set(UNSEEN_COLORS)
    assert set(SEEN_COLORS) | set(UNSEEN_COLORS) == set(vocab.COLOR_NAMES) and len(vocab.COLOR_NAMES) >= 10


def test_held_out_combos_and_templates_are_disjoint():
    seen, held = SPLITS["seen"], SPLITS["unseen_combos"]
    combos = list(itertools.product(TASKS, SEEN_COLORS, vocab.SHAPES))
    assert any(held_out_combo(*c) for c in combos) and not all(held_out_combo(*c) for c in combos)
    for combo in combos:
        assert seen.allows_combo(*combo) != held.allows_combo(*combo)
    for cls in TASKS.values():
        a = set(SPLITS["seen"].template_indices(len(cls.TEMPLATES)))
        b = set(SPLITS["unseen_phrasings"].template_indices(len(cls.TEMPLATES)))
        assert not a & b and len(a) == N_SEEN_TEMPLATES and len(b) >= 1


def _named_colors(env):
    goal = env.goal
    if env.task.NAME == "chain":
        goals = [goal.first, goal.second]
    else:
        goals = [goal]
    colors = set()
    for g in goals:
        colors |= {r.color for r in g.refs()} | ({g.color} if hasattr(g, "color") else set())
    return colors


@pytest.mark.parametrize("task", sorted(TASKS))
def test_sampled_episodes_respect_their_split(task):
    instructions = {}
    for split in SPLITS:
        env = make_env(task, split=split, image_size=0)
        instructions[split] = set()
        for seed in range(4):
            _, info = env.reset(seed=seed)
            instructions[split].add(info["instruction"])
            named = _named_colors(env)
            scene = {o["color"] for o in env.scene_annotation()["objects"]}
            if split == "unseen_colors":
                assert named <= set(UNSEEN_COLORS)
            else:
                assert named <= set(SEEN_COLORS)
            if split == "seen":
                assert scene <= set(SEEN_COLORS)
            primary = env.task.primary(env.goal)
            name = env.goal.first_task if task == "chain" else task
            if split == "unseen_combos":
                assert held_out_combo(name, primary.color, primary.shape)
            elif split in ("seen", "unseen_phrasings"):
                assert not held_out_combo(name, primary.color, primary.shape)
    assert not instructions["seen"] & instructions["unseen_colors"]
