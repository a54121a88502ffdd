"""Train stage: TRL SFTTrainer (method=supervised), DPOTrainer (method=dpo) or GRPOTrainer (method=reinforcement,
the method's grader as the reward) + PEFT LoRA on the prepared data; saves a standard PEFT adapter.

Usage:
    python -m train +experiment=quickstart stages=[prepare,train]

Reads run_dir/data/{train,validation} (made by the prepare stage) and writes run_dir/adapter/: the adapter
(`PeftModel.from_pretrained(base, run_dir/adapter)` loads it), the tokenizer and its chat template, plus
run_dir/train_log.json with the loss history (DPO's rewards; the mean reward and its spread per step of
reinforcement). The trainers are built by lorakit.training.trainer, .dpo and .grpo; init_from starts from an
earlier run's adapter.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

from omegaconf import DictConfig

from lorakit.core.runs import RunFolder, read_jsonl
from lorakit.data.template import prompt_and_reference
from lorakit.models.loading import BaseModel
from lorakit.training.dpo import build_dpo_trainer
from lorakit.training.grpo import build_grpo_trainer
from lorakit.training.trainer import build_trainer, train_or_advise

log = logging.getLogger(__name__)


def reward(cfg: DictConfig, base: BaseModel, cuda: bool):
    """method=reinforcement's reward: the method's grader scoring each completion, failures scored 0 and logged
    (the first of each kind, and every 100th)."""
    from lorakit.evaluation import grading
    from lorakit.evaluation.cache import GenerationCache
    from lorakit.evaluation.graders.run import grade

    name, grader = grading.method_grader(cfg.method)
    ask = grading.asker(cfg, None, GenerationCache(None), cuda, quant={}, batch_size=cfg.eval.batch_size,
                        attn_implementation=base.attn_implementation) if grading.needs_model({name: grader}) else None
    failed: Counter = Counter()

    def score(items: list[dict], answers: list[str]) -> list[float]:
        grades = grade(grader, items, answers, ask=ask)
        for g in grades:
            if g.error:
                failed[g.flag] += 1
                if failed[g.flag] == 1 or failed[g.flag] % 100 == 0:
                    log.warning("grader %s: a completion not graded (scored 0; %d so far of this kind): %s", name,
                                failed[g.flag], g.error)
        return [g.score for g in grades]

    return score


def prepared_tasks(run_dir: Path, tokenizer) -> dict[str, list[dict]]:
    """The prepare stage's train and validation tasks, each with its prompt rendered exactly as inference does."""
    folder = RunFolder(run_dir)
    return {name: [{"prompt": prompt_and_reference(tokenizer, r["messages"], r.get("tools"))[0], **r}
                   for r in read_jsonl(folder.split(name))] if folder.split(name).is_file() else []
            for name in ("train", "validation")}


def _build(cfg: DictConfig, run_dir: Path, base: BaseModel, *, cuda: bool, report_to: str):
    if cfg.method.name == "reinforcement":
        tasks = prepared_tasks(run_dir, base.tokenizer)
        return build_grpo_trainer(cfg, run_dir, base, tasks["train"], reward(cfg, base, cuda),
                                  validation=tasks["validation"], cuda=cuda, report_to=report_to)
    build = build_dpo_trainer if cfg.method.name == "dpo" else build_trainer
    return build(cfg, run_dir, base, cuda=cuda, report_to=report_to)


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
    trainer = _build(cfg, run_dir, base, cuda=cuda, report_to=report_to)
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
