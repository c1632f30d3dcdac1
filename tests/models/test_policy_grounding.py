"""The policy's grounding: the patch and pixel heads, their U-Net, the colour-match maps, the relation features
for twins, and the recolouring augmentation."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from vla import VLAError
from vla.models import load_policy
from vla.models.policy.config import load_config
from vla.models.policy.policy import VLAPolicy

from policy_testing import SENTENCES, STATS, TINY, batch, obs, tiny_policy

def test_grounding_regression_counts_only_patches_near_the_goal_and_reports_cm():
    from vla.models.policy.grounding import GroundingHead

    head = GroundingHead(vision_width=8, hidden=8, grid=4, goal="patch")
    goal = torch.tensor([[0.5, -0.5]])
    target = torch.tensor([5])                                   # row 1, column 1: its 3x3 block is 0-2, 4-6, 8-10
    reg = goal[:, None].repeat(1, 16, 1).clone()
    out = {"reg": reg, "goal": goal.clone()}
    std = torch.tensor([0.1, 0.2])
    exact, err = head.regress_loss(out, goal, target, std)
    assert float(exact) == 0.0 and float(err) == 0.0
    far = dict(out, reg=reg.clone().index_put_((torch.tensor([0]), torch.tensor([15])), torch.tensor([9.0, 9.0])))
    assert float(head.regress_loss(far, goal, target, std)[0]) == 0.0                     # patch 15 is far
    near = dict(out, reg=reg.clone().index_put_((torch.tensor([0]), torch.tensor([10])), torch.tensor([9.0, 9.0])))
    assert float(head.regress_loss(near, goal, target, std)[0]) > 0.1
    off = dict(out, goal=goal + torch.tensor([[0.3, 0.4]]))     # 3 cm and 8 cm -> sqrt(9 + 64) cm
    assert abs(float(head.regress_loss(off, goal, target, std)[1]) - 73 ** 0.5) < 1e-4
    assert torch.isnan(head.regress_loss(out, goal, torch.tensor([-1]), std)[1])


@pytest.mark.parametrize("goal", ["patch", "pixel"])
def test_estimated_goal_and_teacher_goal_feed_the_grounding_token(goal, tmp_path):
    policy = tiny_policy(extra=("model.grounding=true", f"model.ground_goal={goal}", "model.ground_teacher=1.0",
                                "model.state_dims=[2,3,4]", "data.shift=0"))
    net, b = policy.net, batch(policy)
    net.train()
    loss, metrics = policy.forward(b)
    assert {"ground_err_cm", "ground_reg_loss", "ground_acc"} <= set(metrics) and float(metrics["ground_err_cm"]) > 0
    loss.backward()
    trained = net.ground.regress[-1] if goal == "patch" else net.ground.fine.c1
    assert trained.weight.grad.abs().sum() > 0
    # teacher forcing: in training the token carries the oracle goal, so moving it changes the loss ...
    moved = dict(b, **{"oracle.waypoint": b["oracle.waypoint"] + torch.tensor([0.1, 0, 0, 0, 0.1, -0.1])})
    g = torch.Generator().manual_seed(0)
    first = policy.net(b, torch.Generator().manual_seed(0))[1]["action_loss"]
    assert not torch.allclose(first, policy.net(moved, g)[1]["action_loss"])
    # ... and at inference it does not matter; the end effector's x, y now does (through goal - ee)
    net.eval()
    with torch.no_grad():
        assert torch.allclose(net(b)[1]["action_loss"], net(moved)[1]["action_loss"])
    o = obs()
    moved_xy = dict(o, state=o["state"] + np.r_[0.3, -0.3, np.zeros(10)].astype(np.float32))
    with torch.no_grad():
        ids, mask = net.encode_text([o["instruction"]], "cpu")
        img = torch.as_tensor(o["front"])[None]
        e = [net.prefix(img, torch.as_tensor(x["state"])[None], ids, mask)[0] for x in (o, moved_xy)]
    assert not torch.equal(e[0], e[1])
    policy.save(tmp_path / goal)
    assert np.array_equal(load_policy(tmp_path / goal).predict_chunk(o), policy.predict_chunk(o))
    with pytest.raises(VLAError, match="ground_goal needs model.grounding"):
        tiny_policy(extra=("model.ground_goal=patch", "model.grounding=false"))
    with pytest.raises(VLAError, match="needs data.shift=0"):
        tiny_policy(extra=("model.grounding=true", "model.ground_goal=pixel", "data.shift=2"))
    with pytest.raises(VLAError, match="ground_goal must be one of"):
        tiny_policy(extra=("model.grounding=true", "model.ground_goal=voxel"))
    with pytest.raises(VLAError, match="ground_teacher must be in"):
        tiny_policy(extra=("model.grounding=true", "model.ground_teacher=2"))


def test_pixel_grounding_finds_the_peak_cell_and_scores_a_gaussian_target():
    from vla.models.policy.grounding import GroundingHead

    head = GroundingHead(vision_width=8, hidden=8, grid=2, goal="pixel")
    pixels = torch.zeros(1, 3, 16, 16)                                            # an 8 x 8 cell grid
    with torch.no_grad():
        for p in head.fine.parameters():
            p.zero_()
        head.fine.out.bias.fill_(0.0)
        coarse = torch.tensor([[0.0, 0.0, 0.0, 0.0]])
        out = head.fine(pixels, torch.zeros(1, 8), coarse, 2)
    assert out["fine_logits"].shape == (1, 8, 8) and torch.allclose(out["uv"], torch.tensor([[0.5, 0.5]]))
    # the coarse patch scores alone move the soft-argmax into their patch (upper right: column 1, row 0)
    with torch.no_grad():
        out = head.fine(pixels, torch.zeros(1, 8), torch.tensor([[0.0, 30.0, 0.0, 0.0]]), 2)
    assert torch.allclose(out["uv"], torch.tensor([[0.75, 0.25]]), atol=1e-4)
    # the loss prefers logits peaked at the labelled pixel over logits peaked elsewhere
    goal, std, valid = torch.zeros(1, 2), torch.tensor([0.1, 0.1]), torch.tensor([True])
    uv = torch.tensor([[0.3, 0.8]])                                                 # cell (2, 6)
    peaked = lambda c, r: dict(out, fine_logits=torch.zeros(1, 8, 8).index_put_(  # noqa: E731
        (torch.tensor([0]), torch.tensor([r]), torch.tensor([c])), torch.tensor([8.0])), goal=goal)
    right = head.pixel_loss(peaked(2, 6), goal, uv, valid, std)
    wrong = head.pixel_loss(peaked(6, 1), goal, uv, valid, std)
    assert right[0].item() < wrong[0].item() - 1.0 and right[1].item() == 0.0
    assert torch.isnan(head.pixel_loss(peaked(2, 6), goal, torch.tensor([[1.2, 0.5]]), valid, std)[1])


def test_pixel_grounding_peak_commits_to_one_of_two_look_alikes_at_inference_only():
    from vla.models.policy.grounding import PixelGrounding

    def run(peak: int, training: bool) -> torch.Tensor:
        fine = PixelGrounding(hidden=8, peak=peak).train(training)
        logits = torch.zeros(1, 8, 8)        # two look-alike candidates, the left one a little better
        logits[0, 2, 1], logits[0, 2, 6] = 9.0, 8.9
        fine.out = _FixedLogits(logits)
        return fine(torch.zeros(1, 3, 16, 16), torch.zeros(1, 8), torch.zeros(1, 1), 1)["uv"][0]

    left = torch.tensor([(1 + 0.5) / 8, (2 + 0.5) / 8])
    assert (run(0, False) - left).abs()[0] > 0.2                       # the whole-image soft-argmax: in between
    assert torch.allclose(run(3, False), left, atol=1e-3)              # committed to the best candidate
    assert torch.allclose(run(3, True), run(0, True))                  # training keeps the whole-image estimate
    with pytest.raises(VLAError, match="ground_peak must be >= 0"):
        tiny_policy(extra=("model.ground_peak=-1",))


def test_pixel_unet_starts_at_zero_and_learns_what_a_pixel_sees_only_in_context():
    """Two identical red squares; the goal is the one with a blue square beside it. The shallow pixel branch sees
    9 x 9 pixels around each pixel and cannot tell them apart; its U-Net (trained alone, from zero) can."""
    from vla.models.policy.grounding import PixelGrounding

    def layouts(n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        pixels, target = torch.zeros(n, 3, 64, 64), torch.zeros(n, 2)
        for i in range(n):
            while True:
                (r1, c1), (r2, c2) = torch.randint(4, 52, (2, 2), generator=g).tolist()
                if abs(r1 - r2) > 14 or abs(c1 - c2) > 28:
                    break
            pixels[i, 0, r1:r1 + 6, c1:c1 + 6] = pixels[i, 0, r2:r2 + 6, c2:c2 + 6] = 1.0
            side = 14 if c1 < 40 else -14                        # the blue square 8 pixels beside the first
            pixels[i, 2, r1:r1 + 6, c1 + side:c1 + side + 6] = 1.0
            target[i] = torch.tensor([c1 + 3, r1 + 3]) / 64
        return pixels, target

    torch.manual_seed(0)
    fine = PixelGrounding(hidden=8, channels=8, depth=3)
    assert fine.unet is not None and PixelGrounding(hidden=8).unet is None
    pixels, target = layouts(128, 0)
    cond, coarse = torch.zeros(128, 8), torch.zeros(128, 1)
    shallow = copy.deepcopy(fine)
    shallow.unet = None
    with torch.no_grad():                                                           # zero until trained
        before = shallow(pixels, cond, coarse, 1)["fine_logits"]
        assert torch.equal(fine(pixels, cond, coarse, 1)["fine_logits"], before)
    opt = torch.optim.Adam(fine.unet.parameters(), lr=3e-3)
    cells = fine.cell_centres((32, 32), "cpu")
    for step in range(160):
        part = torch.arange(32) + 32 * (step % 4)                                    # minibatches of 32
        logits = fine(pixels[part], cond[part], coarse[part], 1)["fine_logits"].flatten(1)
        d2 = ((cells[None] - target[part][:, None]) ** 2).sum(-1) * 32 ** 2
        loss = -((-0.5 * d2).softmax(-1) * logits.log_softmax(-1)).sum(-1).mean()
        opt.zero_grad(), loss.backward(), opt.step()
    test, where = layouts(32, 1)
    with torch.no_grad():
        best = cells[fine(test, torch.zeros(32, 8), torch.zeros(32, 1), 1)["fine_logits"].flatten(1).argmax(-1)]
    # on the right square in new layouts: 94 % (the shallow branch, all of it trained the same way: 59 %)
    assert ((best - where).norm(dim=-1) < 5 / 64).float().mean() >= 0.85
    with pytest.raises(VLAError, match="ground_pixel_depth must be >= 0 and needs model.ground_goal=pixel"):
        tiny_policy(extra=("model.ground_pixel_depth=2",))


class _FixedLogits(torch.nn.Module):
    """Stands in for the last 1x1 convolution: emits fixed scores of the stride-2 grid."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[:, None].expand(x.shape[0], 1, *self.logits.shape[1:])


