"""Settings decided from the data's size (null in the config, "auto" in the fine-tuning API): what is decided,
with its reason, and that explicit settings win."""

from __future__ import annotations

from omegaconf import OmegaConf

from lorakit.data.splits import validation_fraction
from lorakit.training import plan

TRAIN = {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "num_train_epochs": None,
         "save_steps": None, "save_strategy": "steps"}


def test_a_small_file_gets_epochs_up_to_the_step_floor_and_sparser_checkpoints():
    decided = {d.setting: d for d in plan.decide(TRAIN, 20)}
    assert decided["train.num_train_epochs"].value == 12  # 5 steps an epoch; 3 epochs would be 15 steps
    assert "15 steps, too few" in decided["train.num_train_epochs"].reason
    assert decided["train.save_steps"].value == 10  # before: every 1.5 steps
    assert plan.epochs(TRAIN, 20) == 12.0


def test_a_file_of_a_few_hundred_keeps_three_epochs_and_checkpoints_every_tenth():
    decided = {d.setting: d.value for d in plan.decide(TRAIN, 270)}
    assert decided == {"train.num_train_epochs": 3, "train.save_steps": 21}  # 68 steps an epoch, 204 in all
    assert plan.decide(TRAIN, 5)[0].value == plan.MAX_EPOCHS  # 2 steps an epoch: capped
    assert plan.decide({**TRAIN, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 2}, 40, 2)[0].value \
        == 12  # 20 per process, 10 batches, 5 steps an epoch (accumulation and processes counted)


def test_explicit_settings_win():
    assert plan.decide({**TRAIN, "num_train_epochs": 1, "save_steps": 0.1}, 20) == []
    decided = plan.decide({**TRAIN, "max_steps": 40}, 20)  # max_steps: no epochs to decide
    assert [(d.setting, d.value) for d in decided] == [("train.save_steps", 10)]
    assert plan.epochs({**TRAIN, "max_steps": 40}, 20) == 8.0


def test_no_validation_split_below_a_hundred_examples_unless_asked():
    auto = OmegaConf.create({"val_fraction": None})
    fraction, decision = validation_fraction(auto, 99)
    assert fraction == 0 and "under 100" in decision.reason
    assert validation_fraction(auto, 100)[0] == 0.1
    assert validation_fraction(OmegaConf.create({"val_fraction": 0.2}), 20) == (0.2, None)
    fraction, decision = validation_fraction(auto, 40, needed=True)  # optimized_metric=validation_loss
    assert fraction == 0.1 and "optimized_metric=validation_loss" in decision.reason
