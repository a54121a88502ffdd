"""Train stage: TRL SFTTrainer (method=supervised), DPOTrainer (method=dpo) or GRPOTrainer (method=reinforcement,
the method's grader as the reward) + PEFT LoRA on the prepared data; saves a standard PEFT adapter.

Usage:
    python -m train +experiment=quickstart stages=[prepare,train]

Reads run_dir/data/{train,validation} (made by the prepare stage) and writes run_dir/adapter/: the adapter
(`PeftModel.from_pretrained(base, run_dir/adapter)` loads it), the tokenizer and its chat template, plus
run_dir/train_log.json with the loss history (DPO's rewards; the mean reward and its spread per step of
reinforcement). Each method builds its trainer (lorakit.methods); init_from starts from an earlier run's adapter.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from lorakit import methods
from lorakit.core.runs import RunFolder
from lorakit.models.loading import BaseModel
from lorakit.training.trainer import train_or_advise

log = logging.getLogger(__name__)


def _summary(history: list[dict]) -> str:
    """The validation loss, or the mean reward, from the first logged step to the last ("" when neither)."""
    for key, what in (("eval_loss", "validation loss"), ("reward", "mean reward")):
        values = [h[key] for h in history if key in h]
        if values:
            return f", {what} {values[0]:.4f} -> {values[-1]:.4f}"
    return ""


def run(cfg: DictConfig, run_dir: Path, base: BaseModel, *, cuda: bool, report_to: str,
        resume_from: Path | None = None) -> Path:
    """Train a LoRA adapter (continuing from a checkpoint of this run when given); return the folder it was saved
    to."""
    trainer = methods.of(cfg).build_trainer(cfg, run_dir, base, cuda=cuda, report_to=report_to)
    trainable, total = trainer.model.get_nb_trainable_parameters()
    lora = trainer.model.peft_config["default"]
    log.info("%s: LoRA r=%d on %s: %s trainable parameters (%.2f%% of %s)", cfg.method.name, lora.r,
             sorted(lora.target_modules), f"{trainable:,}", 100 * trainable / total, f"{total:,}")
    result = train_or_advise(trainer, quantized=bool(cfg.quant), resume_from=resume_from)

    adapter_dir = RunFolder(run_dir).adapter
    history = trainer.state.log_history
    if not trainer.is_world_process_zero():  # one writer: rank 0 reads these back while another rank wrote them
        return adapter_dir
    trainer.model.save_pretrained(str(adapter_dir), selected_adapters=["default"])  # not DPO's frozen "ref" copy
    base.tokenizer.save_pretrained(str(adapter_dir))
    RunFolder(run_dir).train_log.write_text(json.dumps(history, indent=2))
    log.info("trained %d steps in %.0fs: train loss %.4f%s; adapter saved to %s", result.global_step,
             result.metrics["train_runtime"], result.training_loss, _summary(history), adapter_dir)
    return adapter_dir