@pytest.mark.parametrize("split", ["seen", "unseen_colors"])
def test_colour_match_maps_light_up_objects_of_that_colour_whatever_their_shading(split):
    from vla.envs.env import VLAEnv
    from vla.envs.vocab import COLORS
    from vla.models.policy.grounding import color_match_maps

    names = list(COLORS)
    rgb, valid = torch.tensor([[COLORS[c][:3] for c in names]]), torch.ones(1, len(names))
    env = VLAEnv("place", split, image_size=128, segmentation=True)
    checked = 0
    for seed in range(4):
        o, _ = env.reset(seed=seed)
        seg = torch.as_tensor(o["front_seg"])
        maps = color_match_maps(torch.as_tensor(o["front"]).permute(2, 0, 1)[None] / 255.0, rgb, valid)[0]
        for obj in env.scene_annotation()["objects"]:
            pixels = maps[:, seg == obj["id"]]                                   # (colours, pixels of the object)
            if pixels.shape[1] < 5:
                continue                                                            # hidden behind another
            medians = pixels.median(1).values
            own = names.index(obj["color"])
            assert medians[own] > 0.9, (obj, medians[own])
            assert medians[torch.arange(len(names)) != own].max() < 0.2, (obj, medians)
            checked += 1
        # the table (and the robot) match no vocabulary colour but grey and white
        background = (maps[:, seg == 0] > 0.5).float().mean(1)
        assert background[[n not in ("gray", "white") for n in names]].max() < 0.001
    env.close()
    assert checked >= 8
    assert torch.equal(color_match_maps(torch.rand(1, 3, 8, 8), rgb[:, :2], torch.tensor([[1.0, 0.0]]))[0, 1],
                       torch.zeros(8, 8))                                           # an empty slot is all zeros


