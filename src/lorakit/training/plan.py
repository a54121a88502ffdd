"""Training settings that follow the data's size: `null` in conf/train (the fine-tuning API's "auto"), decided for
each run from the number of training sequences, and stated with the reason in the log and data_report.md.
Explicit settings always win.

- train.num_train_epochs: null -> 3 epochs, raised for small files until training takes MIN_STEPS optimizer steps
  (at most MAX_EPOCHS). OpenAI's "auto" follows the same idea (at least ~100 example-passes, 3 epochs by default);
  a floor on optimizer steps also holds when the batch is raised.
- train.save_steps: null -> a checkpoint every 10% of the steps, but at most one every MIN_CHECKPOINT_STEPS (a
  tiny run no longer writes one every 1.5 steps).
- data.val_fraction: null -> 10% held out for the validation loss from MIN_VALIDATION_POOL examples on, none below
  (applied by the prepare stage's split).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

TARGET_EPOCHS = 3          # passes over a file of a few hundred examples or more (BENCHMARKS.md: defaults)
MIN_STEPS = 60             # optimizer steps a small file gets at least: 20 examples at batch 4 = 12 epochs
MAX_EPOCHS = 25            # 10 examples or fewer: more passes only memorise
CHECKPOINT_FRACTION = 0.1  # a crash loses at most this share of the training
MIN_CHECKPOINT_STEPS = 10  # steps between checkpoints at least
VALIDATION_FRACTION = 0.1  # data.val_fraction=null: held out for the validation loss ...
MIN_VALIDATION_POOL = 100  # ... from this many training examples on (10 validation examples); below, all train


@dataclass(frozen=True)
class Decision:
    """A setting lorakit chose for this run (its config value was null), with the reason."""

    setting: str
    value: float | int
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.setting}={self.value:g}: {self.reason}"


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


def validation_fraction(data, pool: int, *, needed: bool = False) -> tuple[float, Decision | None]:
    """data.val_fraction, or (null) the decided fraction with its reason; `needed`: the run is ranked by its
    validation loss (optimized_metric=validation_loss), so it gets a split whatever its size."""
    if data.val_fraction is not None:
        return float(data.val_fraction), None
    if needed:
        return VALIDATION_FRACTION, Decision("data.val_fraction", VALIDATION_FRACTION, f"{pool} training examples; "
                                             "optimized_metric=validation_loss ranks runs by it, so "
                                             f"{VALIDATION_FRACTION:.0%} is held out whatever the size")
    if pool >= MIN_VALIDATION_POOL:
        return VALIDATION_FRACTION, Decision("data.val_fraction", VALIDATION_FRACTION, f"{pool} training examples: "
                                             f"{VALIDATION_FRACTION:.0%} held out for the validation loss")
    return 0.0, Decision("data.val_fraction", 0, f"{pool} training examples, under {MIN_VALIDATION_POOL}: all of them "
                         "train (a validation loss on a handful of examples tells little and costs a share of the "
                         "data); set data.val_fraction=0.1 or data.validation_file to validate anyway")
