"""The policy's goal pointer (vla.models.goal): colour by value, word encoding, the relational layer, detection on
a rendered scene with the shipped VLM's detector, and attaching a pointer to a policy."""
import numpy as np
import pytest
import torch

from vla import VLAError
from vla.agent.train.goal import attach, load_detector, load_pointer, save_pointer, targets
from vla.envs.camera import project_front, unproject_front
from vla.envs.vocab import COLORS
from vla.models.goal import (COLOR, UNK, GoalConfig, GoalPointer, RelationalLayer, color_distance, excluded,
                             push_destination)

pytestmark = pytest.mark.usefixtures("one_thread")

RGB = {k: list(v[:3]) for k, v in COLORS.items()}


def _pointer(**kw) -> GoalPointer:
    torch.manual_seed(0)
    cfg = GoalConfig(dim=32, layers=1, heads=2, vocab=["pick", "up", "the", "block", "bowl", "left", "of"],
                     word_rgb=RGB, **kw)
    return GoalPointer(cfg).eval()


def test_unproject_inverts_the_front_camera_projection():
    points = np.array([[0.5, 0.1, 0.02], [0.3, -0.2, 0.02], [0.65, 0.28, 0.02]])
    pixels = project_front(points, 128, 128)
    np.testing.assert_allclose(unproject_front(pixels, 128, 128, 0.02), points, atol=1e-6)
    high = unproject_front(pixels, 128, 128, 0.1)        # the same pixels at another height: other points
    assert np.abs(high[:, :2] - points[:, :2]).max() > 0.01


def test_front_matrices_are_pybullets_without_the_simulator():
    import pybullet

    from vla.envs.camera import FAR, FRONT_EYE, FRONT_TARGET, NEAR, front_matrices

    for w, h, fov in [(128, 128, 45.0), (96, 64, 60.0)]:
        view, proj = front_matrices(w, h, fov)
        np.testing.assert_allclose(view, pybullet.computeViewMatrix(FRONT_EYE, FRONT_TARGET, (0, 0, 1)), atol=1e-6)
        np.testing.assert_allclose(proj, pybullet.computeProjectionMatrixFOV(fov, w / h, NEAR, FAR), atol=1e-6)


def test_colour_distance_ignores_shading_and_separates_colours():
    red, green = torch.tensor(RGB["red"]), torch.tensor(RGB["green"])
    objects = torch.stack([0.7 * red, 0.95 * red, 0.8 * green])[None]               # (1, 3, 3)
    words = torch.stack([red, green])[None]                                          # (1, 2, 3)
    d = color_distance(objects, words)[0]
    assert d.shape == (3, 2)
    assert d[0, 0] < 1e-5 and d[1, 0] < 1e-5 and d[2, 1] < 1e-5                      # shaded, same colour
    assert d[0, 1] > 0.3 and d[2, 0] > 0.3
    # darker than the shading range allows is no longer a perfect match
    assert color_distance((0.3 * red)[None, None], red[None, None])[0, 0, 0] > 0.05


def test_colour_words_enter_by_order_and_value_never_by_name():
    pointer = _pointer()
    ids, slots, rgb = pointer.encode(["pick up the teal block left of the red bowl", "pick up the block"])
    w = "pick up the teal block left of the red bowl".split()
    assert ids[0, w.index("teal")] == UNK                                            # not a colour we know
    assert ids[0, w.index("red")] == COLOR and slots[0, w.index("red")] == 1
    assert ids[0, w.index("pick")] == pointer.index["pick"]
    torch.testing.assert_close(rgb[0, 0], torch.tensor(RGB["red"]))
    assert (rgb[0, 1:] == 0).all() and (rgb[1] == 0).all() and (slots[1] == 0).all()
    # an unseen colour word gets the same treatment as a seen one: only its RGB value differs
    ids2, slots2, rgb2 = pointer.encode(["pick up the white block"])
    assert ids2[0, 3] == COLOR and slots2[0, 3] == 1
    torch.testing.assert_close(rgb2[0, 0], torch.tensor(RGB["white"]))


