"""CLIP: every preset trains a step, saves and loads; zero-shot/locate outputs; OpenCLIP files load through
open_clip's own code; bad input is one clear error."""
import json

import numpy as np
import open_clip
import pytest
import torch

from vla import ROOT, VLAError
from vla.agent.perception.runs import load_run, presets
from vla.models.clip import ClipConfig, load_clip, new_clip


pytestmark = pytest.mark.usefixtures("one_thread")


SENTENCES = ["a small red block in a green bowl", "a blue cylinder left of a yellow bowl"]
TINY = ClipConfig(embed_dim=16, image_size=32, patch_size=8, vision_width=32, vision_layers=1, head_width=16,
                  text_width=16, text_layers=1, text_heads=2, context_length=12)


def _images(n=2, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (n, 40, 40, 3), dtype=np.uint8)


@pytest.mark.parametrize("preset", presets("clip"))
def test_every_preset_trains_saves_and_loads(preset, tmp_path):
    run = load_run("clip", preset)
    clip = new_clip(run.model, SENTENCES)
    clip.model.train()
    img = clip.model.encode_image(clip.pixels(_images()), normalize=True)
    txt = clip.model.encode_text(clip.tokens(SENTENCES), normalize=True)
    loss = open_clip.ClipLoss()(img, txt, clip.model.logit_scale.exp())
    loss.backward()
    assert torch.isfinite(loss) and clip.model.visual.conv1.weight.grad.abs().sum() > 0
    clip.model.eval()
    clip.save(tmp_path / "clip", half=False)
    again = load_clip(str(tmp_path / "clip"))
    np.testing.assert_allclose(again.similarity(_images(), SENTENCES), clip.similarity(_images(), SENTENCES),
                               atol=1e-5)


def test_classify_and_locate_shapes():
    clip = new_clip(TINY, SENTENCES)
    probs = clip.classify(_images(1)[0], ["red block", "green bowl", "blue cylinder"])
    assert probs.shape == (3,) and abs(probs.sum() - 1) < 1e-5
    heat, box, centre, score = clip.locate(_images(1)[0], "the red block")
    assert heat.shape == (4, 4) and heat.min() == 0 and heat.max() == 1
    assert 0 <= box[0] < box[2] <= 40 and 0 <= box[1] < box[3] <= 40
    assert box[0] <= centre[0] <= box[2] and box[1] <= centre[1] <= box[3]
    feats, mask = clip.text_features(["a red block"])
    assert feats.shape == (1, 12, 16) and mask.sum() == 4  # three words + [EOS]


def test_too_long_prompt_is_refused():
    clip = new_clip(TINY, SENTENCES)
    with pytest.raises(VLAError, match="at most 11"):
        clip.encode_texts(["red " * 20])


def test_wrong_tool_checkpoint_and_missing_arch(tmp_path):
    (tmp_path / "vlm").mkdir()
    (tmp_path / "vlm" / "config.json").write_text(json.dumps({"tool": "vlm"}))
    with pytest.raises(VLAError, match="for the 'vlm' tool, not for 'clip'"):
        load_clip(str(tmp_path / "vlm"))
    (tmp_path / "w.safetensors").write_bytes(b"")
    with pytest.raises(VLAError, match="architecture"):
        load_clip(str(tmp_path / "w.safetensors"))
    with pytest.raises(VLAError, match="do not exist"):
        load_clip(str(tmp_path / "missing"))


@pytest.fixture(scope="module")
def tiny_open_clip(tmp_path_factory):
    """A tiny OpenCLIP architecture registered with open_clip, and a checkpoint file of it."""
    root = tmp_path_factory.mktemp("openclip")
    cfg = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8,
                                           "head_width": 16},
           "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
    (root / "configs").mkdir()
    (root / "configs" / "vla-test-tiny.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(str(root / "configs"))
    model = open_clip.create_model("vla-test-tiny")
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "tiny.safetensors"))
    return root, model


def test_open_clip_checkpoint_file_loads_through_open_clip(tiny_open_clip):
    root, reference = tiny_open_clip
    clip = load_clip(str(root / "tiny.safetensors"), arch="vla-test-tiny")
    with torch.no_grad():
        want = reference.eval().encode_text(open_clip.get_tokenizer("vla-test-tiny")(["a red block"]), normalize=True)
    torch.testing.assert_close(clip.encode_texts(["a red block"]), want)
    assert clip.classify(_images(1)[0], ["a red block", "a blue bowl"]).shape == (2,)
    with pytest.raises(VLAError, match="unknown OpenCLIP architecture"):
        load_clip(str(root / "tiny.safetensors"), arch="ViT-B-3")


def test_vision_tower_initialises_the_policy_encoder(tmp_path):
    from vla.models.vision import VisionConfig, VisionEncoder

    clip = new_clip(TINY, SENTENCES)
    clip.save(tmp_path / "clip", half=False)
    enc = VisionEncoder(VisionConfig(image_size=32, patch_size=8, width=32, layers=1, head_width=16,
                                     weights=str(tmp_path / "clip")))
    torch.testing.assert_close(enc.tower.conv1.weight, clip.model.visual.conv1.weight)


def test_shipped_weights_exist_and_fit_the_budget():
    weights = ROOT / "models" / "weights"
    total = sum(f.stat().st_size for tool in ("clip", "vlm", "diffusion") for f in (weights / tool).rglob("*")
                if f.is_file())
    assert total <= 40 * 2**20
