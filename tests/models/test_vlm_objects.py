"""The VLM's object tokens (vla.models.objects): centres from a segmentation, peak detection, left-to-right
tokens, the centre loss, a detector that learns to find objects, and a VLM that gains them from a checkpoint."""
import numpy as np
import pytest
import torch

from vla.agent.perception.runs import load_run
from vla.agent.perception.train_vlm import with_roles
from vla import VLAError
from vla.models.objects import ObjectTokens, object_centres
from vla.models.vlm import load_vlm, new_vlm


pytestmark = pytest.mark.usefixtures("one_thread")


def _ann(*objects):
    return {"objects": [{"id": i, "shape": s, "color": c, "size": z} for i, s, c, z in objects],
            "gripper": {"holding": None}}


def test_centres_are_visible_pixel_centroids_in_grid_cells():
    seg = np.zeros((8, 8), np.uint8)
    seg[0:2, 0:2] = 3                                 # a block in the top-left corner, centroid pixel (0.5, 0.5)
    seg[4:8, 6:8] = 5                                 # a bowl at the right edge, centroid pixel (6.5, 5.5)
    ann = _ann((3, "block", "blue", "small"), (5, "bowl", "brown", None), (7, "cylinder", "red", None))
    rows = object_centres(seg, ann, grid=4, colors=("red", "green", "blue"))   # the cylinder is hidden
    # pixel p -> cell (p + 0.5) / 2 - 0.5; a colour not in `colors` is -1; sizes index (None, small, large)
    np.testing.assert_allclose(rows, [[0, 0.0, 0.0, 2, 1], [2, 3.0, 2.5, -1, 0]])


def _heat(peaks, grid=8, classes=3):
    heat = torch.full((1, classes, grid, grid), -8.0)
    for cls, x, y, logit in peaks:
        heat[0, cls, y, x] = logit
    return heat


def test_detection_keeps_local_maxima_per_class_above_the_threshold_strongest_first():
    tokens = ObjectTokens(slots=3, channels=8, out_dim=16, image_size=16, threshold=0.3)
    heat = _heat([(0, 2, 2, 3.0), (2, 2, 2, 1.0),     # a block in a bowl: the same cell, both kept
                  (0, 3, 2, 2.0),                     # next to the first block and weaker: not a maximum
                  (1, 6, 6, -2.0)])                   # a cylinder below the threshold
    np.testing.assert_array_equal(tokens.detect(heat, refine=False)[0], [[0, 2, 2], [2, 2, 2]])
    crowded = _heat([(0, x, 0, 1.0 + x) for x in range(0, 8, 2)])
    np.testing.assert_array_equal(tokens.detect(crowded, refine=False)[0][:, 1], [6, 4, 2])   # `slots` strongest


@pytest.mark.parametrize("centre", [(5.0, 7.0), (5.3, 6.8), (4.6, 7.45)])
def test_a_peak_is_placed_within_its_cell_from_its_neighbours(centre):
    """The detector is trained against a Gaussian around each centre; a heatmap of that shape, off the cell grid,
    gives back its centre to a few hundredths of a cell (whole cells alone are off by up to half a cell)."""
    tokens = ObjectTokens(slots=3, channels=8, out_dim=16, image_size=32, threshold=0.3)
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    prob = 0.9 * torch.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / 2)
    heat = torch.full((1, 3, 16, 16), -12.0)
    heat[0, 1] = torch.logit(prob.clamp(1e-5, 1 - 1e-5))
    (row,) = tokens.detect(heat)[0]
    assert row[0] == 1 and np.abs(row[1:] - centre).max() < 0.05
    (cell,) = tokens.detect(heat, refine=False)[0]
    np.testing.assert_array_equal(cell[1:], np.round(centre))


def _blobs(centres, size, sigma):
    """Heat logits (1, 3, size, size) of blocks (class 0) at `centres` (x, y): the max of Gaussians, as trained."""
    yy, xx = torch.meshgrid(torch.arange(float(size)), torch.arange(float(size)), indexing="ij")
    prob = torch.stack([0.9 * torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma ** 2)) for x, y in centres])
    heat = torch.full((1, 3, size, size), -12.0)
    heat[0, 0] = torch.logit(prob.max(0).values.clamp(1e-5, 1 - 1e-5))
    return heat


