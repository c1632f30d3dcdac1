"""The perception tools' training and evaluation pipeline end to end on a few rendered scenes: render, train
each tool's debug preset for 2 steps, save, reload through the registry, and score with `vla eval tools` code."""
import json

import numpy as np
import pytest
import torch

from vla.agent.perception import evaluate as ev
from vla.agent.perception.runs import load_run
from vla.agent.perception.scenes import SETS, load_set, object_crops
from vla.agent.perception.train_clip import train_clip
from vla.agent.perception.train_diffusion import caption_set, train_diffusion
from vla.agent.perception.train_vlm import train_vlm
from vla.models.tools import get_tool


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    before = torch.get_num_threads()
    root = tmp_path_factory.mktemp("tooltrain")
    clip_run, vlm_run, diff_run = (load_run(k, "debug") for k in ("clip", "vlm", "diffusion"))
    train_clip(clip_run, str(root / "clip"), data_dir=root / "data")
    train_vlm(vlm_run, str(root / "vlm"), data_dir=root / "data")
    diff_run.clip = str(root / "clip")
    train_diffusion(diff_run, str(root / "diffusion"), data_dir=root / "data")
    torch.set_num_threads(before)
    return root


def test_scene_set_is_cached_and_crops_show_single_objects(trained):
    data = load_set("debug", data_dir=trained / "data")
    assert (trained / "data" / "debug.npz").is_file()
    n = SETS["debug"].episodes * SETS["debug"].snapshots
    assert 1 <= len(data["images"]) <= n and data["images"].shape[1:] == (96, 96, 3)
    assert data["seg"].shape == data["images"].shape[:3]
    crops, objs = object_crops(data["images"], data["seg"], data["annotations"], size=24)
    assert crops.shape[1:] == (24, 24, 3) and len(objs) == len(crops) > 0
    assert all(o["in"] is None and o["on"] is None for o in objs)


def test_trained_tools_load_through_the_registry_and_evaluate(trained):
    data = load_set("debug", data_dir=trained / "data")
    image = data["images"][0]
    classify = get_tool("classify", weights=str(trained / "clip"))
    assert set(classify(image=image, labels=["a", "b"])["probs"]) == {"a", "b"}
    assert isinstance(get_tool("caption", weights=str(trained / "vlm"))(image=image)["caption"], str)
    assert get_tool("generate", weights=str(trained / "diffusion"))(prompt="a red block", steps=2)["image"].shape \
        == (16, 16, 3)
    from vla.models.clip import load_clip
    from vla.models.vlm import load_vlm

    zero = ev.eval_clip_zero_shot(load_clip(str(trained / "clip")), data)
    assert 0 <= zero["acc"] <= min(zero["color_acc"], zero["shape_acc"]) <= 1 and zero["n"] > 0
    vlm = load_vlm(str(trained / "vlm"))
    vqa = ev.eval_vqa(vlm, data, ev.QuestionOnly(vlm.extra["baseline.json"]))
    assert 0 <= vqa["acc"] <= 1 and 0 <= vqa["question_only_acc"] <= 1 and vqa["n"] > 0
    every = ev.qa_set(data["annotations"], seed=12345)
    assert vqa["n"] + vqa["n_hidden"] == len(every) and 0 <= vqa["acc_with_hidden"] <= 1
    blind = ev.eval_vqa(vlm, dict(data, seg=np.zeros_like(data["seg"])), None)   # the image shows no object
    assert blind["n"] == sum(q["refs"] == [[]] for _, q in every) and blind["n_hidden"] == len(every) - blind["n"]
    # only "is there a ...? no", "how many ...? 0" and "holding nothing" are left
    assert set(blind["by_type"]) <= {"existence", "count", "holding"}
    checks = ev.eval_vqa(vlm, data, ev.QuestionOnly(vlm.extra["baseline.json"]), types=ev.qa_data.CHECK_TYPES)
    assert checks["n"] > 0 and set(checks["by_type"]) <= set(ev.qa_data.CHECK_TYPES) and "on" in checks["by_type"]
    assert set(vlm.extra["baseline.json"]["type"]) >= {"on", "colour"}      # trained on the step checks too
    caps = ev.eval_captions(vlm, data)
    assert all(0 <= caps[k] <= 1 for k in ("precision", "recall", "recall_with_hidden"))
    assert ev.eval_captions(vlm, dict(data, seg=np.zeros_like(data["seg"])))["recall"] == 0.0
    found = ev.eval_objects(vlm, data)
    assert set(found) == {"recall", "precision", "count_exact"} and all(0 <= v <= 1 for v in found.values())
    from vla.models.diffusion import load_diffusion

    diff = ev.eval_diffusion(load_diffusion(str(trained / "diffusion")), vlm, data, n=2, steps=1)
    assert diff["images"].shape == (2, 16, 16, 3) and diff["images_per_s"] > 0
    assert all(0 <= diff[k] <= 1 for k in ("attr_acc", "object_acc", "real_attr_acc", "real_object_acc"))
    assert diff["vae_attr_acc"] is None and diff["vae_object_acc"] is None          # pixel space: no VAE
    run = json.loads((trained / "vlm" / "run.json").read_text())
    assert run["run"]["name"] == "debug" and run["metrics"]["steps"] == 2
    assert run["run"]["model"]["objects"] == 4 and run["metrics"]["centre_loss"] > 0   # trained on true centres
    assert run["metrics"]["role_loss"] > 0                        # and on which objects each question names


