"""The LLM planner: tool schemas, tool-call parsing in the common chat formats, grounding of the calls, and the
Hugging Face path (local directory, chat template with tools, generate) on a tiny randomly initialised model."""
from __future__ import annotations

import json

import pytest

from vla import VLAError
from vla.agent.planner import Memory, get_planner
from vla.agent.planner.grounding import ground
from vla.agent.planner.llm import parse_tool_calls, steps_from_calls, tool_schemas

pytestmark = pytest.mark.timeout(120)

SCENE = {"objects": [
    {"id": 1, "color": "red", "shape": "block", "size": "small", "position": [0.5, -0.1, 0.02], "in": None, "on": None},
    {"id": 2, "color": "green", "shape": "bowl", "size": None, "position": [0.5, 0.1, 0.0], "in": None, "on": None},
]}


def test_tool_schemas_cover_the_agent_tools_without_image_inputs():
    schemas = {t["function"]["name"]: t["function"] for t in tool_schemas()}
    assert set(schemas) == {"manipulate", "refuse", "vqa", "caption", "locate", "generate"}
    assert schemas["vqa"]["parameters"]["required"] == ["question"]
    assert schemas["caption"]["parameters"]["properties"] == {}
    assert "image" not in json.dumps(schemas["locate"]["parameters"])


@pytest.mark.parametrize("reply", [
    '<tool_call>\n{"name": "manipulate", "arguments": {"instruction": "put the red block in the green bowl"}}\n'
    '</tool_call>\n<tool_call>\n{"name": "caption", "arguments": {}}\n</tool_call>',
    '[TOOL_CALLS] [{"name": "manipulate", "arguments": {"instruction": "put the red block in the green bowl"}},'
    ' {"name": "caption", "arguments": {}}]',
    '<|python_tag|>[{"name": "manipulate", "parameters": {"instruction": "put the red block in the green bowl"}},'
    ' {"name": "caption", "parameters": {}}]<|eom_id|>',
])
def test_tool_calls_in_each_format_become_grounded_steps(reply):
    calls = parse_tool_calls(reply)
    assert [name for name, _ in calls] == ["manipulate", "caption"]
    steps = ground(steps_from_calls(calls, "do it"), SCENE, Memory())
    assert [(s.kind, s.instruction) for s in steps] == [("manipulate", "put the red block in the green bowl"),
                                                        ("describe", None)]
    assert steps[0].objects == {"object": 1, "target": 2}


def test_llm_calls_are_checked_against_the_scene_like_the_grammar():
    steps = ground(steps_from_calls([("manipulate", {"instruction": "put the blue block in the green bowl"})], "x"),
                   SCENE, Memory())
    assert [(s.kind, s.reason) for s in steps] == [("refuse", "I don't see a blue block here.")]
    assert steps_from_calls([("fly", {})], "fly away")[0].reason == "The planner asked for an unknown tool 'fly'."
    assert parse_tool_calls("I am not sure what you mean.") == []
    assert parse_tool_calls("<tool_call>{not json}</tool_call>") == []


def test_missing_or_bad_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(VLAError, match="needs --llm-model DIR"):
        get_planner("llm")
    with pytest.raises(VLAError, match="is not a local model directory"):
        get_planner("llm", model=str(tmp_path))


CHAT_TEMPLATE = (
    "{% if tools %}<|system|>tools: {% for t in tools %}{{ t.function.name }} {% endfor %}\n{% endif %}"
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}")


def _tiny_chat_model(path):
    """A real (random) Llama with a word-level tokenizer and a tool-aware chat template, saved locally."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = "put the red block in green bowl tools manipulate refuse vqa caption locate generate".split()
    vocab = {w: i for i, w in enumerate(["[UNK]", "[PAD]", "<|system|>", "<|user|>", "<|assistant|>"] + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                   eos_token="[PAD]")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(path)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=512,
                      pad_token_id=1, eos_token_id=1, bos_token_id=1)
    LlamaForCausalLM(cfg).save_pretrained(path)


def test_hugging_face_path_runs_and_an_unusable_reply_is_a_refusal(tmp_path):
    _tiny_chat_model(tmp_path)
    planner = get_planner("llm", model=str(tmp_path), max_new_tokens=8)
    prompt = planner.prompt("put the red block in the green bowl", SCENE)
    assert "tools: manipulate refuse" in prompt and "small red block" in prompt
    plan, memory = planner.plan("put the red block in the green bowl", SCENE, Memory())
    assert plan.planner == "llm" and plan.refused  # a random model calls no tool: nothing moves
    assert memory.focus == []