def test_relational_values_tell_an_object_where_the_others_lie():
    torch.manual_seed(0)
    layer = RelationalLayer(16, 2)
    x = torch.randn(1, 5, 16)
    mask = torch.ones(1, 5, dtype=torch.bool)
    xy = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]])
    out = layer(x, mask, slice(1, 4), xy)
    moved = layer(x, mask, slice(1, 4), xy + torch.tensor([[[0.0, 0.0], [0.0, 0.0], [0.0, 2.0]]]))
    same = layer(x, mask, slice(1, 4), xy + 5.0)                                     # only offsets matter
    torch.testing.assert_close(out, same)
    assert (out[0, 1:4] - moved[0, 1:4]).abs().max() > 1e-4                          # objects see the move
    torch.testing.assert_close(out[0, [0, 4]], moved[0, [0, 4]])                     # words and state: not


def test_the_shipped_detector_finds_the_objects_of_a_rendered_scene():
    from vla.envs import make_env

    pointer = _pointer()
    load_detector(pointer, "models/weights/vlm")
    env = make_env("place", "seen", image_size=128)
    obs, _ = env.reset(seed=1_000_003)
    objects = env.unwrapped.scene_annotation()["objects"]
    env.close()
    rows, mask = pointer.detect(obs["front"][None])
    table = rows[0, mask[0], 11:13] * torch.tensor([0.2, 0.3]) + torch.tensor([0.5, 0.0])
    for obj in objects:
        assert (table - torch.tensor(obj["position"][:2])).norm(dim=-1).min() < 0.04, obj
    # every goal is a detected object's position plus its offset, and the committed goal is one of them
    ids, slots, rgb = pointer.encode([str(obs["instruction"])])
    state = torch.as_tensor(obs["state"])[None]
    torch.nn.init.zeros_(pointer.offset.weight)      # no offsets: each candidate's goal is where it lies
    torch.nn.init.zeros_(pointer.offset.bias)
    logits, goals = pointer(rows, mask, ids, slots, rgb, state)
    assert logits.shape == mask.shape
    assert torch.isinf(logits[0, ~mask[0]]).all() and torch.isfinite(logits[0, mask[0]]).all()
    torch.testing.assert_close(goals[0, mask[0]], table)
    goal = pointer.predict(obs["front"][None], [str(obs["instruction"])], obs["state"][None])
    assert goal.shape == (1, 2) and (goals[0, mask[0]] - goal).norm(dim=-1).min() < 1e-5
    # a detection where the policy has set an object down is passed over while another remains
    chosen = int((table - goal).norm(dim=-1).argmin())
    other = pointer.predict(obs["front"][None], [str(obs["instruction"])], obs["state"][None],
                            exclude=table[chosen][None].numpy())
    assert (other - goal).norm() > 0.03 and (goals[0, mask[0]] - other).norm(dim=-1).min() < 1e-5
    everything = pointer.predict(obs["front"][None], [str(obs["instruction"])], obs["state"][None],
                                 exclude=table.numpy())
    torch.testing.assert_close(everything, goal)                                     # none left: as before
    # nothing detected (no peak can pass this threshold): NaN, so the policy falls back to its own grounding
    pointer.detector.threshold = 1.01
    blank = pointer.predict(obs["front"][None], [str(obs["instruction"])], obs["state"][None])
    assert torch.isnan(blank).all()


def test_excluded_detections_are_masked_only_while_another_remains():
    logits = torch.tensor([[2.0, 1.0, float("-inf")], [0.5, 0.1, 0.3]])
    table = torch.tensor([[[0.5, 0.1], [0.6, -0.1], [0.0, 0.0]], [[0.5, 0.1], [0.52, 0.1], [0.5, 0.12]]])
    out = excluded(logits, table, np.array([[0.51, 0.1]]))
    assert torch.isinf(out[0, 0]) and out[0, 1] == 1.0 and out[0].argmax() == 1      # the next object
    torch.testing.assert_close(out[1], logits[1])                                    # all three within 2.5 cm
    torch.testing.assert_close(excluded(logits, table, np.zeros((0, 2))), logits)


def test_push_destinations_are_read_from_every_push_phrasing_and_no_other_command():
    from vla.envs.tasks import TASKS

    for template in TASKS["push"].TEMPLATES:                                        # seen and held out
        assert push_destination(template.format(obj="the red block", dest="next to the blue bowl")) == \
            ("landmark", "the blue bowl")
        assert push_destination(template.format(obj="the red block", dest="to the left side of the table")) == \
            ("side", "left")
    for task in ("reach", "pick", "place", "stack", "put_all"):
        for template in TASKS[task].TEMPLATES:
            text = template.format(obj="the red block", top="the red block", base="the blue block",
                                   bowl="the blue bowl", color="red", target="the blue bowl")
            assert push_destination(text) is None, text
    assert push_destination("touch the red block, then push the blue block to the right side of the table") is None


