"""The fixtures tests share: the models (the embedded SmolLM2, the tiny Llama, one tiny model per chat-template
family), a tiny model trained for 4 steps, and one lorakit.serve (with a job it fine-tuned) for the session."""

from __future__ import annotations

import os
import secrets

import pytest

from helpers import compose_cfg, python_m, serving, tiny_trainer, tool_picker_rows, write_jsonl

KEY = "sk-lorakit-test-" + secrets.token_hex(12)


def env_without_keys(**extra) -> dict:
    """This process's environment without any API key, plus `extra`: for commands started by a test."""
    return {**{k: v for k, v in os.environ.items() if k not in {"LORAKIT_API_KEY", "OPENAI_API_KEY"}}, **extra}


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

    from helpers import family_models
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


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_dir):
    """Train the tiny model for 4 steps on 24 tool_picker examples; keep its weights from before."""
    tmp = tmp_path_factory.mktemp("train")
    trainer, tokenizer = tiny_trainer(tmp, tiny_dir, 24, "+experiment=quickstart", "+train.max_steps=4",
                                      "train.learning_rate=1e-2")
    from lorakit.models.loading import end_of_turn_ids

    eot = end_of_turn_ids(tokenizer)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    return trainer, before, tokenizer, eot, tmp


@pytest.fixture(scope="session")
def server(tmp_path_factory, tiny_dir):
    with serving.running(tmp_path_factory.mktemp("serve") / "data", "--model", "tiny-llama", key=KEY) as srv:
        yield srv


@pytest.fixture(scope="session")
def train_file(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("ft") / "train.jsonl", tool_picker_rows("train", 40))


@pytest.fixture(scope="session")
def tuned(server, train_file):
    """The guides' flow, unchanged but for base_url and api_key: upload, create, poll, then the job."""
    client = server.client()
    uploaded = client.files.create(file=open(train_file, "rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(training_file=uploaded.id, model="tiny-llama",
                                         hyperparameters={"n_epochs": 2}, suffix="guide")
    return uploaded, serving.wait_for(client, job.id, {"succeeded", "failed", "cancelled"})


@pytest.fixture(scope="session")
def two_runs(tmp_path_factory):
    """Two tiny adapters of one base (A: lr 5e-3, B: 1e-4, 3 steps each) beside train.jsonl and test.jsonl."""
    tmp = tmp_path_factory.mktemp("compare")
    write_jsonl(tmp / "train.jsonl", tool_picker_rows("train", 24))
    write_jsonl(tmp / "test.jsonl", tool_picker_rows("test", 8))
    for name, lr in (("A", "5e-3"), ("B", "1e-4")):
        out = python_m("train", "+experiment=quickstart", "model=tiny-llama", "data.train_file=train.jsonl",
                  "data.test_file=test.jsonl", "+train.max_steps=3", f"train.learning_rate={lr}",
                  "stages=[prepare,train]", f"hydra.run.dir={tmp / name}", cwd=tmp)
        assert out.returncode == 0, out.stderr[-3000:]
    return tmp


@pytest.fixture(scope="session")
def smollm2_adapters(tmp_path_factory, smollm2_dir):
    """Two LoRA adapters of SmolLM2 (A/adapter, B/adapter) with small random weights: they change the answers,
    they learned nothing (for the vLLM tests: vLLM's CPU attention takes no head size as small as the tiny model's)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("smollm2-adapters")
    for seed, name in enumerate(("A", "B")):
        torch.manual_seed(seed)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(smollm2_dir), LoraConfig(
            r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.mul_(0.05)
        model.save_pretrained(root / name / "adapter")
    return root