def colour_policy(extra: tuple[str, ...] = (), sentences: list[str] = SENTENCES) -> VLAPolicy:
    """A tiny policy with pixel grounding and the colour maps of the first two colour words of the vocabulary."""
    from vla.envs.vocab import COLORS

    ground = ("model.grounding=true", "model.ground_colors=true", "model.ground_goal=pixel", "data.shift=0",
              "model.ground_color_maps=2", "model.state_dims=[2,3,4]")
    cfg = load_config("debug", TINY + list(ground) + list(extra))
    cfg.model.word_rgb = {name: list(rgba[:3]) for name, rgba in COLORS.items()}
    torch.manual_seed(0)
    return VLAPolicy.create(cfg, STATS, sentences)


def test_instruction_colours_are_taken_in_sentence_order_and_feed_both_grounding_levels():
    from vla.envs.vocab import COLORS

    policy = colour_policy()
    net = policy.net
    ids, _ = net.encode_text(["put the blue block in the green bowl", "pick up the red block",
                              "put the small red block left of the blue bowl in the green bowl"], "cpu")
    rgb, valid = net.instruction_colors(ids)
    expect = [["blue", "green"], ["red", None], ["red", "blue"]]                    # the first two colour words
    for row, names in enumerate(expect):
        for slot, name in enumerate(names):
            assert valid[row, slot] == (name is not None)
            want = torch.tensor(COLORS[name][:3]) if name else torch.zeros(3)
            assert torch.allclose(rgb[row, slot], want)
    # the new layers start at zero (a grown checkpoint computes what it did) and are trained by the grounding loss
    assert net.ground.color_patch.weight.abs().sum() == 0 and net.ground.fine.c1_color.weight.abs().sum() == 0
    net.train()
    loss, _ = policy.forward(batch(policy))
    loss.backward()
    assert net.ground.color_patch.weight.grad.abs().sum() > 0 and net.ground.fine.c1_color.weight.grad.abs().sum() > 0
    with pytest.raises(VLAError, match="ground_color_maps needs model.grounding=true and model.ground_colors"):
        tiny_policy(extra=("model.grounding=true", "model.ground_color_maps=2"))


