"""Shared fixtures: offline settings, the embedded model's tokenizer and the tiny test model."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may reach a hub; tests must prove that
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from helpers import compose_cfg  # noqa: E402


@pytest.fixture(scope="session")
def smollm2_dir() -> str:
    """The embedded SmolLM2 converted to safetensors (once per machine, in the lorakit cache)."""
    from lorakit.models import resolve

    return resolve(compose_cfg("model=smollm2-135m").model)


@pytest.fixture(scope="session")
def tokenizer(smollm2_dir):
    from lorakit.models import load_tokenizer

    return load_tokenizer(smollm2_dir)


@pytest.fixture(scope="session")
def tiny_dir() -> str:
    from lorakit.models import resolve

    return resolve(compose_cfg("model=tiny-llama").model)
