"""The trainer of reinforcement fine-tuning: TRL's GRPOTrainer + PEFT LoRA, rewarded by a caller's scorer (the
graders of lorakit.evaluation.graders: the train stage passes `score`; training does not import evaluation).

Each prompt is the exact inference prompt (the chat template with the generation prompt, rendered once by the
train stage with lorakit.data.template), so the model is rewarded for what it answers when it is served; each
task's item (JSON) travels with it, the item namespace of the grader. trl.GRPOConfig comes from cfg.train (the
fields the two share, `null` defaults filled as for supervised runs) and cfg.method (GRPO's own: num_generations,
max_completion_length, beta, temperature, ...). The log gets TRL's `reward` and `reward_std` per step.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

from omegaconf import DictConfig

from lorakit.core.runs import RunFolder
from lorakit.models.loading import BaseModel
from lorakit.training.resume import AtomicCheckpoints
from lorakit.training.trainer import method_arguments, progress_callback, starting_model

log = logging.getLogger(__name__)

# score(items, answers) -> one reward per answer
Score = Callable[[list[dict], list[str]], list[float]]


def grpo_config(cfg: DictConfig, run_dir: Path, *, cuda: bool, report_to: str, tasks: int, has_validation: bool):
    """trl.GRPOConfig from cfg.train (the fields GRPOConfig has) and cfg.method (GRPO's own settings); the
    epochs and checkpoints decided from the completions per epoch (tasks x num_generations)."""
    from trl import GRPOConfig

    sequences = tasks * int(cfg.method.get("num_generations") or 8)
    args = method_arguments(cfg, GRPOConfig, cuda=cuda, has_validation=has_validation, sequences=sequences)
    return GRPOConfig(output_dir=str(RunFolder(run_dir).checkpoints), report_to=report_to, use_cpu=not cuda, **args)


def reward_function(score: Score) -> Callable:
    """The scorer in TRL's reward-function shape: completions (text) and the dataset's `item` column."""
    def grader(prompts, completions, item, **_):
        texts = [c if isinstance(c, str) else (c[-1].get("content") or "") for c in completions]
        return [float(r) for r in score([json.loads(i) for i in item], texts)]

    return grader


def dataset(rows: list[dict]):
    """Tasks ({"prompt": rendered as at inference, "item": the grader's item}) as GRPO's prompts and items."""
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [r["prompt"] for r in rows],
                              "item": [json.dumps(r["item"], ensure_ascii=False) for r in rows]})


def _trainer_class():
    from trl import GRPOTrainer

    class LoraGRPOTrainer(AtomicCheckpoints, GRPOTrainer):
        """GRPOTrainer whose checkpoints are written whole (lorakit.training.resume), generating on CPU with the
        LoRA merged into the weights."""

        def _tokenize_prompts(self, prompts: list):
            """The rendered prompts as they are at inference: the chat template wrote any BOS already (TRL's
            plain-text tokenization would add a second one for Llama and Mistral)."""
            if prompts and isinstance(prompts[0], str):
                return self.processing_class(text=prompts, add_special_tokens=False)["input_ids"], None, {}
            return super()._tokenize_prompts(prompts)

        def _generate_single_turn(self, *args, **kwargs):
            """On CPU the unmerged LoRA's extra matmuls per layer cost about a quarter of generation's time
            (BENCHMARKS.md, GRPO speed: 0.73x merged); merged for the generation and unmerged after (in fp32: the
            weights come back within a rounding step). On CUDA decoding is memory-bound and the weights may be bf16
            or quantized: unchanged."""
            model = self.accelerator.unwrap_model(self.model)
            merge = (self.args.use_cpu and not self.use_vllm and hasattr(model, "merge_adapter")
                     and not getattr(model, "is_loaded_in_4bit", False) and not getattr(model, "is_loaded_in_8bit", False))
            if not merge:
                return super()._generate_single_turn(*args, **kwargs)
            model.merge_adapter()
            try:
                return super()._generate_single_turn(*args, **kwargs)
            finally:
                model.unmerge_adapter()

    return LoraGRPOTrainer


def build_grpo_trainer(cfg: DictConfig, run_dir: Path, base: BaseModel, rows: list[dict], score: Score, *,
                       validation: list[dict] | None = None, cuda: bool, report_to: str):
    """The ready GRPO trainer on these tasks (each {"prompt": the rendered inference prompt, "item"}; and the
    validation tasks' mean reward per epoch), from the base model (a new LoRA) or init_from's adapter."""
    tokenizer = base.tokenizer
    train_ds = dataset(rows)
    val_ds = dataset(validation) if validation else None
    log.info("reinforcement on %d tasks, validating on %d", len(train_ds), len(val_ds) if val_ds else 0)
    args = grpo_config(cfg, run_dir, cuda=cuda, report_to=report_to, tasks=len(train_ds), has_validation=bool(val_ds))
    model, peft_config = starting_model(cfg, base, args, cuda=cuda)
    tokenizer.padding_side = "left"  # prompts are left-padded for generation
    return _trainer_class()(
        model=model, reward_funcs=[reward_function(score)], args=args, train_dataset=train_ds, eval_dataset=val_ds,
        processing_class=tokenizer, peft_config=peft_config, callbacks=[progress_callback(RunFolder(run_dir).progress)],
    )
