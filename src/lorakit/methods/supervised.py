"""Supervised fine-tuning (TRL SFTTrainer + PEFT LoRA) on chat examples, loss on the assistant replies: the
default method, whose settings are train.* (trl.SFTConfig fields). Every hook is Method's own."""

from __future__ import annotations

from lorakit.methods.base import Method, register


class Supervised(Method):
    name = "supervised"


register(Supervised())