def test_the_fine_heatmap_keeps_two_centres_a_cell_apart_that_the_cell_grid_merges():
    """A block stacked on another shows its centre 1-2 cells above the lower one's: on the cell grid the two
    Gaussians make one peak; at the image's resolution (half-cell Gaussians) they stay two, reported in cells."""
    tokens = ObjectTokens(slots=4, channels=8, out_dim=16, image_size=16, threshold=0.3, fine=True)
    cells = [(3.3, 2.9), (3.1, 4.4)]
    coarse = _blobs(cells, 8, sigma=1.0)
    assert len(tokens.detect(coarse)[0]) == 1
    fine = _blobs([((x + 0.5) * 2 - 0.5, (y + 0.5) * 2 - 0.5) for x, y in cells], 16, sigma=1.0)
    rows = tokens.detect(coarse, fine=fine)[0]
    assert len(rows) == 2 and (rows[:, 0] == 0).all()
    np.testing.assert_allclose(rows[np.argsort(rows[:, 2]), 1:], cells, atol=0.05)
    # its loss is the focal loss at those pixels: low for that heatmap, high for one whose peaks are elsewhere
    truth = [np.array([[0, *cells[0]], [0, *cells[1]]], np.float32)]
    assert tokens.fine_loss(fine, truth) < 0.5 * tokens.fine_loss(torch.roll(fine, 4, dims=-1), truth)
    # a forward pass detects from it; the tokens' features are the coarse grid's as before
    pixels = torch.randn(1, 3, 16, 16)
    _, _, aux = tokens(pixels)
    assert aux["fine"].shape == (1, 3, 16, 16) and aux["heat"].shape == (1, 3, 8, 8)
    assert ObjectTokens(slots=4, channels=8, out_dim=16, image_size=16)(pixels)[2]["fine"] is None


def test_tokens_are_sorted_left_to_right_masked_beyond_the_objects_and_move_with_position():
    torch.manual_seed(0)
    tokens = ObjectTokens(slots=4, channels=8, out_dim=16, image_size=16).eval()
    pixels = torch.zeros(2, 3, 16, 16)
    left, right = [0, 1.0, 3.0], [1, 6.0, 3.0]
    a, mask, _ = tokens(pixels, [np.array([right, left]), np.array([left])])
    b, _, _ = tokens(pixels, [np.array([left, right]), np.array([left])])
    assert torch.equal(a, b)                                         # the order given does not matter
    assert mask.tolist() == [[1, 1, 0, 0], [1, 0, 0, 0]] and a[0, 2:].abs().max() == 0
    assert torch.allclose(a[0, 0], a[1, 0])                          # the same object in the same empty scene
    moved, _, _ = tokens(pixels, [np.array([[0, 2.0, 3.0]]), np.array([left])])
    assert not torch.allclose(moved[0, 0], a[0, 0])


PALETTE = {"red": [220, 30, 30], "green": [30, 200, 40], "blue": [40, 60, 230], "yellow": [240, 220, 30],
           "white": [250, 250, 250], "black": [10, 10, 10]}


def _squares(n, rng, size=32):
    """Grey images with 1-3 coloured 4x4 squares; their segmentation and annotations (every square a block)."""
    images = np.full((n, size, size, 3), 120, np.uint8)
    seg, anns = np.zeros((n, size, size), np.uint8), []
    for i in range(n):
        objs = []
        for k in range(rng.integers(1, 4)):
            while True:
                y, x = rng.integers(0, size - 4, 2)
                if not seg[i, max(y - 2, 0):y + 6, max(x - 2, 0):x + 6].any():
                    break
            color = list(PALETTE)[rng.integers(len(PALETTE))]
            images[i, y:y + 4, x:x + 4] = PALETTE[color]
            seg[i, y:y + 4, x:x + 4] = k + 1
            objs.append((k + 1, "block", color, "small"))
        anns.append(_ann(*objs))
    return images, seg, anns


def test_the_detector_learns_to_find_objects_and_their_colours_in_new_images():
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    det = ObjectTokens(slots=6, channels=16, out_dim=16, image_size=32)
    prep = lambda im: torch.as_tensor(im).permute(0, 3, 1, 2).float() / 255 - 0.5   # noqa: E731
    images, seg, anns = _squares(64, rng)
    centres = [object_centres(s, a, det.grid) for s, a in zip(seg, anns)]
    opt = torch.optim.Adam(det.parameters(), lr=3e-3)
    for step in range(400):
        idx = rng.integers(0, len(images), 16)
        loss = det.loss(det(prep(images[idx]), [centres[i] for i in idx])[2], [centres[i] for i in idx])
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    images, seg, anns = _squares(20, rng)
    with torch.no_grad():
        found = det.detect(det(prep(images))[2]["heat"])
        truth = [object_centres(s, a, det.grid) for s, a in zip(seg, anns)]
        _, _, aux = det(prep(images), truth)
    named = aux["attrs"][..., :det.colors].argmax(-1)[aux["rows"][..., 3] >= 0]
    assert (named == aux["rows"][..., 3][aux["rows"][..., 3] >= 0]).float().mean() >= 0.6   # chance: 1 in 6
    hits = sum(any(np.abs(f[1:] - c[1:3]).max() <= 1.0 for f in fs) for fs, t in zip(found, truth) for c in t)
    n_true, n_found = sum(map(len, truth)), sum(map(len, found))
    assert hits / n_true >= 0.75 and n_found <= n_true + 4, (hits, n_true, n_found)     # untrained: 0


