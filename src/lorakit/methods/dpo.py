"""Direct preference optimization (TRL DPOTrainer + PEFT LoRA) on preference pairs; method.* are trl.DPOConfig
fields (conf/method/dpo.yaml). Its evaluation adds the reward accuracy and margin on held-out pairs; OpenAI's
`beta` maps to method.beta."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from omegaconf import DictConfig
from pydantic import Field

from lorakit.core.fields import bad_number, config_fields, unknown_fields
from lorakit.methods.base import PAIR_COLUMNS, Auto, Hyperparameters, Method, register


class DpoHyperparameters(Hyperparameters):
    beta: Auto | Annotated[float, Field(gt=0, le=100)] | None = "auto"


class Dpo(Method):
    name = "dpo"
    data = "pairs"
    hyperparameters = DpoHyperparameters
    columns = PAIR_COLUMNS

    def check(self, cfg: DictConfig) -> list[str]:
        from trl import DPOConfig

        method = cfg.method
        return (unknown_fields("method", [k for k in method if k != "name"], config_fields(DPOConfig), "trl.DPOConfig")
                + bad_number("method.beta", method.get("beta", 0.1), 0, above=True)
                + bad_number("method.learning_rate", method.get("learning_rate"), 0, above=True,
                             null="train.learning_rate x 0.2"))

    def encode(self, examples, tokenizer, eot_ids, data):
        from lorakit.data.encoding import encode_pairs

        return encode_pairs(examples, tokenizer, eot_ids, data)

    def build_trainer(self, cfg, run_dir, base, *, cuda, report_to):
        from lorakit.training.dpo import build_dpo_trainer

        return build_dpo_trainer(cfg, run_dir, base, cuda=cuda, report_to=report_to)

    def extra_metrics(self, cfg, base, adapter_dir: Path, start: Path | None, rows, *, cuda):
        from lorakit.evaluation.preference import reward_metrics

        return reward_metrics(cfg, base, adapter_dir, start, rows, cuda=cuda)

    def openai_method(self, cfg: DictConfig) -> dict:
        out = super().openai_method(cfg)
        out[self.name]["hyperparameters"]["beta"] = float(cfg.method.beta)
        return out

    def job_overrides(self, job, hp, run_dir, base_model):
        beta = [f"method.beta={float(hp['beta'])!r}"] if hp.get("beta", "auto") != "auto" else []
        return super().job_overrides(job, hp, run_dir, base_model) + beta


register(Dpo())
