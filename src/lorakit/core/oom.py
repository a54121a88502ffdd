"""Out-of-memory errors that say what to lower, and by how much, instead of a bare CUDA traceback."""

from __future__ import annotations

import torch

from lorakit.core.errors import UserError


class OutOfMemory(UserError, RuntimeError):
    """The accelerator ran out of memory; the message lists config changes that need less, most effective first."""


def _memory_line() -> str:
    if not torch.cuda.is_available():
        return ""
    gib = 2 ** 30
    total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    return (f" The GPU has {total / gib:.1f} GiB; this run's peak allocation was "
            f"{torch.cuda.max_memory_allocated() / gib:.1f} GiB.")


def _original(err: BaseException) -> str:
    return f"\n(original error: {str(err).splitlines()[0] if str(err) else type(err).__name__})"


def training_advice(err: BaseException, args, *, longest: int, quantized: bool, params_b: float) -> OutOfMemory:
    """An OutOfMemory for the train stage. args: the SFTConfig; longest: the longest training example in tokens;
    params_b: the base model's parameters in billions."""
    micro, accum = args.per_device_train_batch_size, args.gradient_accumulation_steps
    checkpointing = bool(args.activation_checkpointing or args.gradient_checkpointing)
    fixes = []
    if micro > 1:
        half = micro // 2
        fixes.append(f"train.per_device_train_batch_size={half} train.gradient_accumulation_steps={accum * micro // half}"
                     f"  (same effective batch of {micro * accum}; about half the activation memory)")
    if not checkpointing:
        fixes.append("train.activation_checkpointing=true  (keeps one layer's activations instead of all; ~30% slower)")
    if not quantized:
        fixes.append(f"quant=nf4  (4-bit base weights: about {params_b * 0.55:.1f} GB instead of {params_b * 2:.1f} GB)")
    if longest > 512:
        fixes.append(f"data.max_length={longest // 2}  (the longest example has {longest} tokens; longer ones are "
                     "dropped and listed in data_report.md)")
    if not args.activation_offloading:
        fixes.append("+train.activation_offloading=true  (moves saved activations to CPU memory; slower, for long contexts)")
    where = (f"per-device micro-batch {micro} x up to {longest} tokens, activation checkpointing "
             f"{'on' if checkpointing else 'off'}, base weights {'quantized' if quantized else 'not quantized'}")
    return OutOfMemory(f"out of memory while training ({where}).{_memory_line()}\n"
                       "Lower one of these and run again (first = most effective):\n  "
                       + "\n  ".join(f"{i}. {fix}" for i, fix in enumerate(fixes, 1)) + _original(err))


def eval_advice(err: BaseException, batch_size: int) -> OutOfMemory:
    """An OutOfMemory for the evaluate stage (generation)."""
    return OutOfMemory(f"out of memory while generating answers for evaluation (eval.batch_size={batch_size})."
                       f"{_memory_line()}\nRun again with eval.batch_size={max(1, batch_size // 4)} "
                       "(answers do not depend on the batch size), and if that fails too, a smaller eval.max_new_tokens."
                       + _original(err))
