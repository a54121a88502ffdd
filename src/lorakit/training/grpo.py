"""The trainer of reinforcement fine-tuning: TRL's GRPOTrainer + PEFT LoRA, rewarded by a caller's scorer (the
graders of lorakit.evaluation.graders: the train stage passes `score`; training does not import evaluation).

Each prompt is the exact inference prompt (the chat template with the generation prompt, rendered once), so the
model is rewarded for what it answers when it is served; each example's row travels with it as `item` (JSON), the
item namespace of the grader. trl.GRPOConfig comes from cfg.train (the fields the two share, `null` defaults
filled as for supervised runs) and the method's settings (GRPO's own: num_generations, max_completion_length,
beta, temperature, ...). The log gets TRL's `reward` and `reward_std` per step, and `reward/<name>` when the
scorer has several parts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lorakit.core.runs import RunFolder
from lorakit.models.loading import BaseModel
from lorakit.training.resume import AtomicCheckpoints
from lorakit.training.trainer import config_fields, progress_callback, starting_model, training_arguments

log = logging.getLogger(__name__)

# score(items, answers) -> one reward per answer
Score = Callable[[list[dict], list[str]], list[float]]


def grpo_config(cfg: DictConfig, run_dir: Path, settings: dict[str, Any], *, cuda: bool, report_to: str,
                sequences: int):
    """trl.GRPOConfig from cfg.train (the fields GRPOConfig has) and the method's settings."""
    from trl import GRPOConfig

    args = training_arguments(cfg, cuda=cuda, has_validation=False, sequences=sequences)
    known = config_fields(GRPOConfig)
    dropped = sorted(k for k in args if k not in known)
    if dropped:
        log.info("train.%s: supervised settings, not used by reinforcement fine-tuning", ", train.".join(dropped))
    args = {k: v for k, v in args.items() if k in known}
    args.update({k: v for k, v in settings.items() if v is not None})
    return GRPOConfig(output_dir=str(RunFolder(run_dir).checkpoints), report_to=report_to, use_cpu=not cuda,
                      **args)


def reward_function(score: Score) -> Callable:
    """The scorer in TRL's reward-function shape: completions (text) and the dataset's `item` column."""
    def grader(prompts, completions, item, **_):
        texts = [c if isinstance(c, str) else (c[-1].get("content") or "") for c in completions]
        return [float(r) for r in score([json.loads(i) for i in item], texts)]

    return grader


def dataset(tokenizer, rows: list[dict]):
    """rows ({"messages" ending in a user turn, "tools", any other fields}) as GRPO's prompts and items."""
    from datasets import Dataset

    prompts = [tokenizer.apply_chat_template(r["messages"], tools=r.get("tools"), tokenize=False,
                                             add_generation_prompt=True) for r in rows]
    return Dataset.from_dict({"prompt": prompts, "item": [json.dumps(r, ensure_ascii=False) for r in rows]})


def _trainer_class():
    from trl import GRPOTrainer

    class LoraGRPOTrainer(AtomicCheckpoints, GRPOTrainer):
        """GRPOTrainer whose checkpoints are written whole (lorakit.training.resume)."""

    return LoraGRPOTrainer


def build_grpo_trainer(cfg: DictConfig, run_dir: Path, base: BaseModel, rows: list[dict], score: Score,
                       settings: dict[str, Any], *, cuda: bool, report_to: str):
    """The ready GRPO trainer on these rows, from the base model (a new LoRA) or init_from's adapter."""
    tokenizer = base.tokenizer
    train_ds = dataset(tokenizer, rows)
    args = grpo_config(cfg, run_dir, settings, cuda=cuda, report_to=report_to, sequences=len(train_ds))
    model, peft_config = starting_model(cfg, base, args, cuda=cuda)
    tokenizer.padding_side = "left"  # prompts are left-padded for generation
    return _trainer_class()(
        model=model, reward_funcs=[reward_function(score)], args=args, train_dataset=train_ds,
        processing_class=tokenizer, peft_config=peft_config, callbacks=[progress_callback(RunFolder(run_dir).progress)],
    )
