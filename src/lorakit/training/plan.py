"""Training settings that follow the data's size: `null` in conf/train (the fine-tuning API's "auto"), decided for
each run from the number of training sequences, and stated with the reason in the log and data_report.md.
Explicit settings always win.

- train.num_train_epochs: null -> 3 epochs, raised for small files until training takes MIN_STEPS optimizer steps
  (at most MAX_EPOCHS). OpenAI's "auto" follows the same idea (at least ~100 example-passes, 3 epochs by default);
  a floor on optimizer steps also holds when the batch is raised.
- train.save_steps: null -> a checkpoint every 10% of the steps, but at most one every MIN_CHECKPOINT_STEPS (a
  tiny run no longer writes one every 1.5 steps).

data.val_fraction (null: decided from the number of examples too) is the data's own: lorakit.data.splits.
"""

from __future__ import annotations

import math

from lorakit.core.fields import Decision

TARGET_EPOCHS = 3          # passes over a file of a few hundred examples or more (BENCHMARKS.md: defaults)
MIN_STEPS = 60             # optimizer steps a small file gets at least: 20 examples at batch 4 = 12 epochs
MAX_EPOCHS = 25            # 10 examples or fewer: more passes only memorise
CHECKPOINT_FRACTION = 0.1  # a crash loses at most this share of the training
MIN_CHECKPOINT_STEPS = 10  # steps between checkpoints at least


def steps_per_epoch(train: dict, sequences: int, processes: int = 1) -> int:
    """Optimizer steps per epoch, as the Trainer counts them (each process's batches over the accumulation)."""
    per_process = math.ceil(sequences / max(processes, 1))
    batches = math.ceil(per_process / int(train.get("per_device_train_batch_size") or 8))
    return max(batches // int(train.get("gradient_accumulation_steps") or 1), 1)


def decide(train: dict, sequences: int, processes: int = 1) -> list[Decision]:
    """The decisions for the null settings of `train` (cfg.train as a dict) with `sequences` training rows."""
    decisions = []
    per_epoch = steps_per_epoch(train, sequences, processes)
    max_steps = int(train.get("max_steps") or -1)
    epochs = train.get("num_train_epochs")
    if epochs is None and max_steps <= 0:
        epochs = TARGET_EPOCHS
        reason = f"{sequences} training sequences at {per_epoch} steps per epoch"
        if per_epoch * TARGET_EPOCHS < MIN_STEPS:
            epochs = min(MAX_EPOCHS, math.ceil(MIN_STEPS / per_epoch))
            reason += (f": {TARGET_EPOCHS} epochs would be {per_epoch * TARGET_EPOCHS} steps, too few to learn from "
                       f"a small file, so {epochs} epochs = {epochs * per_epoch} steps (at least {MIN_STEPS}, at most "
                       f"{MAX_EPOCHS} epochs)")
        else:
            reason += f": {TARGET_EPOCHS} epochs = {epochs * per_epoch} steps"
        decisions.append(Decision("train.num_train_epochs", epochs, reason + "; set train.num_train_epochs to choose"))
    total = max_steps if max_steps > 0 else math.ceil(float(epochs if epochs is not None else TARGET_EPOCHS) * per_epoch)
    if train.get("save_steps") is None and train.get("save_strategy", "steps") == "steps":
        every = max(math.ceil(CHECKPOINT_FRACTION * total), MIN_CHECKPOINT_STEPS)
        decisions.append(Decision("train.save_steps", every, f"a checkpoint every {every} of the {total} steps (every "
                                  f"{CHECKPOINT_FRACTION:.0%}, at least {MIN_CHECKPOINT_STEPS} apart); set "
                                  "train.save_steps to choose"))
    return decisions


def epochs(train: dict, sequences: int, processes: int = 1) -> float:
    """The epochs a run trains: its own setting, else the decided one."""
    if int(train.get("max_steps") or -1) > 0:
        return int(train["max_steps"]) / steps_per_epoch(train, sequences, processes)
    decided = {d.setting: d.value for d in decide(train, sequences, processes)}
    value = train.get("num_train_epochs")
    return float(value if value is not None else decided.get("train.num_train_epochs", TARGET_EPOCHS))