def test_a_checkpoint_without_object_tokens_gains_them_and_keeps_every_other_weight(tmp_path):
    run = load_run("vlm", "debug")
    run.model.objects = 0
    vlm = new_vlm(run.model, ["a red block", "what colour is the block? red"])
    vlm.save(tmp_path / "plain", half=False)
    grown = load_vlm(str(tmp_path / "plain"), objects={"objects": 3, "object_channels": 8})
    assert grown.net.cfg.objects == 3 and grown.net.objects is not None
    before = vlm.net.state_dict()
    assert all(torch.equal(before[k], v) for k, v in grown.net.state_dict().items() if not k.startswith("objects."))
    images = np.random.default_rng(0).integers(0, 255, (2, 40, 40, 3), dtype=np.uint8)
    seg = np.zeros((2, 40, 40), np.uint8)
    seg[:, 10:14, 20:24] = 1
    centres = [object_centres(s, _ann((1, "block", "red", "large")), grown.net.objects.grid) for s in seg]
    grown.net.train()
    loss, metrics = grown.net(images, ["what colour is the block?"] * 2, ["red"] * 2, None, centres)
    loss.backward()
    assert "centre_loss" in metrics and grown.net.objects.heat.weight.grad.abs().sum() > 0
    grown.net.eval()
    grown.save(tmp_path / "grown", half=False)
    again = load_vlm(str(tmp_path / "grown"))
    assert again.net.cfg.objects == 3
    question = ["what colour is the block?"] * 2
    assert again.answers(images, question) == grown.answers(images, question)
    with pytest.raises(VLAError, match="do not fit the object tokens"):
        load_vlm(str(tmp_path / "grown"), objects={"objects": 3, "object_channels": 16})


@pytest.mark.parametrize("after_prompt", [False, True])
def test_object_tokens_go_after_the_queries_or_between_the_prompt_and_sep(after_prompt):
    run = load_run("vlm", "debug")
    run.model.objects_after_prompt = after_prompt
    vlm = new_vlm(run.model, ["a red block", "what colour is the block? red"]).net.eval()
    images = np.zeros((2, 40, 40, 3), np.uint8)
    centres = [np.array([[0, 3.0, 5.0, 0, 1], [2, 9.0, 5.0, 1, 0]]), np.array([[1, 4.0, 4.0, 2, 0]])]
    with torch.no_grad():
        embeds, mask, _ = vlm.prefix(images, ["what colour is the block?"] * 2, None, centres)
        sep = vlm.llm.get_input_embeddings()(torch.tensor([vlm.sep_id]))[0]
    Q, K, P = run.model.bridge.num_queries, run.model.objects, run.model.max_prompt_tokens
    assert embeds.shape[1] == Q + K + P + 1 and torch.allclose(embeds[:, -1], sep.expand(2, -1))
    start = Q + P if after_prompt else Q
    assert mask[:, start:start + K].tolist() == [[1, 1, 0, 0], [1, 0, 0, 0]]
    assert mask[:, Q + (0 if after_prompt else K):][:, :P].sum(1).tolist() == [6, 6]   # its 6 tokens


def test_roles_mark_the_objects_each_phrase_names_and_skip_captions():
    rows = np.zeros((3, 5), np.float32)
    ids = [4, 7, 9]                                                  # the visible objects behind the rows
    np.testing.assert_array_equal(with_roles(rows, ids, [[9], [4]])[:, 5], [2, 0, 1])
    np.testing.assert_array_equal(with_roles(rows, ids, [[4, 7]])[:, 5], [1, 1, 0])   # "how many blocks"
    np.testing.assert_array_equal(with_roles(rows, ids, [[]])[:, 5], [0, 0, 0])       # an absent object
    np.testing.assert_array_equal(with_roles(rows, ids, None)[:, 5], [-1, -1, -1])    # a caption


def test_role_loss_reads_the_labelled_object_tokens_only():
    torch.manual_seed(0)
    tokens = ObjectTokens(slots=3, channels=8, out_dim=16, image_size=16, roles=True)
    rows = torch.tensor([[[0, 1, 1, 0, 0, 2], [0, 5, 1, 0, 0, 0], [-1, -1, -1, -1, -1, -1]],
                         [[0, 1, 1, 0, 0, -1], [-1] * 6, [-1] * 6]], dtype=torch.float32)
    hidden = torch.randn(2, 3, 16, requires_grad=True)
    tokens.role_loss(hidden, rows).backward()
    grad = hidden.grad.abs().sum(-1)
    assert grad[0, :2].min() > 0 and grad[0, 2:].sum() == 0 and grad[1].sum() == 0   # empty slots, unknown role
    caption = rows.clone()
    caption[..., 5] = torch.where(caption[..., 0] >= 0, -1.0, caption[..., 5])
    assert tokens.role_loss(hidden, caption).item() == 0.0