@pytest.mark.parametrize("seed", [1_000_003, 1_000_021, 1_000_029])
def test_a_pushs_goal_is_where_the_experts_push_would_end(seed):
    from vla.envs import make_env, vocab
    from vla.envs.tasks.push import skill_goal
    from vla.models.policy.policy import load_policy

    policy = load_policy("default")
    env = make_env("push", "seen", image_size=128)
    obs, _ = env.reset(seed=seed)
    world, goal = env.unwrapped.world, env.unwrapped.goal
    spec = world.spec(goal.target.oid)
    landmark = None if goal.landmark is None else \
        (world.position(goal.landmark.oid), world.spec(goal.landmark.oid).footprint())
    expert = np.array(skill_goal(world.position(goal.target.oid), vocab.footprint(spec.shape, spec.size), goal.side,
                                 landmark))
    env.close()
    args = (torch.as_tensor(obs["front"])[None], [str(obs["instruction"])], torch.as_tensor(obs["state"])[None])
    pointer = policy.net.goal_pointer
    assert pointer.cfg.push_end                                                      # shipped on
    ended = pointer.predict(*args)[0].numpy()
    assert np.linalg.norm(ended - expert) < 0.03, (ended, expert)
    pointer.cfg.push_end = False                                                     # the learnt offset instead
    assert np.abs(pointer.predict(*args)[0].numpy() - ended).max() > 1e-3


def test_the_pointer_class_is_the_object_at_the_goal_or_else_the_mover():
    rows = torch.zeros(2, 3, 13)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    # table x, y normalised as (p - (0.5, 0)) / (0.2, 0.3)
    place = torch.tensor([[0.4, -0.1], [0.6, 0.2], [0.5, 0.0]])
    rows[..., 11:13] = (place - torch.tensor([0.5, 0.0])) / torch.tensor([0.2, 0.3])
    data = {"labels": np.zeros((2, 6), np.float32), "movers": np.array([7, 3]),
            "annotations": [{"objects": []}, {"objects": [{"id": 3, "position": [0.5, 0.005, 0.02]}]}]}
    data["labels"][0, 4:6] = [0.61, 0.19]            # at object 1
    data["labels"][1, 4:6] = [0.5, 0.25]             # a push's end point: nothing there, the mover is object 2
    index, goal = targets(rows, mask, data, 0.03)
    assert index.tolist() == [1, 2]
    torch.testing.assert_close(goal, torch.as_tensor(data["labels"][:, 4:6]))
    data["movers"] = np.array([7, 9])                # no mover in the scene: no class
    assert targets(rows, mask, data, 0.03)[0].tolist() == [1, -1]


