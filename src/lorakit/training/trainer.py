"""The trainer of a run: trl.SFTConfig from cfg.train (the `null` defaults filled from the hardware and the data's
size), the base model with LoRA (4/8-bit with bitsandbytes), padding-free batches, progress callbacks, and the
out-of-memory advice. The train stage (lorakit.stages.train) runs it."""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from lorakit.core import distributed, oom
from lorakit.core.fields import config_fields
from lorakit.core.runs import RunFolder, find_adapter
from lorakit.models.loading import BaseModel, compute_dtype, load_model, quiet_peft_deprecation
from lorakit.training import attention, plan
from lorakit.training.loss import CompactLossSFTTrainer
from lorakit.training.resume import AtomicCheckpoints

log = logging.getLogger(__name__)


class LoraTrainer(AtomicCheckpoints, CompactLossSFTTrainer):
    """The trainer of every run: loss on trained positions only, checkpoints written whole or not at all."""


METHOD_LEARNING_RATE_FACTOR = 0.2  # method.learning_rate null (dpo, reinforcement): train.learning_rate x this


def method_arguments(cfg: DictConfig, config_cls: type, *, cuda: bool, has_validation: bool,
                     sequences: int) -> dict[str, Any]:
    """The arguments of a preference or reinforcement trainer's config: cfg.train's (the fields `config_cls` has;
    the others are logged as unused) updated with cfg.method's own settings (all but name and grader), its
    learning rate null -> train.learning_rate x METHOD_LEARNING_RATE_FACTOR."""
    args = training_arguments(cfg, cuda=cuda, has_validation=has_validation, sequences=sequences)
    known = config_fields(config_cls)
    dropped = sorted(k for k in args if k not in known)
    if dropped:
        log.info("train.%s: supervised settings, not used by method=%s", ", train.".join(dropped), cfg.method.name)
    args = {k: v for k, v in args.items() if k in known}
    method: dict[str, Any] = OmegaConf.to_container(cfg.method, resolve=True)
    for key in ("name", "grader"):
        method.pop(key, None)
    if method.get("learning_rate") is None:
        method["learning_rate"] = args["learning_rate"] * METHOD_LEARNING_RATE_FACTOR
    args.update({k: v for k, v in method.items() if v is not None})
    return args


def training_arguments(cfg: DictConfig, *, cuda: bool, has_validation: bool, sequences: int) -> dict[str, Any]:
    """cfg.train as trainer arguments, the `null` defaults filled from the hardware and the number of training
    sequences (lorakit.training.plan); shared by every method."""
    args: dict[str, Any] = OmegaConf.to_container(cfg.train, resolve=True)
    for decision in plan.decide(args, sequences, distributed.world_size()):
        log.info("%s", decision)
        args[decision.setting.removeprefix("train.")] = decision.value
    args.pop("report_to", None)  # the logger decides (validate() rejects anything but none here)
    if args.get("bf16") is None:  # TRL's own default (bf16=True) would fail on CPU
        dtype = compute_dtype(cuda)
        args["bf16"] = dtype == torch.bfloat16
        args["fp16"] = args.get("fp16") or dtype == torch.float16
    if args.get("activation_checkpointing") is None and args.get("gradient_checkpointing") is None:
        args["activation_checkpointing"] = cuda  # TRL defaults it on; on CPU the recomputation only costs time
    if args.get("use_liger_kernel") is None:  # measured on an H100: +11% tokens/s on 8B QLoRA, same loss (BENCHMARKS.md)
        args["use_liger_kernel"] = cuda and importlib.util.find_spec("liger_kernel") is not None
    if args.get("activation_checkpointing") and not args.get("gradient_checkpointing_kwargs"):
        # non-reentrant: works with frozen (quantized) inputs without forcing input grads, and with kwargs
        args["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    if not has_validation:
        args["eval_strategy"] = "no"
    return {k: v for k, v in args.items() if v is not None}


def sft_config(cfg: DictConfig, run_dir: Path, *, cuda: bool, has_validation: bool, report_to: str,
               sequences: int):
    """Build the trl.SFTConfig from cfg.train (training_arguments)."""
    from trl import SFTConfig

    args = training_arguments(cfg, cuda=cuda, has_validation=has_validation, sequences=sequences)
    # The prepare stage already dropped longer examples. TRL refuses max_length for padding-free batches without
    # packing (it would not truncate them); with packing it is the length of a packed row.
    max_length = None if args.get("padding_free") and not args.get("packing") else cfg.data.max_length
    return SFTConfig(output_dir=str(RunFolder(run_dir).checkpoints), report_to=report_to, max_length=max_length,
                     use_cpu=not cuda, **args)


def uses_varlen_attention(args) -> bool:
    """Padding-free batches (and best-fit packing, which is padding-free) need boundary-aware attention."""
    packed = getattr(args, "packing", False) and args.packing_strategy in {"bfd", "bfd_split"}
    return bool(getattr(args, "padding_free", False) or packed)  # GRPO's config has neither


def prepare_for_kbit_training(model, args, dtype: torch.dtype):
    """peft's prepare_model_for_kbit_training (frozen base, input gradients for checkpointing), keeping bf16.

    It also upcasts every non-quantized weight to fp32: the embeddings, the norms and the LM head. The fp32 norm
    weights then promote the whole residual stream to fp32, so attention runs in fp32 (no FlashAttention), every
    saved activation takes twice the memory, and the LM head multiplies in fp32. The frozen norms gain nothing from
    fp32 weights (LlamaRMSNorm already computes its variance in fp32), so they are cast back to the compute dtype.
    """
    from peft import prepare_model_for_kbit_training

    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=args.activation_checkpointing,
                                            gradient_checkpointing_kwargs=args.gradient_checkpointing_kwargs)
    if dtype != torch.float32:
        for param in model.parameters():
            if param.dtype == torch.float32:
                param.data = param.data.to(dtype)
    return model


