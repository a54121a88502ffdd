"""A training method is one unit: a method written in a single file, registered from LORAKIT_METHODS, trains through
`python -m train method=<name>` and through the job API with no other edit, its settings checked by itself; and
the built-in methods answer the questions the stages, checks, job API and hosted backend ask."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from helpers import serving, tool_picker_rows, write_jsonl

PLUGIN = '''"""Supervised fine-tuning with its learning rate scaled by method.lr_scale (OpenAI's hyperparameter lr_scale)."""
from omegaconf import OmegaConf

from lorakit.methods import Hyperparameters, Method, register


class ScaledHyperparameters(Hyperparameters):
    lr_scale: float | None = None


class Scaled(Method):
    name = "scaled_sft"
    hyperparameters = ScaledHyperparameters
    defaults = {"lr_scale": 1.0}

    def check(self, cfg):
        scale = cfg.method.get("lr_scale")
        return [] if isinstance(scale, (int, float)) and scale >= 0 else [f"method.lr_scale: >= 0, got {scale!r}"]

    def build_trainer(self, cfg, run_dir, base, *, cuda, report_to):
        scaled = cfg.train.learning_rate * cfg.method.lr_scale
        cfg = OmegaConf.merge(cfg, {"train": {"learning_rate": scaled}})
        return super().build_trainer(cfg, run_dir, base, cuda=cuda, report_to=report_to)

    def job_overrides(self, job, hp, run_dir, base_model):
        scale = [f"method.lr_scale={hp['lr_scale']!r}"] if hp.get("lr_scale") not in (None, "auto") else []
        return super().job_overrides(job, hp, run_dir, base_model) + scale


register(Scaled())
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "plugin").mkdir()
    (tmp_path / "plugin" / "scaled_sft.py").write_text(PLUGIN)
    monkeypatch.setenv("LORAKIT_METHODS", "scaled_sft")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path / "plugin"), os.environ.get("PYTHONPATH", "")]))
    return tmp_path


def _lora_b(adapter_dir) -> list:
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    return [w for name, w in weights.items() if "lora_B" in name]


def test_a_method_from_one_file_trains_through_python_m_train_and_the_job_api(plugin, tiny_dir):
    tmp = plugin
    train = write_jsonl(tmp / "train.jsonl", tool_picker_rows("train", 16))

    def run(*overrides: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "train", "method=scaled_sft", "model=tiny-llama", "logger=none",
                               f"data.train_file={train}", "stages=[prepare,train]", "+train.max_steps=2",
                               *overrides], cwd=tmp, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "HF_HUB_OFFLINE": "1"})

    refused = run("method.lr_scale=-1", f"hydra.run.dir={tmp / 'bad'}")
    assert refused.returncode == 2 and "method.lr_scale: >= 0, got -1" in refused.stdout + refused.stderr  # its check
    frozen = run("method.lr_scale=0", f"hydra.run.dir={tmp / 'frozen'}")  # its trainer: no learning at rate 0
    assert frozen.returncode == 0, frozen.stderr[-3000:]
    assert all(not b.any() for b in _lora_b(tmp / "frozen" / "adapter"))
    learned = run(f"hydra.run.dir={tmp / 'learned'}")  # its default (lr_scale: 1.0, from the file): it learns
    assert learned.returncode == 0, learned.stderr[-3000:]
    assert any(b.any() for b in _lora_b(tmp / "learned" / "adapter"))

    with serving.running(tmp / "data", "--model", "tiny-llama", key="k-methods") as srv:
        client = srv.client()
        upload = client.files.create(file=open(train, "rb"), purpose="fine-tune")
        with pytest.raises(Exception, match="lr_scale"):  # its hyperparameters checked by its own schema
            client.fine_tuning.jobs.create(training_file=upload.id, model="tiny-llama", method={
                "type": "scaled_sft", "scaled_sft": {"hyperparameters": {"lr_scale": "fast"}}})
        job = client.fine_tuning.jobs.create(training_file=upload.id, model="tiny-llama", method={
            "type": "scaled_sft", "scaled_sft": {"hyperparameters": {"lr_scale": 0.0, "n_epochs": 1}}})
        job = serving.wait_for(client, job.id, {"succeeded", "failed", "cancelled"})
        assert job.status == "succeeded", job.error
        assert job.method.type == "scaled_sft" and job.method.model_extra["scaled_sft"]["hyperparameters"][
            "lr_scale"] == 0.0
        [adapter] = [p.parent for p in srv.data_dir.rglob("adapter_model.safetensors")
                     if job.id in str(p) and p.parent.name == "adapter"]
        assert all(not b.any() for b in _lora_b(adapter))  # trained by the method's own trainer, at rate 0
        reply = client.chat.completions.create(model=job.fine_tuned_model, max_tokens=3,
                                               messages=[{"role": "user", "content": "Set a timer"}])
        assert reply.model == job.fine_tuned_model


def test_the_builtin_methods_answer_for_themselves():
    from lorakit import methods

    assert {"supervised", "dpo", "reinforcement"} <= set(methods.names())
    assert [methods.get(n).data for n in ("supervised", "dpo", "reinforcement")] == ["chat", "pairs", "tasks"]
    assert methods.get("reinforcement").openai_fields == ("grader",)
    with pytest.raises(methods.UnknownMethod, match="'ppo' is unknown; use one of"):
        methods.get("ppo")
    hp = {"batch_size": 2, "compute_multiplier": "auto", "eval_samples": "auto"}
    assert methods.get("reinforcement").reported_batch({"method": {"num_generations": 4}}, 8) == 2
    assert methods.get("dpo").job_overrides({}, {**hp, "beta": 0.2}, None, "m") == [
        "train.per_device_train_batch_size=2", "method.beta=0.2"]
    assert json.dumps(methods.get("reinforcement").unused({"reasoning_effort": "high"})) == '["reasoning_effort=high"]'
