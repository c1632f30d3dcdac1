"""Pretrained pieces through the real loading paths: a tiny OpenCLIP checkpoint file (safetensors and a
weights-only torch file), a tiny saved BLIP-2 model and Q-Former, and a tiny saved transformers LM with its
tokenizer; plus the action tokenizer's round trip."""
from __future__ import annotations

import json

import pytest
import torch

from vla import VLAError
from vla.models.action_tokenizer import ActionTokenizer
from vla.models.llm import LLMConfig, build_llm, build_word_tokenizer, load_tokenizer
from vla.models.policy.config import load_config
from vla.models.policy.policy import VLAPolicy
from vla.models.qformer import BridgeConfig, build_bridge
from vla.models.vision import VisionConfig, VisionEncoder

VISION = dict(image_size=32, patch_size=16, width=32, layers=1, head_width=16)
STATS = {"action": {"q01": [-0.05] * 4 + [0.0], "q99": [0.05] * 4 + [1.0]},
         "state": {"mean": [0.0] * 12, "std": [1.0] * 12}}


def _tiny_open_clip():
    import open_clip

    torch.manual_seed(3)
    return open_clip.CLIP(embed_dim=16, vision_cfg=VISION,
                          text_cfg=dict(context_length=8, vocab_size=50, width=16, heads=2, layers=1))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_vision_loads_open_clip_checkpoint_file(tmp_path, suffix):
    from safetensors.torch import save_file

    model = _tiny_open_clip()
    path = tmp_path / f"open_clip_tiny{suffix}"
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(path)) if suffix == ".safetensors" else torch.save({"state_dict": sd}, path)
    enc = VisionEncoder(VisionConfig(**VISION, weights=str(path)))
    assert torch.equal(enc.tower.conv1.weight, model.visual.conv1.weight)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        _, want = model.visual.__class__.forward(_with_tokens(model.visual), enc.preprocess(x))
        assert torch.allclose(enc(enc.preprocess(x)), want, atol=1e-6)
    with pytest.raises(VLAError, match="no vision tower matching"):
        VisionEncoder(VisionConfig(**{**VISION, "width": 64}, weights=str(path)))


def _with_tokens(visual):
    visual.output_tokens = True
    return visual


def test_vision_errors_are_clear(tmp_path):
    with pytest.raises(VLAError, match="do not exist"):
        VisionEncoder(VisionConfig(**VISION, weights=str(tmp_path / "missing.safetensors")))
    with pytest.raises(VLAError, match="Did you mean 'ViT-B-16'"):
        VisionEncoder(VisionConfig(arch="ViT-B-1"))


def _tiny_blip2_config():
    from transformers import Blip2Config

    return Blip2Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16),
        qformer_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            encoder_hidden_size=32, vocab_size=100),
        text_config=dict(model_type="opt", vocab_size=100, hidden_size=32, num_hidden_layers=1, ffn_dim=64,
                         num_attention_heads=2, word_embed_proj_dim=32, max_position_embeddings=64),
        num_query_tokens=6)


def test_qformer_loads_saved_blip2_model_and_resolves_sizes(tmp_path):
    from transformers import Blip2ForConditionalGeneration

    torch.manual_seed(0)
    blip2 = Blip2ForConditionalGeneration(_tiny_blip2_config())
    blip2.save_pretrained(tmp_path / "blip2")
    cfg = BridgeConfig(weights=str(tmp_path / "blip2"))            # sizes left at defaults on purpose
    bridge = build_bridge(cfg, vision_width=32, out_dim=24)
    assert (cfg.num_queries, cfg.hidden_size, cfg.layers) == (6, 32, 2)
    assert torch.equal(bridge.query_tokens, blip2.query_tokens)
    ref = dict(blip2.qformer.named_parameters())
    assert all(torch.equal(p, ref[n]) for n, p in bridge.qformer.named_parameters())
    assert bridge(torch.randn(2, 4, 32)).shape == (2, 6, 24)
    # InstructBLIP-style text input: the BLIP-2 weights load, the text feed-forward starts fresh
    texted = build_bridge(BridgeConfig(weights=str(tmp_path / "blip2"), text_input=True), 32, 24)
    assert torch.equal(texted.query_tokens, blip2.query_tokens)
    patches, text = torch.randn(2, 4, 32), torch.randn(2, 5, 32)
    assert texted(patches, text).shape == (2, 6, 24)
    assert not torch.allclose(texted(patches, text), texted(patches, -text))
    with pytest.raises(VLAError, match="expects vision width 32"):
        build_bridge(BridgeConfig(weights=str(tmp_path / "blip2")), vision_width=48, out_dim=24)


