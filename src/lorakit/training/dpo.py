"""The trainer of a method=dpo run: TRL's DPOTrainer + PEFT LoRA on the pairs the prepare stage tokenized.

trl.DPOConfig comes from cfg.train (every field the two configs share, the `null` defaults filled as for supervised
runs: lorakit.training.trainer.training_arguments) and cfg.method (DPO's own fields: beta, loss_type, ...).
The reference model is the starting point without a second copy of the weights: the base with the new LoRA
disabled, or, with init_from, a frozen copy of the starting adapter (TRL's "ref" adapter). By default its
log-probabilities are computed once before training (method.precompute_ref_log_probs), not again at every step.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from lorakit.core.runs import RunFolder
from lorakit.models.loading import BaseModel
from lorakit.training.resume import AtomicCheckpoints
from lorakit.training.trainer import method_arguments, prepared_sets, progress_callback, starting_model

log = logging.getLogger(__name__)

PRETOKENIZED = {"prompt_ids", "chosen_ids", "rejected_ids"}


def dpo_config(cfg: DictConfig, run_dir: Path, *, cuda: bool, has_validation: bool, report_to: str, sequences: int):
    """trl.DPOConfig from cfg.train (the fields DPOConfig has) and cfg.method (without its name)."""
    from trl import DPOConfig

    args = method_arguments(cfg, DPOConfig, cuda=cuda, has_validation=has_validation, sequences=sequences)
    # DPO batches are padded (TRL's padding-free DPO is not available); each pair is prompt + chosen and + rejected
    args["padding_free"] = False
    return DPOConfig(output_dir=str(RunFolder(run_dir).checkpoints), report_to=report_to,
                     max_length=cfg.data.max_length, use_cpu=not cuda, **args)


def score_labelled_positions_only() -> None:
    """TRL's fused LM head scores only the reply positions on CUDA but every position elsewhere (a fixed shape keeps
    Neuron from recompiling); on CPU the prompt positions are most of the work and change nothing (their log-probs
    are masked out), so they are left out there too: the same log-probs, the LM head on a fraction of the tokens."""
    import trl.trainer.utils as trl_utils

    if getattr(trl_utils, "_use_triton", None) is not None and not getattr(trl_utils, "_lorakit_compact", False):
        on_triton = trl_utils._use_triton
        trl_utils._use_triton = lambda device: device.type == "cpu" or on_triton(device)
        trl_utils._lorakit_compact = True


def _trainer_class():
    from trl import DPOTrainer

    class PreTokenizedDPOTrainer(AtomicCheckpoints, DPOTrainer):
        """DPOTrainer on pairs already tokenized by the prepare stage (the exact inference prompt, each reply through
        its end of turn): TRL's own tokenization, which would render them again, is skipped."""

        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            if PRETOKENIZED <= set(dataset.column_names):
                return dataset
            return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    return PreTokenizedDPOTrainer


def build_dpo_trainer(cfg: DictConfig, run_dir: Path, base: BaseModel, *, cuda: bool, report_to: str):
    """Load the prepared pairs and the starting model, and return the ready DPO trainer."""
    train_ds, val_ds = prepared_sets(run_dir, "preference pairs (DPO)")
    args = dpo_config(cfg, run_dir, cuda=cuda, has_validation=val_ds is not None, report_to=report_to,
                      sequences=len(train_ds))
    model, peft_config = starting_model(cfg, base, args, cuda=cuda)
    tokenizer = base.tokenizer
    tokenizer.padding_side = "right"
    score_labelled_positions_only()
    return _trainer_class()(
        model=model, ref_model=None, args=args, train_dataset=train_ds, eval_dataset=val_ds,
        processing_class=tokenizer, peft_config=peft_config, callbacks=[progress_callback(RunFolder(run_dir).progress)],
    )