@pytest.mark.parametrize("after_prompt", [False, True])
def test_the_grounding_loss_reads_the_lm_at_the_object_tokens(after_prompt):
    run = load_run("vlm", "debug")                   # a 1-layer LM: the layer before the last is its input
    run.model.objects_after_prompt, run.model.object_roles = after_prompt, True
    vlm = new_vlm(run.model, ["a red block", "what colour is the block? red"]).net.eval()
    images = np.zeros((2, 40, 40, 3), np.uint8)
    centres = [np.array([[0, 9.0, 5.0, 0, 1, 1], [2, 3.0, 5.0, 1, 0, 0]]), np.array([[1, 4.0, 4.0, 2, 0, 2]])]
    question = ["what colour is the block?"] * 2
    with torch.no_grad():
        _, metrics = vlm(images, question, ["red"] * 2, None, centres)
        embeds, _, found = vlm.prefix(images, question, None, centres)
    Q, K, P = run.model.bridge.num_queries, run.model.objects, run.model.max_prompt_tokens
    start = Q + P if after_prompt else Q
    assert found["rows"][0, :, 5].tolist() == [0, 1, -1, -1]        # sorted left to right with their roles
    expected = vlm.objects.role_loss(embeds[:, start:start + K], found["rows"])
    assert torch.allclose(metrics["role_loss"], expected) and expected > 0


def test_relate_points_at_the_positions_of_the_named_objects():
    tokens = ObjectTokens(slots=3, channels=8, out_dim=16, image_size=20, relation=True)      # a 10-cell grid
    tokens.roles, tokens.relation = torch.nn.Identity(), torch.nn.Identity()   # logits in, features out
    big = 30.0
    logits = torch.tensor([[[0, big, 0], [0, 0, big], [big, 0, 0]],      # first phrase, second phrase, neither
                           [[0, big, 0], [0, big, 0], [big, 0, 0]]])     # "how many": two of the first phrase
    rows = torch.tensor([[[0, 1.5, 4.5, 0, 0, -1], [1, 7.5, 2.5, 0, 0, -1], [2, 4.5, 4.5, 0, 0, -1]],
                         [[0, 1.5, 4.5, 0, 0, -1], [0, 5.5, 0.5, 0, 0, -1], [-1] * 6]])
    feat = tokens.relate(logits, rows)
    # (x, y) of each phrase in [0, 1] ((cell + 0.5) / 10), 10 x their offset, each phrase's total weight
    torch.testing.assert_close(feat[0], torch.tensor([0.2, 0.5, 0.8, 0.3, -6.0, 2.0, 1.0, 1.0]))
    torch.testing.assert_close(feat[1], torch.tensor([0.4, 0.3, 0.0, 0.0, 4.0, 3.0, 1.0, 0.0]))


def test_the_relation_joins_sep_only_and_starts_at_zero():
    run = load_run("vlm", "debug")
    run.model.objects_after_prompt, run.model.object_relation = True, True
    run.model.llm.layers = 2
    torch.manual_seed(0)
    net = new_vlm(run.model, ["a red block", "what colour is the block? red"]).net.eval()
    images = np.random.default_rng(0).integers(0, 255, (2, 40, 40, 3), dtype=np.uint8)
    centres = [np.array([[0, 9.0, 5.0, 0, 1, 1], [2, 3.0, 5.0, 1, 0, 2]]), np.array([[1, 4.0, 4.0, 2, 0, 1]])]
    question, answer = ["is the block left of the bowl?"] * 2, ["yes", "no"]
    with torch.no_grad():
        loss, metrics = net(images, question, answer, None, centres)
        relation, net.objects.relation = net.objects.relation, None
        plain_loss, plain = net(images, question, answer, None, centres)        # one pass, no relation
        net.objects.relation = relation
    assert torch.allclose(loss, plain_loss) and torch.allclose(metrics["role_loss"], plain["role_loss"])
    torch.nn.init.normal_(net.objects.relation[2].weight)
    with torch.no_grad():
        moved_loss, moved = net(images, question, answer, None, centres)
    assert torch.allclose(moved["role_loss"], metrics["role_loss"]) and not torch.allclose(moved_loss, loss)
    run.model.objects_after_prompt = False
    with pytest.raises(VLAError, match="object_relation needs object tokens after the prompt"):
        new_vlm(run.model, ["a red block"])