def test_qformer_loads_saved_blip2_qformer(tmp_path):
    from transformers import Blip2QFormerConfig, Blip2QFormerModel

    torch.manual_seed(1)
    qf = Blip2QFormerModel(Blip2QFormerConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                              intermediate_size=64, encoder_hidden_size=32))
    qf.save_pretrained(tmp_path / "qf")
    assert json.loads((tmp_path / "qf" / "config.json").read_text())["model_type"] == "blip_2_qformer"
    bridge = build_bridge(BridgeConfig(weights=str(tmp_path / "qf"), num_queries=3), 32, 16)
    ref = dict(qf.named_parameters())
    assert all(torch.equal(p, ref[n]) for n, p in bridge.qformer.named_parameters())


def test_llm_and_tokenizer_load_from_saved_directory_and_policy_uses_them(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = build_word_tokenizer(["pick up the red block", "stack it"])
    torch.manual_seed(2)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=2, intermediate_size=64))
    lm.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    cfg = LLMConfig(pretrained=str(tmp_path / "lm"))
    grown = build_llm(cfg, vocab_size=len(tok) + 5)
    rows = lm.get_input_embeddings().weight
    assert torch.equal(grown.get_input_embeddings().weight[: len(tok)], rows)
    assert cfg.hidden_size == 32 and cfg.hf_config["vocab_size"] == len(tok) + 5
    assert load_tokenizer(tmp_path / "lm")("pick up")["input_ids"] == tok("pick up")["input_ids"]
    policy = VLAPolicy.create(load_config("debug", [f"model.llm.pretrained={tmp_path / 'lm'}",
                                                    "model.llm.lora_rank=4"]), STATS, ["ignored"])
    assert policy.net.actions.offset == len(tok)
    trainable = {n for n, p in policy.net.llm.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable) and not any(n.endswith("q_proj.base_layer.weight") for n in trainable)
    with pytest.raises(VLAError, match="no config.json"):
        build_llm(LLMConfig(pretrained=str(tmp_path)), 10)


def test_action_tokenizer_round_trip_within_half_a_bin():
    low, high = torch.tensor([-0.05, -0.02, 0.0, -0.3, 0.0]), torch.tensor([0.05, 0.04, 0.01, 0.3, 1.0])
    at = ActionTokenizer(low, high, gripper_dims=(4,), n_bins=256, offset=1000)
    x = low + torch.rand(10_000, 5) * (high - low)
    x[:, 4] = (torch.rand(10_000) > 0.5).float()
    ids = at.encode(x)
    assert ids.min() >= 1000 and ids.max() < 1000 + at.vocab_size
    err = (at.decode(ids) - x).abs()
    assert (err[:, :4] <= at.bin_width[:4] / 2 + 1e-7).all()
    assert torch.equal(at.decode(ids)[:, 4], x[:, 4])
    centres = at.decode(torch.tensor([[1000, 1255, 1000, 1000, 1256]]))[0]
    assert centres[0] == pytest.approx(-0.05 + 0.1 / 512) and centres[1] == pytest.approx(0.04 - 0.06 / 512)
    outside = at.encode(torch.tensor([[1.0, -1.0, 0.5, 0.0, 0.7]]))[0] - 1000
    assert outside.tolist() == [255, 0, 255, 128, 257]
    assert ActionTokenizer.from_dict(at.to_dict()).to_dict() == at.to_dict()


def test_position_mix_makes_pooled_patches_position_dependent():
    from vla.models.qformer import PositionMix

    torch.manual_seed(0)
    mix = PositionMix(num_patches=4, width=8)
    red, table = torch.randn(8), torch.randn(8)
    left = torch.stack([red, table, table, table])[None]      # (1, 4, 8): the red patch on the left
    right = torch.stack([table, red, table, table])[None]     # the same patches, red one step right
    assert torch.allclose(left.mean(1), right.mean(1))         # plain pooling cannot tell them apart
    assert not torch.allclose(mix(left).mean(1), mix(right).mean(1), atol=1e-3)
    bridge = build_bridge(BridgeConfig(kind="mlp", hidden_size=16, position_mix=True), 8, 12, num_patches=4)
    assert bridge(left).shape == (1, 4, 12)
    with pytest.raises(VLAError, match="number of patch tokens"):
        build_bridge(BridgeConfig(position_mix=True), 8, 12)


def test_project_path_takes_absolute_then_working_directory_then_the_repository_root(tmp_path, monkeypatch):
    from vla import ROOT, project_path

    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    assert project_path(tmp_path / "x") == tmp_path / "x"
    assert project_path("mine").resolve() == tmp_path.resolve() / "mine"                # exists here: kept
    assert project_path("models/weights/clip") == ROOT / "models/weights/clip"          # a shipped default
