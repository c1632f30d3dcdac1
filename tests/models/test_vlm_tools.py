"""Captioning/VQA: every preset trains a step, saves and loads; greedy generation is deterministic; a tiny
Hugging Face BLIP-2 directory runs through transformers; wrong checkpoints and long questions are refused."""
import json

import numpy as np
import pytest
import torch

from vla import VLAError
from vla.agent.perception.runs import load_run, presets
from vla.models.tools import get_tool
from vla.models.vlm import CAPTION_PROMPT, load_vlm, new_vlm


pytestmark = pytest.mark.usefixtures("one_thread")


SENTENCES = ["a small red block in a green bowl", "what colour is the bowl? green", "is there a red block? yes"]


def _images(n=2, size=40):
    return np.random.default_rng(0).integers(0, 255, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("preset", presets("vlm"))
def test_every_preset_trains_saves_and_loads(preset, tmp_path):
    run = load_run("vlm", preset)
    run.model.vision.weights = None
    vlm = new_vlm(run.model, SENTENCES)
    vlm.net.train()
    loss, metrics = vlm.net(_images(), [CAPTION_PROMPT, "what colour is the bowl?"],
                            ["a small red block in a green bowl", "green"])
    loss.backward()
    assert torch.isfinite(loss) and 0 <= float(metrics["token_acc"]) <= 1
    assert vlm.net.bridge.query_tokens.grad.abs().sum() > 0
    vlm.net.eval()
    vlm.save(tmp_path / "vlm", half=False, extra={"baseline.json": {"question": {}, "type": {}}})
    again = load_vlm(str(tmp_path / "vlm"))
    assert again.captions(_images()) == vlm.captions(_images())
    assert again.extra["baseline.json"] == {"question": {}, "type": {}}


@pytest.mark.parametrize("text_input", [False, True])
def test_the_queries_read_the_question_only_with_text_input(text_input):
    """InstructBLIP's bridge: with `bridge.text_input` the Q-Former's queries depend on the question."""
    run = load_run("vlm", "debug")
    run.model.bridge.text_input = text_input
    vlm = new_vlm(run.model, SENTENCES)
    vlm.net.eval()
    images = _images(1).repeat(2, 0)
    with torch.no_grad():
        embeds, _, _ = vlm.net.prefix(images, ["what colour is the bowl?", "is there a red block?"])
    q = run.model.bridge.num_queries
    assert torch.allclose(embeds[0, :q], embeds[1, :q]) != text_input
    assert (vlm.net.text_to_bridge is not None) == text_input


def test_conv_stem_starts_at_zero_trains_beside_a_frozen_tower_and_matches_its_cache():
    """`vision.conv_stem`: the side branch adds nothing at init, gets gradients while the tower is frozen, and
    the cached-tower path (training) computes exactly what the uncached path (inference) does."""
    run = load_run("vlm", "debug")
    run.model.vision.freeze = True
    plain = new_vlm(run.model, SENTENCES)
    run.model.vision.conv_stem = 8
    torch.manual_seed(0)
    vlm = new_vlm(run.model, SENTENCES)
    vlm.net.vision.tower.load_state_dict(plain.net.vision.tower.state_dict())
    images, prompts, answers = _images(), ["what colour is the bowl?"] * 2, ["green"] * 2
    with torch.no_grad():
        assert torch.equal(vlm.net.patches(images), plain.net.patches(images))
    opt = torch.optim.AdamW([p for p in vlm.net.parameters() if p.requires_grad], lr=3e-3)
    for _ in range(3):
        loss, _ = vlm.net(images, prompts, answers)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(p.grad is None for p in vlm.net.vision.tower.parameters())
    assert vlm.net.vision.stem.proj.weight.abs().sum() > 0
    with torch.no_grad():
        stem = vlm.net.patches(images) - plain.net.patches(images)
        assert stem.abs().max() > 0
        cached = vlm.net.tower_tokens(images)
        assert torch.allclose(vlm.net(images, prompts, answers, cached)[0], vlm.net(images, prompts, answers)[0])


def test_deeper_conv_stem_sees_shapes_and_one_layer_keeps_the_shipped_layout():
    """`vision.conv_stem_depth`: depth 1 is the layout shipped checkpoints hold; depth 3 sees a 7-pixel window (a
    pixel's feature changes when a pixel 3 away changes, which depth 1 cannot see); 0 is a config error."""
    from vla.models.vision import ConvStem

    assert [k for k in ConvStem(4, 12, 16).state_dict()] == [
        "convs.0.weight", "convs.0.bias", "convs.2.weight", "convs.2.bias", "proj.weight", "proj.bias"]
    x = torch.zeros(1, 3, 24, 24)
    poked = x.clone()
    poked[0, :, 12, 15] = 1.0                                   # 3 pixels right of pixel (12, 12)
    for depth, sees in ((1, False), (3, True)):
        torch.manual_seed(0)
        stem = ConvStem(4, 12, 16, depth)
        with torch.no_grad():
            changed = (stem.convs(poked) - stem.convs(x))[0, :, 12, 12].abs().max() > 0
        assert bool(changed) == sees
    run = load_run("vlm", "debug")
    run.model.vision.conv_stem, run.model.vision.conv_stem_depth = 8, 0
    with pytest.raises(VLAError, match="conv_stem_depth"):
        new_vlm(run.model, SENTENCES)


def test_generation_learns_a_fixed_answer():
    run = load_run("vlm", "debug")
    vlm = new_vlm(run.model, SENTENCES)
    opt = torch.optim.AdamW(vlm.net.parameters(), lr=3e-3)
    for _ in range(30):
        loss, _ = vlm.net(_images(), ["what colour is the bowl?"] * 2, ["green"] * 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    vlm.net.eval()
    assert vlm.answers(_images(), ["what colour is the bowl?"] * 2) == ["green", "green"]


def test_bad_questions_and_wrong_checkpoint(tmp_path):
    run = load_run("vlm", "debug")
    vlm = new_vlm(run.model, SENTENCES)
    with pytest.raises(VLAError, match="1 to 16 words"):
        vlm.answer(_images(1)[0], "is " * 30)
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "config.json").write_text(json.dumps({"tool": "clip"}))
    with pytest.raises(VLAError, match="for the 'clip' tool, not for 'vlm'"):
        load_vlm(str(tmp_path / "clip"))
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(VLAError, match="blip-2 or llava"):
        load_vlm(str(tmp_path / "bert"))


@pytest.fixture(scope="module")
def tiny_blip2(tmp_path_factory):
    """A tiny BLIP-2 (ViT -> Q-Former -> OPT) with its processor, saved as a Hugging Face directory."""
    from transformers import (Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, Blip2QFormerConfig,
                              Blip2VisionConfig, BlipImageProcessor, OPTConfig)

    from vla.models.llm import build_word_tokenizer

    tok = build_word_tokenizer(["question: what colour is the bowl? answer: red green a block"])
    tok.add_special_tokens({"bos_token": "</s>", "eos_token": "</s>"})
    proc = Blip2Processor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok,
                          num_query_tokens=4)
    cfg = Blip2Config(
        vision_config=Blip2VisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                        num_attention_heads=2, image_size=32, patch_size=8).to_dict(),
        qformer_config=Blip2QFormerConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                          intermediate_size=64, encoder_hidden_size=32).to_dict(),
        text_config=OPTConfig(hidden_size=32, num_hidden_layers=1, ffn_dim=64, num_attention_heads=2,
                              vocab_size=len(tok), word_embed_proj_dim=32, max_position_embeddings=64,
                              bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                              pad_token_id=tok.pad_token_id).to_dict(),
        num_query_tokens=4, image_token_index=tok.convert_tokens_to_ids(str(proc.image_token)))
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("blip2") / "blip2"
    Blip2ForConditionalGeneration(cfg).save_pretrained(path)
    proc.save_pretrained(path)
    return path


def test_hf_blip2_directory_runs_through_the_tools(tiny_blip2):
    vlm = load_vlm(str(tiny_blip2))
    assert type(vlm.model).__name__ == "Blip2ForConditionalGeneration"
    answer = get_tool("vqa", weights=str(tiny_blip2))(image=_images(1)[0], question="what colour is the bowl?")
    assert isinstance(answer["answer"], str)
    assert answer == get_tool("vqa", weights=str(tiny_blip2))(image=_images(1)[0], question="what colour is the bowl?")
    assert isinstance(get_tool("caption", weights=str(tiny_blip2))(image=_images(1)[0])["caption"], str)


def test_a_continued_run_adds_the_new_words_of_its_data(tmp_path):
    vlm = new_vlm(load_run("vlm", "tiny").model, SENTENCES)
    tok = vlm.net.tokenizer
    known, sep, eos = tok.get_vocab(), tok.sep_token_id, tok.eos_token_id
    rows = vlm.net.llm.get_input_embeddings().weight.detach().clone()
    assert tok.convert_tokens_to_ids("touching") == tok.unk_token_id
    assert vlm.add_words(["is the gripper touching the red block?", "is the block next to the bowl?"]) == \
        ["gripper", "touching", "next", "to"]
    assert vlm.add_words(["is the gripper touching the red block?"]) == []        # nothing new the second time
    tok = vlm.net.tokenizer
    assert {w: tok.get_vocab()[w] for w in known} == known and (tok.sep_token_id, tok.eos_token_id) == (sep, eos)
    ids = tok("the gripper touching", add_special_tokens=False)["input_ids"]
    assert ids[1:] == [len(known), len(known) + 1] and len(tok) == len(known) + 4
    emb, head = vlm.net.llm.get_input_embeddings().weight, vlm.net.llm.get_output_embeddings().weight
    assert emb.shape[0] == head.shape[0] == len(tok) and torch.equal(emb[:len(known)], rows)
    vlm.net.train()
    loss, _ = vlm.net(_images(), ["is the gripper touching the red block?"] * 2, ["yes", "no"])
    loss.backward()
    assert emb.grad[len(known) + 1].abs().sum() > 0                              # "touching" trains
    vlm.net.eval()
    vlm.save(tmp_path / "grown", half=False)
    again = load_vlm(str(tmp_path / "grown"))
    assert again.net.tokenizer.get_vocab() == tok.get_vocab()
    assert again.answers(_images(), ["is the gripper touching the red block?"] * 2) == \
        vlm.answers(_images(), ["is the gripper touching the red block?"] * 2)
