"""Language model wrapper: any transformers causal LM from a config or a local pretrained directory, plus tokenizers.

A small Llama/Qwen-style LM is built from sizes in the config; a local directory (`pretrained`) loads real
weights. After building, the LM's own HF config is written into `hf_config`, so a checkpoint can rebuild the
exact architecture without the original directory. LoRA (peft) wraps large LMs when `lora_rank > 0`.
For the default, `build_word_tokenizer` makes a word-level tokenizer from task sentences (unknown words -> [UNK]).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from vla import VLAError

UNK, PAD = "[UNK]", "[PAD]"


@dataclass
class LLMConfig:
    pretrained: str | None = None    # local HF directory with config.json + weights (and its tokenizer)
    model_type: str = "llama"        # any transformers causal-LM model_type when built from sizes
    hidden_size: int = 256
    layers: int = 4
    heads: int = 4
    kv_heads: int = 4
    intermediate_size: int = 768
    max_positions: int = 512
    tie_embeddings: bool = False
    lora_rank: int = 0               # > 0 wraps the LM with LoRA adapters (peft)
    lora_alpha: int = 32
    freeze: bool = False             # freeze the LM body (LoRA adapters and new token rows still train)
    hf_config: dict | None = None    # filled in on build: the LM's full transformers config


def _sized_config(cfg: LLMConfig, vocab_size: int):
    from transformers import AutoConfig

    try:
        return AutoConfig.for_model(
            cfg.model_type, vocab_size=vocab_size, hidden_size=cfg.hidden_size, num_hidden_layers=cfg.layers,
            num_attention_heads=cfg.heads, num_key_value_heads=cfg.kv_heads,
            intermediate_size=cfg.intermediate_size, max_position_embeddings=cfg.max_positions,
            tie_word_embeddings=cfg.tie_embeddings)
    except ValueError as exc:
        raise VLAError(f"cannot build an LM of model_type {cfg.model_type!r}: {exc}".split("\n")[0]) from None


def build_llm(cfg: LLMConfig, vocab_size: int, load_weights: bool = True) -> nn.Module:
    """A causal LM with `vocab_size` token rows (text + added action tokens); records `cfg.hf_config`."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if load_weights and cfg.pretrained:
        model = _from_pretrained(cfg.pretrained)
    elif cfg.hf_config is not None:
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(**cfg.hf_config))
    else:
        model = AutoModelForCausalLM.from_config(_sized_config(cfg, vocab_size))
    if model.get_input_embeddings().num_embeddings != vocab_size:
        model.resize_token_embeddings(vocab_size, mean_resizing=False)
    cfg.hf_config = model.config.to_dict()
    cfg.hf_config.pop("transformers_version", None)
    cfg.hidden_size = model.config.hidden_size
    if cfg.freeze:
        model.requires_grad_(False)
        model.get_input_embeddings().requires_grad_(True)
        model.get_output_embeddings().requires_grad_(True)
    if cfg.lora_rank > 0:
        model = _add_lora(model, cfg)
    return model


def _from_pretrained(directory: str):
    from transformers import AutoModelForCausalLM

    if not (Path(directory) / "config.json").is_file():
        raise VLAError(f"LM directory {directory!r} has no config.json; give a local transformers model directory.")
    return AutoModelForCausalLM.from_pretrained(directory, local_files_only=True)


def _add_lora(model: nn.Module, cfg: LLMConfig) -> nn.Module:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, target_modules="all-linear",
                      exclude_modules=["lm_head"], task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, lora)
    peft_model.get_input_embeddings().requires_grad_(True)
    peft_model.get_output_embeddings().requires_grad_(True)
    return peft_model


def base_model(llm: nn.Module) -> nn.Module:
    """The transformer body (embeddings -> final norm) of a causal LM, through a peft wrapper if any."""
    model = llm.get_base_model() if hasattr(llm, "get_base_model") else llm
    return model.model


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower())


def build_word_tokenizer(sentences: list[str], vocab: dict[str, int] | None = None):
    """A word-level fast tokenizer over the words in `sentences` (lower-cased, punctuation split off); with `vocab`
    (token -> id), those ids are kept and the new words come after the highest."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = dict(vocab or {PAD: 0, UNK: 1})
    next_id = max(vocab.values()) + 1
    for sentence in sentences:
        for word in words(sentence):
            if word not in vocab:
                vocab[word], next_id = next_id, next_id + 1
    tok = Tokenizer(WordLevel(vocab, unk_token=UNK))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token=UNK, pad_token=PAD)


def load_tokenizer(directory: str | Path):
    from transformers import AutoTokenizer

    if not Path(directory).is_dir():
        raise VLAError(f"tokenizer directory {str(directory)!r} does not exist.")
    tok = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok
