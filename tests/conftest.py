"""Shared fixtures: offline settings, the embedded model's tokenizer and the tiny test model."""

from __future__ import annotations

import os
import tempfile

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may reach a hub; tests must prove that
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# generated answers are cached per test session only: a test must generate, not read an earlier session's answers
os.environ["LORAKIT_GENERATIONS"] = tempfile.mkdtemp(prefix="lorakit-generations-")

from helpers import compose_cfg  # noqa: E402


@pytest.fixture(scope="session")
def smollm2_dir() -> str:
    """The embedded SmolLM2 converted to safetensors (once per machine, in the lorakit cache)."""
    from lorakit.models.loading import resolve

    return resolve(compose_cfg("model=smollm2-135m").model)


@pytest.fixture(scope="session")
def tokenizer(smollm2_dir):
    from lorakit.models.loading import load_tokenizer

    return load_tokenizer(smollm2_dir)


@pytest.fixture(scope="session")
def tiny_dir() -> str:
    from lorakit.models.loading import resolve

    return resolve(compose_cfg("model=tiny-llama").model)


@pytest.fixture(scope="session")
def families(tmp_path_factory, smollm2_dir) -> dict[str, tuple[str, object, set[int]]]:
    """Each target family as a tiny local model: {family: (folder, tokenizer, end-of-turn ids)}, SmolLM2 included."""
    from transformers import GenerationConfig

    import family_models
    from lorakit.models.loading import end_of_turn_ids, load_tokenizer

    root = tmp_path_factory.mktemp("families")
    out = {}
    for family in family_models.FAMILIES:
        folder = str(family_models.build(family, root / family, smollm2_dir))
        tokenizer = load_tokenizer(folder)  # loaded back as a user's local model folder is
        out[family] = (folder, tokenizer, end_of_turn_ids(tokenizer, GenerationConfig.from_pretrained(folder)))
    tokenizer = load_tokenizer(smollm2_dir)
    out["smollm2"] = (smollm2_dir, tokenizer, end_of_turn_ids(tokenizer))
    return out
