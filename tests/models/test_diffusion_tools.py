"""Diffusion: every preset trains a step, saves and loads (same samples after reload); a tiny Stable Diffusion
pipeline directory runs through diffusers; long prompts and wrong checkpoints are refused."""
import json
import string

import numpy as np
import pytest
import torch

from vla import VLAError
from vla.agent.perception.runs import load_run, presets
from vla.models.clip import ClipConfig, new_clip
from vla.models.diffusion import load_diffusion, new_diffusion
from vla.models.tools import get_tool


pytestmark = pytest.mark.usefixtures("one_thread")


CLIP = ClipConfig(embed_dim=16, image_size=32, patch_size=8, vision_width=32, vision_layers=1, head_width=16,
                  text_width=16, text_layers=1, text_heads=2, context_length=12)


@pytest.mark.parametrize("preset", presets("diffusion"))
def test_every_preset_trains_saves_and_loads(preset, tmp_path):
    run = load_run("diffusion", preset)
    run.model.image_size = min(run.model.image_size, 16)
    diff = new_diffusion(run.model, new_clip(CLIP, ["a red block in a green bowl"]))
    x = diff.to_model_space(torch.rand(2, 3, 16, 16) * 2 - 1)
    assert x.shape[1:] == diff.cfg.sample_shape
    loss = diff.loss(x, diff.encode(["a red block", ""]), torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is None for p in diff.clip.model.parameters())  # the text encoder stays frozen
    diff.save(tmp_path / "d", half=False)
    again = load_diffusion(str(tmp_path / "d"))
    a = diff.generate_batch(["a red block"], seed=3, steps=2)
    np.testing.assert_array_equal(again.generate_batch(["a red block"], seed=3, steps=2), a)
    assert a.shape == (1, 16, 16, 3) and a.dtype == np.uint8


class ExactUNet(torch.nn.Module):
    """Knows the clean sample `x`, so it outputs the exact training target of its model's `prediction_type` (the
    noise, or sqrt(ab) * noise - sqrt(1 - ab) * x), plus `bump` at pixel (0, 0)."""

    def __init__(self, diff, x, bump: float = 0.0):
        super().__init__()
        self.diff, self.x, self.bump = diff, x, bump

    def forward(self, noisy, t, encoder_hidden_states):
        ab = self.diff.train_scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
        noise = (noisy - ab.sqrt() * self.x) / (1 - ab).sqrt()
        target = noise if self.diff.cfg.prediction_type == "epsilon" else ab.sqrt() * noise - (1 - ab).sqrt() * self.x
        target = target.clone()
        target[:, :, 0, 0] += self.bump
        return type("Out", (), {"sample": target})()


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_the_loss_targets_the_noise_or_the_velocity(prediction):
    """A UNet that outputs exactly the target (the noise, or sqrt(ab) * noise - sqrt(1 - ab) * x) has zero loss."""
    cfg = load_run("diffusion", "debug").model
    cfg.prediction_type = prediction
    diff = new_diffusion(cfg, new_clip(CLIP, ["a red block"]))
    x = torch.rand(2, 3, cfg.image_size, cfg.image_size) * 2 - 1

    diff.unet = ExactUNet(diff, x)
    assert float(diff.loss(x, diff.encode(["a red block", ""]), torch.Generator().manual_seed(0))) < 1e-8
    assert diff.train_scheduler.config.prediction_type == prediction
    cfg.prediction_type = "sample"
    with pytest.raises(VLAError, match="prediction_type must be"):
        new_diffusion(cfg, new_clip(CLIP, ["a red block"]))


def test_object_weight_scales_the_error_where_the_mask_is():
    """A UNet wrong by 1 at one pixel only: unweighted, the loss is 1 / pixels; with weight 1 + 9 there, the pixel
    counts 10 / mean(weight) times as much; a uniform weight changes nothing."""
    cfg = load_run("diffusion", "debug").model
    diff = new_diffusion(cfg, new_clip(CLIP, ["a red block"]))
    x = torch.rand(2, 3, cfg.image_size, cfg.image_size) * 2 - 1

    diff.unet = ExactUNet(diff, x, bump=1.0)
    cond = diff.encode(["a red block", ""])
    pixels = cfg.image_size ** 2
    loss = lambda w: float(diff.loss(x, cond, torch.Generator().manual_seed(0), weight=w))  # noqa: E731
    assert loss(None) == pytest.approx(1 / pixels, rel=1e-4)
    assert loss(torch.full((2, 1, cfg.image_size, cfg.image_size), 3.0)) == pytest.approx(1 / pixels, rel=1e-4)
    w = torch.ones(2, 1, cfg.image_size, cfg.image_size)
    w[:, :, 0, 0] = 10.0
    assert loss(w) == pytest.approx(10 / float(w[0].mean()) / pixels, rel=1e-4)


def test_latent_model_decodes_to_full_size_and_checks_its_checkpoint(tmp_path):
    """A latent model denoises (4, S/2, S/2) latents and returns S x S images; a checkpoint whose VAE does not
    match its config is one clear error; latents and pixels map back and forth in [-1, 1]."""
    cfg = load_run("diffusion", "latent_debug").model
    diff = new_diffusion(cfg, new_clip(CLIP, ["a red block"]))
    assert cfg.sample_shape == (4, 8, 8) and diff.vae is not None
    z = diff.to_model_space(torch.rand(3, 3, 16, 16) * 2 - 1)
    assert z.shape == (3, 4, 8, 8)
    back = diff.to_images(z)
    assert back.shape == (3, 3, 16, 16) and float(back.abs().max()) <= 1.0
    ddim = diff.generate_batch(["a red block"], steps=2)
    assert ddim.shape == (1, 16, 16, 3)
    diff.cfg.sampler = "dpm"                                          # DPM-Solver++: same shape, other steps
    dpm = diff.generate_batch(["a red block"], steps=2)
    np.testing.assert_array_equal(diff.generate_batch(["a red block"], steps=2), dpm)
    assert dpm.shape == (1, 16, 16, 3) and not np.array_equal(dpm, ddim)
    diff.save(tmp_path / "d", half=False)
    assert load_diffusion(str(tmp_path / "d")).cfg.sampler == "dpm"   # the sampler travels with the checkpoint
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    config["model"]["vae_channels"] = [8, 32]
    (tmp_path / "d" / "config.json").write_text(json.dumps(config))
    with pytest.raises(VLAError, match="does not match its config"):
        load_diffusion(str(tmp_path / "d"))
    with pytest.raises(VLAError, match=r"sampler must be one of \['ddim', 'dpm'\], got 'euler'"):
        new_diffusion(dict(vars(cfg), sampler="euler"), new_clip(CLIP, ["a red block"]))
    cfg.image_size = 15
    with pytest.raises(VLAError, match="not divisible"):
        new_diffusion(cfg, new_clip(CLIP, ["a red block"]))


def test_prompt_too_long_and_wrong_checkpoint(tmp_path):
    diff = new_diffusion(load_run("diffusion", "debug").model, new_clip(CLIP, ["a red block"]))
    with pytest.raises(VLAError, match="at most 11"):
        diff.generate("red " * 30, steps=1)
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "config.json").write_text(json.dumps({"tool": "clip"}))
    with pytest.raises(VLAError, match="for the 'clip' tool, not for 'diffusion'"):
        load_diffusion(str(tmp_path / "c"))


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    """A tiny Stable Diffusion pipeline (VAE, CLIP text model with a letter-level BPE vocab, UNet) on disk."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    root = tmp_path_factory.mktemp("sd")
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for c in string.ascii_lowercase:
            vocab[c + suffix] = len(vocab)
    (root / "vocab.json").write_text(json.dumps(vocab))
    (root / "merges.txt").write_text("#version: 0.2\n")
    torch.manual_seed(0)
    tok = CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"), model_max_length=16)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                        num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16,
                                        bos_token_id=0, eos_token_id=1, pad_token_id=1))
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32),
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1,
                                cross_attention_dim=16, attention_head_dim=2, norm_num_groups=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16), latent_channels=4,
                        norm_num_groups=8, sample_size=16)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=DDIMScheduler(),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(root / "pipe")
    return root / "pipe"


def test_stable_diffusion_directory_runs_through_the_tool(tiny_sd):
    tool = get_tool("generate", weights=str(tiny_sd))
    image = tool(prompt="a red block", steps=2, seed=1)["image"]
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(tool(prompt="a red block", steps=2, seed=1)["image"], image)
    with pytest.raises(VLAError, match="at most 16"):
        tool(prompt="a very long prompt indeed", steps=1)


def test_shipped_model_is_latent_and_draws_the_table():
    """The shipped weights: a latent model at the scenes' 96x96, deterministic per seed, whose samples show the
    scene's tan table below and the white backdrop above (the medians of real renders: (191, 167, 131) / white)."""
    diff = load_diffusion("default")
    assert diff.vae is not None and diff.cfg.image_size == 96 and diff.cfg.latent_scale != 1.0
    assert diff.cfg.sampler == "dpm"
    a = diff.generate("a red block in a green bowl", seed=1, steps=8)
    np.testing.assert_array_equal(diff.generate("a red block in a green bowl", seed=1, steps=8), a)
    assert a.shape == (96, 96, 3)
    table = np.median(a[60:90].reshape(-1, 3), 0)
    assert np.abs(table - [191, 167, 131]).max() < 20, table
    assert np.median(a[:15].reshape(-1, 3), 0).min() > 230