def progress_callback(path: Path):
    """A TrainerCallback appending {"step", "max_steps", "epoch", logged values} to progress.jsonl at every log,
    so that other processes (the server's fine-tuning jobs) can follow a run while it trains.

    It also logs the training values at every checkpoint, validation and the last step, whatever logging_steps
    says: a checkpoint's metrics (and the run's last) are then those of its own step, not of an earlier log."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if control.should_save or control.should_evaluate or state.global_step >= state.max_steps:
                control.should_log = True
            return control

        def on_epoch_end(self, args, state, control, **kwargs):
            if control.should_save or control.should_evaluate:
                control.should_log = True
            return control

        def on_train_begin(self, args, state, control, **kwargs):
            line = json.dumps({"step": state.global_step, "max_steps": state.max_steps, "time": time.time()}) + "\n"
            if state.global_step and path.is_file():  # resumed from a checkpoint: the history goes on
                with path.open("a") as f:
                    f.write(line)
            else:
                path.write_text(line)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero:
                line = {"step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch,
                        "time": time.time(), **(logs or {})}
                with path.open("a") as f:
                    f.write(json.dumps(line) + "\n")

    return Progress()


def starting_model(cfg: DictConfig, base: BaseModel, args, *, cuda: bool):
    """The base model's weights ready for LoRA, and the peft_config for the trainer: a new LoRA (cfg.lora), or, with
    init_from, that run's adapter loaded trainable (peft_config None: training goes on from it)."""
    from peft import LoraConfig, PeftModel

    quant = OmegaConf.to_container(cfg.quant, resolve=True)
    model = load_model(base, quant, cuda=cuda)
    if uses_varlen_attention(args):  # one row per batch, examples kept apart by their boundaries
        model.set_attn_implementation(attention.register())
    if quant:
        model = prepare_for_kbit_training(model, args, compute_dtype(cuda))
    quiet_peft_deprecation()  # TRL wraps the model in a PeftModel
    if not cfg.get("init_from"):
        return model, LoraConfig(**OmegaConf.to_container(cfg.lora, resolve=True))
    adapter = find_adapter(cfg.init_from)
    log.info("starting from the adapter in %s", adapter)
    return PeftModel.from_pretrained(model, str(adapter), is_trainable=True), None


def prepared_sets(run_dir: Path, what: str = "examples"):
    """The tokenized train and validation sets the prepare stage saved (validation None when there is none)."""
    from datasets import load_from_disk

    folder = RunFolder(run_dir)
    train_ds = load_from_disk(str(folder.tokenized("train")))
    val_ds = load_from_disk(str(folder.tokenized("validation"))) if folder.tokenized("validation").exists() else None
    log.info("training on %d %s, validating on %d", len(train_ds), what, len(val_ds) if val_ds else 0)
    return train_ds, val_ds


def build_trainer(cfg: DictConfig, run_dir: Path, base: BaseModel, *, cuda: bool, report_to: str):
    """Load the prepared data and the base model's weights, wrap them with LoRA, and return the ready trainer."""
    folder = RunFolder(run_dir)
    train_ds, val_ds = prepared_sets(run_dir)
    args = sft_config(cfg, run_dir, cuda=cuda, has_validation=val_ds is not None, report_to=report_to,
                      sequences=len(train_ds))
    model, peft_config = starting_model(cfg, base, args, cuda=cuda)
    tokenizer = base.tokenizer
    tokenizer.padding_side = "right"
    return LoraTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[progress_callback(folder.progress)],
    )


def train_or_advise(trainer, *, quantized: bool, resume_from: Path | None = None):
    """trainer.train() (from a checkpoint when given), with an out-of-memory turned into an OutOfMemory that says
    what to lower and by how much."""
    try:
        return trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except torch.OutOfMemoryError as err:
        data = trainer.train_dataset  # reinforcement: no lengths until generated; a completion's at most
        longest = max(data["length"]) if "length" in data.column_names else trainer.args.max_completion_length
        _, total = trainer.model.get_nb_trainable_parameters()
        raise oom.training_advice(err, trainer.args, longest=longest, quantized=quantized, params_b=total / 1e9) from None


