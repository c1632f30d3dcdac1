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
from vla.agent.perception.train_diffusion import train_diffusion
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
    found = ev.eval_objects(vlm, data)
    assert set(found) == {"recall", "precision", "count_exact"} and all(0 <= v <= 1 for v in found.values())
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