def test_relation_features_read_side_and_size_from_the_colour_maps():
    from vla.models.policy.grounding import relation_features

    maps = torch.zeros(1, 2, 64, 64)
    maps[0, 0, 28:32, 8:12] = 1.0          # slot 0: a small blob left and a large one right of ...
    maps[0, 0, 26:34, 44:52] = 1.0
    maps[0, 1, 24:36, 26:38] = 1.0         # slot 1: ... the landmark in the middle
    feats = relation_features(maps, grid=8)                                         # (1, 64, 8)
    assert feats.shape == (1, 64, 8)
    left, right, landmark = 3 * 8 + 1, 3 * 8 + 6, 3 * 8 + 4                         # patches holding each blob
    dx_landmark = feats[0, :, 1]
    assert dx_landmark[left] < -0.5 and dx_landmark[right] > 0.5 and abs(dx_landmark[landmark]) < 0.2
    area = feats[0, :, 4]                                                            # slot 0's largest blob share
    assert area[right] > 1.5 * area[left] > 0 and area[landmark] == 0
    assert torch.allclose(feats[0, right, 6], area[right] * ((3 + 0.5) / 8 * 2 - 1))  # area times the patch row
    empty = relation_features(torch.zeros(1, 1, 64, 64), grid=8)
    assert torch.equal(empty, torch.zeros_like(empty))                               # an absent colour: no geometry


