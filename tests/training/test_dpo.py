"""DPO on the tiny model: the real TRL DPOTrainer on pairs the prepare stage tokenized, from a new LoRA (the
reference: the base with it disabled) or from a supervised adapter (the reference: a frozen copy of it)."""

from __future__ import annotations

import torch

from helpers import compose_cfg, pair_rows, tiny_trainer, write_jsonl
from lorakit.core.runs import RunFolder, read_jsonl
from lorakit.evaluation.preference import reward_metrics
from lorakit.models.loading import BaseModel, end_of_turn_ids, load_tokenizer
from lorakit.stages import prepare
from lorakit.training.dpo import build_dpo_trainer

STEPS = ["+train.max_steps=12", "train.per_device_train_batch_size=8", "train.learning_rate=5e-2",
         "train.logging_steps=1", "train.save_strategy=no", "data.test_fraction=0", "data.val_fraction=0"]


def _dpo(run, tiny_dir, *overrides):
    run.mkdir(parents=True, exist_ok=True)
    train = write_jsonl(run / "pairs.jsonl", pair_rows(8))
    cfg = compose_cfg("method=dpo", "model=tiny-llama", f"data.train_file={train}", *STEPS, *overrides, run_dir=run)
    tokenizer = load_tokenizer(tiny_dir)
    base = BaseModel("tiny-llama", tiny_dir, tokenizer, end_of_turn_ids(tokenizer))
    prepare.run(cfg, tokenizer, base.eot_ids, run)
    return cfg, base, build_dpo_trainer(cfg, run, base, cuda=False, report_to="none")


def test_dpo_from_a_new_adapter_learns_the_pairs_with_the_disabled_adapter_as_reference(tmp_path, tiny_dir):
    cfg, base, trainer = _dpo(tmp_path, tiny_dir)
    assert trainer.ref_model is None and list(trainer.model.peft_config) == ["default"]  # no second model loaded
    trainer.train()
    logged = [h for h in trainer.state.log_history if "rewards/accuracies" in h]
    assert logged[0]["loss"] > logged[-1]["loss"] + 0.05 and logged[-1]["rewards/accuracies"] >= 0.75
    trainer.model.save_pretrained(str(tmp_path / "adapter"), selected_adapters=["default"])
    rows = [{**r, "line": i + 1} for i, r in enumerate(read_jsonl(RunFolder(tmp_path).split("train")))]
    metrics = reward_metrics(cfg, base, tmp_path / "adapter", None, rows, cuda=False)
    assert metrics["reward_accuracy"] >= 0.75 and metrics["reward_margin"] > 0


def test_dpo_from_a_supervised_adapter_keeps_a_frozen_copy_of_it_as_reference(tmp_path, tiny_dir):
    (tmp_path / "sft").mkdir()
    sft, _ = tiny_trainer(tmp_path / "sft", tiny_dir, 16, "+experiment=quickstart", "+train.max_steps=2",
                          "train.save_strategy=no")
    sft.train()
    sft.model.save_pretrained(str(tmp_path / "sft" / "adapter"))
    cfg, base, trainer = _dpo(tmp_path / "dpo", tiny_dir, f"init_from={tmp_path / 'sft'}")
    params = dict(trainer.model.named_parameters())
    lora = [n for n in params if ".default." in n and "lora_A" in n]
    assert lora and all(torch.equal(params[n], params[n.replace(".default.", ".ref.")]) for n in lora)
    assert not any(params[n.replace(".default.", ".ref.")].requires_grad for n in lora)
    trainer.train()
    params = dict(trainer.model.named_parameters())
    assert not all(torch.equal(params[n], params[n.replace(".default.", ".ref.")]) for n in lora)  # default moved
    trainer.model.save_pretrained(str(tmp_path / "dpo" / "adapter"), selected_adapters=["default"])
    assert not (tmp_path / "dpo" / "adapter" / "ref").exists()
    rows = [{**r, "line": i + 1} for i, r in enumerate(read_jsonl(RunFolder(tmp_path / "dpo").split("train")))]
    start = tmp_path / "sft" / "adapter"
    same = reward_metrics(cfg, base, start, start, rows, cuda=False)  # the start against itself: no reward at all
    assert same == {"reward_accuracy": 0.0, "reward_margin": 0.0}
    moved = reward_metrics(cfg, base, tmp_path / "dpo" / "adapter", start, rows, cuda=False)
    assert moved["reward_accuracy"] >= 0.75 and moved["reward_margin"] > 0