def test_question_only_baseline_answers_the_majority():
    qas = [{"type": "existence", "question": "is there a red block?", "answer": a} for a in ("yes", "yes", "no")]
    qas.append({"type": "count", "question": "how many bowls are there?", "answer": "2"})
    base = ev.QuestionOnly.fit(qas)
    assert base(qas[0]) == "yes"
    assert base({"type": "count", "question": "how many blocks are there?", "answer": "1"}) == "2"
    assert np.isclose(np.mean([base(q) == q["answer"] for q in qas]), 0.75)


def test_latent_diffusion_trains_its_vae_then_reuses_it(trained, tmp_path):
    """The latent preset trains the VAE, scales its latents to unit variance and samples full-size images; a second
    run with vae_from takes that VAE unchanged, one with init the whole model; a pixel-space checkpoint as vae_from
    is refused."""
    from vla import VLAError
    from vla.models.diffusion import load_diffusion

    run = load_run("diffusion", "latent_debug", [f"clip={trained / 'clip'}"])
    metrics = train_diffusion(run, str(tmp_path / "a"), data_dir=trained / "data")
    assert metrics["vae_steps"] == 2 and metrics["steps"] == 2
    first = load_diffusion(str(tmp_path / "a"))
    assert first.vae is not None and first.cfg.latent_scale != 1.0
    image = get_tool("generate", weights=str(tmp_path / "a"))(prompt="a red block", steps=2)["image"]
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    from vla.models.vlm import load_vlm

    scenes = load_set("debug", data_dir=trained / "data")
    scored = ev.eval_diffusion(first, load_vlm(str(trained / "vlm")), scenes, n=2, steps=1)
    assert 0 <= scored["vae_attr_acc"] <= 1 and 0 <= scored["vae_object_acc"] <= 1   # the scenes through the VAE
    through = ev._through_vae(first, scenes["images"][:3], batch=2)
    assert through.shape == (3, 16, 16, 3) and through.dtype == np.uint8
    again = load_run("diffusion", "latent_debug", [f"clip={trained / 'clip'}", f"vae_from={tmp_path / 'a'}"])
    metrics = train_diffusion(again, str(tmp_path / "b"), data_dir=trained / "data")
    assert "vae_steps" not in metrics
    second = load_diffusion(str(tmp_path / "b"))
    assert second.cfg.latent_scale == first.cfg.latent_scale
    for (k, a), b in zip(first.vae.state_dict().items(), second.vae.state_dict().values()):
        assert torch.equal(a, b), k
    # init continues a checkpoint: with no steps the UNet, VAE and scale come back unchanged
    cont = load_run("diffusion", "latent_debug", [f"init={tmp_path / 'a'}", "train.steps=0", "clip=/nonexistent"])
    train_diffusion(cont, str(tmp_path / "d"), data_dir=trained / "data")
    third = load_diffusion(str(tmp_path / "d"))
    assert third.cfg.latent_scale == first.cfg.latent_scale
    for (k, a), b in zip(first.unet.state_dict().items(), third.unet.state_dict().values()):
        assert torch.equal(a, b), k
    bad = load_run("diffusion", "latent_debug", [f"clip={trained / 'clip'}", f"vae_from={trained / 'diffusion'}"])
    with pytest.raises(VLAError, match="is not a latent diffusion checkpoint"):
        train_diffusion(bad, str(tmp_path / "c"), data_dir=trained / "data")