def test_a_pointer_round_trips_and_a_policy_carries_it(tmp_path):
    from vla.models.policy.policy import load_policy

    pointer = _pointer()
    load_detector(pointer, "models/weights/vlm")
    save_pointer(pointer, tmp_path / "goal")
    again = load_pointer(tmp_path / "goal")
    for (k, a), (_, b) in zip(pointer.state_dict().items(), again.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    with pytest.raises(VLAError, match="not a goal pointer"):
        load_pointer("models/weights/policy")

    attach("default", again, tmp_path / "policy")
    policy = load_policy(tmp_path / "policy")
    assert policy.net.goal_pointer is not None and policy.cfg.model.goal_pointer["dim"] == 32
    from vla.envs import make_env

    env = make_env("pick", "seen", image_size=128)
    obs, _ = env.reset(seed=1_000_001)
    env.close()
    image = torch.as_tensor(obs["front"])[None]
    state = torch.as_tensor(obs["state"])[None]
    texts = [str(obs["instruction"])]
    goal = policy.net.goal_pointer.predict(image, texts, state)
    # the grounding token carries the pointer's goal: the same prefix as passing that goal as the teacher
    net = policy.net.eval()
    ids, m = net.encode_text(texts, "cpu")
    with torch.no_grad():
        taught = net.prefix_parts(image, state, ids, m, teacher_goal=goal)[0]
        own = net.prefix_parts(image, state, ids, m)[0]
        chunk = net.predict_chunk(image, state, texts)
        net.goal_pointer, kept = None, net.goal_pointer
        plain = net.predict_chunk(image, state, texts)
        net.goal_pointer = kept
    assert not torch.allclose(taught, own)
    assert chunk.shape == plain.shape == (1, policy.cfg.model.action.horizon, policy.cfg.model.action.dim)
    # the grounding token's position carries the goal: [vision queries | grounding | ...]
    q = net.n_vis
    assert not torch.allclose(taught[:, q], own[:, q]) and torch.allclose(taught[:, :q], own[:, :q])
    # the policy remembers the pointer's goal between chunks (to keep its choice) and forgets it on reset
    policy.select_action(obs)
    torch.testing.assert_close(policy._last_goal, goal)
    policy.reset()
    assert policy._last_goal is None
    # with `hold`, an object the policy has set down is passed over for the next grasp
    policy.configure(hold=True).hold.placed.append(goal[0].numpy())
    policy.predict_chunk(obs)
    assert (policy._last_goal - goal).norm() > 0.03
    policy.configure(goal="own").select_action(obs)          # without the pointer: nothing to remember
    assert policy._last_goal is None


def test_a_goal_pointer_needs_a_goal_estimating_grounding_head():
    from vla.models.config import to_dict
    from vla.models.policy.config import load_config

    cfg = load_config("debug")
    cfg.model.ground_goal = ""
    cfg.model.goal_pointer = to_dict(_pointer().cfg)
    with pytest.raises(VLAError, match="goal_pointer needs model.ground_goal"):
        cfg.validate()


def test_the_state_token_sees_only_the_chosen_dims():
    pointer = _pointer(state_dims=[2, 3, 4])
    rows = torch.zeros(1, 3, 13)
    rows[0, :, 11] = torch.tensor([-1.0, 0.0, 1.0])
    mask = torch.ones(1, 3, dtype=torch.bool)
    ids, slots, rgb = pointer.encode(["pick up the red block"])
    state = torch.zeros(1, 12)
    base = pointer(rows, mask, ids, slots, rgb, state)[0]
    moved = state.clone()
    moved[0, :2] = torch.tensor([0.3, -0.2])                 # the end effector elsewhere: no difference
    torch.testing.assert_close(pointer(rows, mask, ids, slots, rgb, moved)[0], base)
    closed = state.clone()
    closed[0, 4] = 0.05                                      # the gripper's opening: a difference
    assert not torch.allclose(pointer(rows, mask, ids, slots, rgb, closed)[0], base)


def test_the_committed_goal_keeps_a_near_choice_unless_another_is_far_likelier():
    from vla.models.goal import choose

    goals = torch.tensor([[[0.4, -0.1], [0.6, 0.1], [0.5, 0.2]]]).repeat(3, 1, 1)
    logits = torch.log(torch.tensor([[0.5, 0.4, 0.1], [0.9, 0.05, 0.05], [0.5, 0.4, 0.1]]))
    previous = torch.tensor([[0.61, 0.1], [0.61, 0.1], [float("nan"), float("nan")]])
    torch.testing.assert_close(choose(logits, goals), goals[:, 0])                   # no history: the best
    out = choose(logits, goals, previous)
    torch.testing.assert_close(out[0], goals[0, 1])      # 0.4 >= 0.2 * 0.5: kept, no flip to a look-alike
    torch.testing.assert_close(out[1], goals[1, 0])      # 0.05 < 0.2 * 0.9: a clear change switches
    torch.testing.assert_close(out[2], goals[2, 0])      # no previous goal: the best


def test_a_pointed_goal_is_the_nearest_detection_refined_by_its_own_candidate():
    from vla.models.goal import pointed_goal

    table = torch.tensor([[[0.4, -0.1], [0.6, 0.1], [0.62, 0.12]]]).repeat(4, 1, 1)
    goals = table + torch.tensor([[0.005, 0.0], [0.01, -0.005], [0.0, 0.05]])       # the third: a push-like offset
    mask = torch.tensor([[True, True, True]] * 3 + [[True, False, True]])
    point = torch.tensor([[0.41, -0.1], [0.6, 0.1], [0.625, 0.12], [0.6, 0.1]])
    out = pointed_goal(table, goals, mask, point, radius=0.04)
    torch.testing.assert_close(out[0], goals[0, 0])            # near its detection: the candidate's refinement
    torch.testing.assert_close(out[1], goals[1, 1])
    torch.testing.assert_close(out[2], table[2, 2])             # an offset beyond OFFSET_TRUST: the centre
    torch.testing.assert_close(out[3], table[3, 2])             # the nearest detection kept (the masked is ignored)
    far = pointed_goal(table, goals, mask, torch.tensor([[0.1, 0.5]] * 4), radius=0.04)
    assert far.isnan().all()                                    # nothing within reach: the pointer decides