def test_relation_scores_start_at_zero_and_learn_to_pick_the_named_side(tmp_path):
    """Grown onto a trained head the relation layers change nothing; trained on which twin is meant, they pick it."""
    from vla.envs.vocab import COLORS

    texts = ["touch the red block left of the blue bowl", "touch the red block right of the blue bowl"]
    base = colour_policy(("model.vision.image_size=64", "model.vision.patch_size=8"), SENTENCES + texts)
    cfg = base.cfg
    cfg.model.ground_relations = True
    torch.manual_seed(0)
    grown = VLAPolicy(cfg.validate(), base.net.tokenizer, base.stats)
    missing, unexpected = grown.net.load_state_dict(base.net.state_dict(), strict=False)
    assert not unexpected and missing and all("relate" in name for name in missing)
    b = batch(grown)
    base.net.eval(), grown.net.eval()
    ids, mask = base.net.encode_text(b["task"], "cpu")
    args = (b["observation.images.front"], b["observation.state"], ids, mask)
    assert torch.equal(base.net.prefix_parts(*args)[2]["logits"], grown.net.prefix_parts(*args)[2]["logits"])
    # two red twins either side of a blue bowl: "left of" means the left one, "right of" the right one
    image = torch.full((2, 64, 64, 3), 200, dtype=torch.uint8)
    for row in range(2):
        image[row, 28:34, 8:14] = torch.tensor(COLORS["red"][:3]) * 255
        image[row, 28:34, 50:56] = torch.tensor(COLORS["red"][:3]) * 255
        image[row, 24:38, 26:40] = torch.tensor(COLORS["blue"][:3]) * 255
    target = torch.tensor([3 * 8 + 1, 3 * 8 + 6])
    ids, mask = grown.net.encode_text(texts, "cpu")
    state = torch.zeros(2, 12)
    opt = torch.optim.Adam([p for n, p in grown.net.named_parameters() if "relate" in n], lr=1e-2)
    for _ in range(60):
        logits = grown.net.prefix_parts(image, state, ids, mask)[2]
        loss = torch.nn.functional.cross_entropy(logits["logits"], target)
        opt.zero_grad(), loss.backward(), opt.step()
    assert torch.equal(logits["logits"].argmax(-1), target)
    path = grown.save(tmp_path / "grown")
    again = load_policy(path)
    assert again.cfg.model.ground_relations
    assert torch.equal(again.net.ground.relate.weight, grown.net.ground.relate.weight)
    with pytest.raises(VLAError, match="ground_relations needs model.ground_color_maps"):
        tiny_policy(extra=("model.ground_relations=true",))


def test_colour_augmentation_recolours_the_image_and_the_colour_words_alike():
    from vla.agent.train.data import LUMA, random_color_matrices, recolor
    from vla.envs.env import VLAEnv
    from vla.envs.vocab import COLORS
    from vla.models.policy.grounding import color_match_maps

    matrices = random_color_matrices(200, 0.5, torch.Generator().manual_seed(0))
    identity = (matrices == torch.eye(3)).all(-1).all(-1)
    assert 70 < int(identity.sum()) < 130                                           # about half are recoloured
    assert torch.equal(random_color_matrices(3, 0.0, None), torch.eye(3).expand(3, 3, 3))
    # a recoloured scene still shows every named object in its recoloured word colour
    swap = 0.9 * (0.6 * torch.eye(3)[[2, 0, 1]] + 0.4 * LUMA.expand(3, 3))           # permute, desaturate, dim
    env = VLAEnv("place", "seen", image_size=128, segmentation=True)
    o, _ = env.reset(seed=2)
    objects = env.scene_annotation()["objects"]
    env.close()
    image = recolor(torch.as_tensor(o["front"])[None], swap[None])                # (1, H, W, 3) uint8
    policy = colour_policy()
    seg = torch.as_tensor(o["front_seg"])
    for obj in objects:
        ids, _ = policy.net.encode_text([f"pick up the {obj['color']} block"], "cpu")
        rgb, valid = policy.net.instruction_colors(ids, swap[None])
        assert torch.allclose(rgb[0, 0], (swap @ torch.tensor(COLORS[obj["color"]][:3])).clamp(0, 1))
        maps = color_match_maps(image.permute(0, 3, 1, 2) / 255.0, rgb, valid)[0, 0]
        assert maps[seg == obj["id"]].median() > 0.8, obj
    with pytest.raises(VLAError, match="color_aug needs model.ground_colors"):
        tiny_policy(extra=("data.color_aug=0.5",))
