"""The inference engine on the tiny model: batched greedy generation as one by one, an adapter merged for speed
leaves the base exactly as loaded, mixed batches answer each row with its own adapter."""

from __future__ import annotations

from helpers import tool_picker_rows
from lorakit.data.template import prompt_and_reference
from lorakit.inference.engine import generate


def test_an_adapter_merged_for_speed_leaves_the_base_exactly_as_loaded(two_runs, tiny_dir, monkeypatch):
    """merge="restore": while generating, the adapter is merged (same logits as unmerged); afterwards the base
    weights are bit for bit as loaded, for the next candidate."""
    import torch

    from helpers import compose_cfg
    from lorakit.inference import engine as inference
    from lorakit.models.loading import load_base

    base = load_base(compose_cfg("model=tiny-llama").model)
    tokenizer = base.tokenizer
    engine = inference.Engine(base, cuda=False)
    engine.add_adapter("A", two_runs / "A" / "adapter")
    engine.add_adapter("B", two_runs / "B" / "adapter")
    before = {k: v.clone() for k, v in engine.model.state_dict().items()}
    q_proj = next(k for k in before if k.endswith("layers.0.self_attn.q_proj.base_layer.weight"))
    ids = tokenizer(["hello there", "what is the weather"], return_tensors="pt", padding=True)
    engine.model.set_adapter("A")
    with torch.no_grad():
        unmerged = engine.model(**ids).logits
    seen = {}

    def look_while_generating(model, tok, prompts, **kwargs):
        with torch.no_grad():
            seen["logits"] = model(**ids).logits
        seen["merged"] = not torch.equal(model.state_dict()[q_proj], before[q_proj])
        return ["answer"] * len(prompts)

    monkeypatch.setattr(inference, "generate", look_while_generating)
    assert engine.generate(["p1", "p2"], adapter="A", max_new_tokens=2, desc="A", merge="restore") == ["answer"] * 2
    assert seen["merged"] and torch.allclose(seen["logits"], unmerged, atol=1e-5)
    after = engine.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "the base weights changed"


def test_mixed_batches_answer_each_row_with_its_own_adapter(tiny_dir, tmp_path):
    """generate_mixed (GPUs' default) gives each candidate the answers it gives alone, rows kept in order."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from helpers import compose_cfg
    from lorakit.inference.engine import Engine
    from lorakit.models.loading import load_base

    for name, seed in (("A", 1), ("B", 2)):  # adapters with random, large LoRA weights: their answers differ
        torch.manual_seed(seed)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_dir), LoraConfig(
            r=8, lora_alpha=64, target_modules=["q_proj", "v_proj", "down_proj"], init_lora_weights=False))
        model.save_pretrained(str(tmp_path / name))
    base = load_base(compose_cfg("model=tiny-llama").model)
    base.eot_ids = set()  # every answer runs to max_new_tokens
    engine = Engine(base, batch_size=1, cuda=False)
    engine.add_adapter("A", tmp_path / "A")
    engine.add_adapter("B", tmp_path / "B")
    prompts = ["hello", "what is the weather in Paris", "remind me", "x"]
    alone = [engine.generate(prompts, adapter=a, max_new_tokens=5, desc=str(a)) for a in (None, "A", "B")]
    assert alone[0] != alone[1] != alone[2] and all(alone)
    mixed = engine.generate_mixed([(None, prompts), ("A", prompts), ("B", prompts[:2])], max_new_tokens=5)
    assert mixed == [alone[0], alone[1], alone[2][:2]]


def test_batched_generation_matches_one_by_one(trained):
    trainer, _, tokenizer, eot, _ = trained
    prompts = [prompt_and_reference(tokenizer, r["messages"])[0] for r in tool_picker_rows("test", 5)]
    kwargs = {"max_new_tokens": 6, "eot_ids": eot}
    model = trainer.model.eval()
    assert generate(model, tokenizer, prompts, batch_size=5, **kwargs) == [
        generate(model, tokenizer, [p], batch_size=1, **kwargs)[0] for p in prompts]