def test_diffusion_captions_name_only_what_the_image_shows(trained):
    """With visible_only (the default) an object whose pixels the segmentation lacks leaves the caption; without
    it every annotated object is named."""
    data = load_set("debug", data_dir=trained / "data")
    ann, seg = data["annotations"][0], data["seg"][:1].copy()
    shown = [o for o in ann["objects"] if (seg[0] == o["id"]).sum() >= 5]
    gone = shown[0]
    seg[seg == gone["id"]] = 0
    one = {"images": data["images"][:1], "seg": seg, "annotations": [ann]}
    words = f"{gone['color']} {gone['shape']}"
    everything, visible = caption_set(one, visible_only=False)[0], caption_set(one)[0]
    assert words in everything and words not in visible
    assert all(f"{o['color']} {o['shape']}" in visible for o in shown[1:])


def test_vae_decoder_fine_tuning_keeps_the_encoder_and_the_unet(trained, tmp_path):
    """vae_decoder=true changes the decoder alone: the encoder, its latent scale and the UNet come back unchanged,
    so the latents the UNet learnt still mean what they did; without init it is refused."""
    from vla import VLAError
    from vla.models.diffusion import load_diffusion

    run = load_run("diffusion", "latent_debug", [f"clip={trained / 'clip'}", "train.steps=0"])
    train_diffusion(run, str(tmp_path / "a"), data_dir=trained / "data")
    first = load_diffusion(str(tmp_path / "a"))
    tune = load_run("diffusion", "latent_debug", [f"init={tmp_path / 'a'}", "vae_decoder=true", "train.steps=0",
                                                  "vae_train.steps=3", "vae_train.lr=0.01"])
    metrics = train_diffusion(tune, str(tmp_path / "b"), data_dir=trained / "data")
    assert metrics["vae_steps"] == 3 and "steps" not in metrics
    tuned = load_diffusion(str(tmp_path / "b"))
    assert tuned.cfg.latent_scale == first.cfg.latent_scale
    before, after = first.vae.state_dict(), tuned.vae.state_dict()
    for k in before:
        if not k.startswith(("decoder.", "post_quant_conv.")):
            assert torch.equal(before[k], after[k]), k
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    for (k, a), b in zip(first.unet.state_dict().items(), tuned.unet.state_dict().values()):
        assert torch.equal(a, b), k
    bad = load_run("diffusion", "latent_debug", [f"clip={trained / 'clip'}", "vae_decoder=true"])
    with pytest.raises(VLAError, match="give init=CHECKPOINT"):
        train_diffusion(bad, str(tmp_path / "c"), data_dir=trained / "data")


