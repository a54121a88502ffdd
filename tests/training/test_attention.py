"""Padding-free batches: same logits, loss and gradients as padded ones, and no attention across examples."""

from __future__ import annotations

import itertools

import pytest
import torch
from transformers import AutoModelForCausalLM
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from helpers import compose_cfg, tiny_trainer, tool_picker_rows, write_jsonl
from lorakit.models.loading import BaseModel, end_of_turn_ids
from lorakit.stages import prepare
from lorakit.training import attention
from lorakit.training.trainer import build_trainer


def _examples(lengths, vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(3, vocab, (n,), generator=g).tolist()} for n in lengths]


def _padded_and_flat(model, examples):
    """Logits of each example: from a right-padded SDPA batch, and from one padding-free lorakit_varlen row."""
    padded = DataCollatorForLanguageModeling(pad_token_id=0)(examples)
    flat = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(examples)
    with torch.no_grad():
        model.set_attn_implementation("sdpa")
        a = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
        model.set_attn_implementation(attention.register())
        b = model(**{k: v for k, v in flat.items() if k != "labels"}).logits[0]
    lengths = [len(e["input_ids"]) for e in examples]
    return [a[i, :n] for i, n in enumerate(lengths)], list(b.split(lengths))


@pytest.fixture(scope="module")
def tiny_model(tiny_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_dir).eval()  # grouped-query attention, like SmolLM2 and Llama 3


def test_padding_free_logits_equal_padded(tiny_model):
    examples = _examples([7, 31, 2, 18], tiny_model.config.vocab_size)
    padded, flat = _padded_and_flat(tiny_model, examples)
    for a, b in zip(padded, flat, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


def test_no_attention_across_examples(tiny_model):
    """Changing every token of the neighbouring examples leaves an example's logits unchanged."""
    vocab = tiny_model.config.vocab_size
    first = _examples([12, 20, 9], vocab, seed=1)
    second = [first[0], *_examples([25, 4], vocab, seed=2)]
    _, flat1 = _padded_and_flat(tiny_model, first)
    _, flat2 = _padded_and_flat(tiny_model, second)
    torch.testing.assert_close(flat1[0], flat2[0], rtol=0, atol=0)
    # and the check can fail: plain causal attention over the same row does mix the examples
    flat = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(second)
    tiny_model.set_attn_implementation("sdpa")
    with torch.no_grad():
        leaky = tiny_model(input_ids=flat["input_ids"]).logits[0, 12:37]
    assert not torch.allclose(leaky, flat2[1], atol=1e-3)


def test_padding_free_trainer_loss_and_gradients_equal_padded(tmp_path, tiny_dir):
    """Through the real trainer: a padding-free batch gives the padded batch's loss and LoRA gradients."""
    from lorakit.models.loading import load_tokenizer

    data = write_jsonl(tmp_path / "train.jsonl", tool_picker_rows("train", 12))
    tokenizer = load_tokenizer(tiny_dir)
    prepare.run(compose_cfg("model=tiny-llama", f"data.train_file={data}", "data.test_file=null",
                            "data.val_fraction=0", run_dir=tmp_path), tokenizer, end_of_turn_ids(tokenizer),
                tmp_path)
    results = []
    for padding_free in (False, True):
        cfg = compose_cfg("model=tiny-llama", f"data.train_file={data}", f"train.padding_free={padding_free}",
                          "lora.lora_dropout=0", run_dir=tmp_path)
        torch.manual_seed(0)  # same LoRA initialisation for both
        base = BaseModel("tiny-llama", tiny_dir, tokenizer, end_of_turn_ids(tokenizer))
        trainer = build_trainer(cfg, tmp_path, base, cuda=False, report_to="none")
        assert trainer.model.config._attn_implementation == ("lorakit_varlen" if padding_free else "sdpa")
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(6)])
        assert ("attention_mask" in batch) != padding_free
        n_items = int((batch["labels"][:, 1:] != -100).sum())
        loss = trainer.compute_loss(trainer.model, dict(batch), num_items_in_batch=n_items)
        loss.backward()
        grads = {n: p.grad for n, p in trainer.model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads, n_items))
    (loss_a, grads_a, n_a), (loss_b, grads_b, n_b) = results
    assert n_a == n_b > 0
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=1e-6)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-3, atol=1e-6)


def test_packed_rows_score_like_their_examples_padded(tmp_path, tiny_dir):
    """train.packing=true (best-fit packing): a packed row's loss equals that of its examples in a padded batch."""
    trainer, tokenizer = tiny_trainer(tmp_path, tiny_dir, 16, "data.val_fraction=0", "data.max_length=400",
                                      "+train.packing=true", "lora.lora_dropout=0")
    assert trainer.model.config._attn_implementation == "lorakit_varlen"
    row = trainer.train_dataset[0]
    assert len(row["seq_lengths"]) > 1 and sum(row["seq_lengths"]) == len(row["input_ids"]) <= 400
    bounds = torch.tensor([0, *row["seq_lengths"]]).cumsum(0).tolist()
    examples = [{"input_ids": row["input_ids"][a:b], "labels": row["labels"][a:b]} for a, b in itertools.pairwise(bounds)]
    packed = trainer.data_collator([row])
    padded = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(examples)
    model = trainer.model.eval()
    with torch.no_grad():
        loss_packed = trainer.compute_loss(model, dict(packed))
        model.set_attn_implementation("sdpa")
        loss_padded = trainer.compute_loss(model, dict(padded))
    torch.testing.assert_close(loss_packed, loss_padded, rtol=1e-5, atol=1e-6)
