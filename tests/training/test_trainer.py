"""Training on the tiny local Llama: LoRA weights move, base weights do not, and a saved adapter reloads exactly."""

from __future__ import annotations

import json

import pytest
import torch

from helpers import tiny_trainer, tool_picker_rows
from lorakit.data.template import prompt_and_reference
from lorakit.inference.engine import generate
from lorakit.stages import train
from lorakit.training.trainer import prepare_for_kbit_training


def test_only_lora_weights_change(trained):
    trainer, before, *_ = trained
    after = dict(trainer.model.named_parameters())
    lora = [n for n in after if "lora_" in n]
    base = [n for n in after if "lora_" not in n]
    assert lora and base
    assert all(after[n].requires_grad for n in lora) and not any(after[n].requires_grad for n in base)
    assert all(torch.equal(after[n], before[n]) for n in base), "a base weight changed during LoRA training"
    changed = [n for n in lora if not torch.equal(after[n], before[n])]
    assert len(changed) == len(lora), f"{len(lora) - len(changed)} LoRA tensors did not move"


def test_saved_adapter_reloads_to_identical_outputs(trained, tiny_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    trainer, _, tokenizer, eot, tmp = trained
    trainer.model.save_pretrained(str(tmp / "adapter"))
    model = trainer.model.eval()
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_dir), str(tmp / "adapter")).eval()
    ids = tokenizer(["<|im_start|>user\nplay jazz<|im_end|>\n<|im_start|>assistant\n"], return_tensors="pt")
    with torch.no_grad():
        a, b = model(**ids).logits, reloaded(**ids).logits
        with reloaded.disable_adapter():
            base = reloaded(**ids).logits
    assert torch.equal(a, b)
    assert not torch.allclose(a, base), "the adapter has no effect, so this test would prove nothing"
    prompts = [prompt_and_reference(tokenizer, r["messages"])[0] for r in tool_picker_rows("test", 3)]
    kwargs = {"batch_size": 2, "max_new_tokens": 8, "eot_ids": eot}
    assert generate(model, tokenizer, prompts, **kwargs) == generate(reloaded, tokenizer, prompts, **kwargs)


def test_compact_loss_equals_trl_loss_and_gradients(trained):
    """The trainer's CPU loss (LM head on labelled positions only) matches TRL's own, value and gradients."""
    trainer, *_ = trained
    model = trainer.model.eval()  # no LoRA dropout, so both paths see the same network; gradients still flow
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    n_items = int((batch["labels"][:, 1:] != -100).sum())
    losses, grads = [], []
    for compute in (trainer.compute_loss, super(type(trainer), trainer).compute_loss):
        model.zero_grad()
        loss = compute(model, dict(batch), num_items_in_batch=n_items)
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert torch.allclose(losses[0], losses[1], rtol=1e-4), losses  # chunked logsumexp rounds differently
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], rtol=1e-3, atol=1e-6), name


def test_out_of_memory_says_what_to_lower(trained):
    """A CUDA OOM (raised here by a callback: CPU runs have no CUDA allocator) ends in advice, not a traceback."""
    from transformers import TrainerCallback

    from lorakit.core.oom import OutOfMemory

    class RaiseOOM(TrainerCallback):
        def on_step_begin(self, *args, **kwargs):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.")

    trainer, *_ = trained
    callback = RaiseOOM()
    trainer.add_callback(callback)
    try:
        with pytest.raises(OutOfMemory) as info:
            train.train_or_advise(trainer, quantized=False)
    finally:
        trainer.remove_callback(callback)
    message = str(info.value)
    longest = max(len(ids) for ids in trainer.train_dataset["input_ids"])
    assert f"micro-batch 4 x up to {longest} tokens" in message
    assert "train.per_device_train_batch_size=2 train.gradient_accumulation_steps=2" in message  # same effective batch
    assert "train.activation_checkpointing=true" in message  # off on CPU, so it is offered
    assert "quant=nf4" in message
    assert "Tried to allocate 2.00 GiB" in message


def test_kbit_preparation_keeps_the_compute_dtype(tiny_dir):
    """peft's prepare_model_for_kbit_training upcasts norms, embeddings and LM head to fp32, which would make the
    residual stream, attention and saved activations fp32; lorakit casts them back (bitsandbytes needs CUDA, so
    the unquantized tiny model in bf16 stands in for the non-quantized weights of a 4-bit model)."""
    from types import SimpleNamespace

    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM

    args = SimpleNamespace(activation_checkpointing=False, gradient_checkpointing_kwargs={"use_reentrant": False})
    upcast = prepare_model_for_kbit_training(AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.bfloat16))
    assert {p.dtype for p in upcast.parameters()} == {torch.float32}  # what peft alone does
    model = prepare_for_kbit_training(AutoModelForCausalLM.from_pretrained(tiny_dir, dtype=torch.bfloat16), args,
                                            torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert not any(p.requires_grad for p in model.parameters())
    ids = torch.tensor([[5, 6, 7]])
    assert model.model.norm(model.model.embed_tokens(ids)).dtype == torch.bfloat16


def test_the_last_step_and_every_checkpoint_log_their_own_training_loss(tmp_path, tiny_dir):
    """Whatever logging_steps says, the values logged at a checkpoint's step and at the last step are that step's:
    the server's job events and checkpoint metrics read them."""
    trainer, _ = tiny_trainer(tmp_path, tiny_dir, 24, "+experiment=quickstart", "+train.max_steps=4",
                              "train.logging_steps=3", "train.save_steps=2")
    trainer.train()
    progress = [json.loads(line) for line in (tmp_path / "progress.jsonl").read_text().splitlines()]
    logged = {p["step"] for p in progress if "loss" in p}
    saved = {int(p.name.split("-")[1]) for p in (tmp_path / "checkpoints").glob("checkpoint-*")}
    assert saved == {2, 4} and logged == {1, 2, 3, 4}  # 1 and 3: logging_steps' own (and the first step)