def test_diffusion_ema_saves_the_average_of_the_trained_weights(trained, tmp_path):
    """The same seeded run with and without `ema`: the EMA checkpoint is not the last weights but lies between
    the starting and the last ones (it averages the trajectory)."""
    from vla.models.diffusion import load_diffusion

    base = [f"init={trained / 'diffusion'}", "train.steps=3", "train.lr=0.01"]
    train_diffusion(load_run("diffusion", "debug", base), str(tmp_path / "last"), data_dir=trained / "data")
    train_diffusion(load_run("diffusion", "debug", [*base, "ema=0.999"]), str(tmp_path / "ema"),
                    data_dir=trained / "data")
    flat = lambda path: torch.cat([p.flatten() for p in load_diffusion(str(path)).unet.parameters()])  # noqa: E731
    start, last, ema = flat(trained / "diffusion"), flat(tmp_path / "last"), flat(tmp_path / "ema")
    assert not torch.equal(ema, last) and not torch.equal(ema, start)
    assert (ema - last).norm() < (start - last).norm() and (ema - start).norm() < (last - start).norm()


def test_only_diffusion_trains_on_cuda_and_says_when_there_is_none():
    from vla import VLAError

    for kind in ("clip", "vlm", "goal"):
        with pytest.raises(VLAError, match=f"not available for `vla train {kind}`; allowed: cpu"):
            load_run(kind, "debug" if kind != "goal" else "default", ["train.device=cuda"])
    with pytest.raises(VLAError, match="allowed: cpu, cuda"):
        load_run("diffusion", "latent_debug", ["train.device=tpu"])
    if not torch.cuda.is_available():
        run = load_run("diffusion", "latent_debug", ["train.device=cuda"])
        with pytest.raises(VLAError, match="no CUDA device"):
            train_diffusion(run, "/nonexistent/out")


def test_object_masks_and_vae_crops_follow_the_segmentation():
    import random

    from vla.agent.perception.train_diffusion import object_masks, vae_crops

    seg = np.zeros((2, 32, 32), np.uint8)
    seg[0, 20:22, 5:7] = 3                     # one small object in the first scene, none in the second
    masks = object_masks(seg, 8)               # 4x4 cells: the object touches cells (5, 1)
    assert masks.shape == (2, 1, 8, 8) and masks.sum() == 1 and masks[0, 0, 5, 1] == 1
    full = object_masks(seg, 32)
    images = torch.rand(2, 3, 32, 32)
    images[:, 0] = full[:, 0]                  # channel 0 shows the mask: crops of image and mask must agree
    x, m = vae_crops(images, full, 8, 200, random.Random(0))
    assert x.shape == (200, 3, 8, 8) and m.shape == (200, 1, 8, 8)
    assert torch.equal(x[:, :1], m)
    with_object = int((m.flatten(1).amax(1) > 0).sum())
    assert 30 < with_object < 90               # a quarter are centred on it (half of the first scene's), a few more
    # are random windows that happen to hold it


def test_fine_only_trains_the_full_resolution_heatmap_and_nothing_else(trained, tmp_path):
    from vla import VLAError
    from vla.models.vlm import load_vlm

    base = str(trained / "vlm")
    run = load_run("vlm", "debug", [f"init={base}", "model.object_fine=true", "fine_only=true"])
    metrics = train_vlm(run, str(tmp_path / "fine"), data_dir=trained / "data")
    assert metrics["steps"] == 2 and np.isfinite(metrics["fine_loss"])
    before, after = load_vlm(base).net.state_dict(), load_vlm(str(tmp_path / "fine")).net.state_dict()
    added = sorted(set(after) - set(before))
    assert added and all(k.startswith("objects.fine.") for k in added)
    for key, value in before.items():
        torch.testing.assert_close(after[key], value, msg=key)
    assert load_vlm(str(tmp_path / "fine")).net.cfg.object_fine
    # trained with the rest from the start, its loss joins the detector's
    joint = train_vlm(load_run("vlm", "debug", ["model.object_fine=true"]), str(tmp_path / "joint"),
                      data_dir=trained / "data")
    assert np.isfinite(joint["centre_loss"]) and any(k.startswith("objects.fine.") for k in
                                                     load_vlm(str(tmp_path / "joint")).net.state_dict())
    with pytest.raises(VLAError, match="object_fine"):
        train_vlm(load_run("vlm", "debug", [f"init={base}", "fine_only=true"]), str(tmp_path / "no"),
                  data_dir=trained / "data")

