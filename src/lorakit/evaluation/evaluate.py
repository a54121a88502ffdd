"""Evaluate stage: base model vs tuned adapter on the held-out test set, greedy decoding, batched.

Usage:
    python -m train +experiment=quickstart                                     # after training, in the same run
    python -m train +experiment=quickstart stages=[prepare,evaluate] adapter_dir=outputs/.../adapter

Loads the base model once: the base answers come from the PEFT model with its adapter disabled, the tuned
answers with it enabled (merged first when the base is not quantized, which makes decoding faster).
Writes metrics.json, predictions.jsonl and report.md to the run folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from lorakit.evaluation import metrics as M
from lorakit import oom
from lorakit.models import load_model
from lorakit.data.prepare import held_out_examples, test_rows
from lorakit.evaluation.report import write_report
from lorakit.data.template import prompt_and_reference

log = logging.getLogger(__name__)


@torch.inference_mode()
def generate(model, tokenizer, prompts: list[str], *, batch_size: int, max_new_tokens: int, eot_ids: set[int],
             desc: str = "generating") -> list[str]:
    """Greedy-decode every prompt, in left-padded batches of similar length; returns the new text per prompt."""
    from transformers import GenerationConfig

    tokenizer.padding_side = "left"
    encoded = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))  # longest first: memory peaks early
    gen_config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=sorted(eot_ids),
        pad_token_id=tokenizer.pad_token_id,
    )
    outputs: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device
    with tqdm(total=len(prompts), desc=desc, unit="ex") as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in idx]}, return_tensors="pt").to(device)
            out = model.generate(**batch, generation_config=gen_config)
            new = out[:, batch["input_ids"].shape[1] :]
            for i, text in zip(idx, tokenizer.batch_decode(new, skip_special_tokens=True), strict=True):
                outputs[i] = text.strip()
            bar.update(len(idx))
    return outputs


def default_max_new_tokens(tokenizer, references: list[str]) -> int:
    """Room for the longest reference answer with a margin: 1.25 x its length in tokens + 16."""
    longest = max(len(ids) for ids in tokenizer(references, add_special_tokens=False)["input_ids"])
    return int(1.25 * longest) + 16


def load_test_set(cfg: DictConfig, run_dir: Path, tokenizer) -> list[dict]:
    """The prepared test set of this run, or (evaluate-only runs) the one the data config defines."""
    path = run_dir / "data" / "test.jsonl"
    if path.is_file():
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        examples, findings = test_rows(held_out_examples(cfg.data, cfg.seed, tokenizer), tokenizer,
                                       cfg.data.max_length)
        for finding in findings:
            log.warning("not evaluated: %s", finding)
        rows = [{"file": ex.file, "line": ex.line, "messages": ex.messages, "tools": ex.tools} for ex in examples]
    return rows[: cfg.eval.max_examples] if cfg.eval.max_examples else rows


def run(cfg: DictConfig, run_dir: Path, model_path: str, adapter_dir: Path, tokenizer, eot_ids: set[int], *,
        cuda: bool) -> tuple[dict[str, dict[str, float]], list[dict]]:
    """Generate with base and tuned models, score them, and write metrics.json, predictions.jsonl, report.md.

    Returns:
        ({"base": {metric: value}, "tuned": {...}}, one prediction record per test example)
    """
    from peft import PeftModel

    rows = load_test_set(cfg, run_dir, tokenizer)
    if not rows:
        raise ValueError("the test set is empty: set data.test_file or data.test_fraction > 0")
    prompts, references = zip(*(prompt_and_reference(tokenizer, r["messages"], r.get("tools")) for r in rows), strict=True)
    max_new = cfg.eval.max_new_tokens or default_max_new_tokens(tokenizer, list(references))
    log.info("evaluating base and tuned on %d test examples (max %d new tokens, batch %d)", len(rows), max_new,
             cfg.eval.batch_size)

    quant = OmegaConf.to_container(cfg.quant, resolve=True)
    model = PeftModel.from_pretrained(load_model(model_path, cfg.model, quant, cuda=cuda), str(adapter_dir))
    model.eval()
    kwargs = {"batch_size": cfg.eval.batch_size, "max_new_tokens": max_new, "eot_ids": eot_ids}
    try:
        with model.disable_adapter():
            base = generate(model, tokenizer, list(prompts), desc="base", **kwargs)
        tuned_model = model if quant else model.merge_and_unload()
        tuned = generate(tuned_model, tokenizer, list(prompts), desc="tuned", **kwargs)
    except torch.OutOfMemoryError as err:
        raise oom.eval_advice(err, cfg.eval.batch_size) from None

    results = {"base": M.compute(cfg.eval.metrics, base, references),
               "tuned": M.compute(cfg.eval.metrics, tuned, references)}
    (run_dir / "metrics.json").write_text(json.dumps(results, indent=2))
    predictions = []
    for row, ref, b, t in zip(rows, references, base, tuned, strict=True):
        last = max(i for i, m in enumerate(row["messages"]) if m["role"] == "assistant")
        predictions.append({"line": row["line"], "input": row["messages"][:last], "reference": ref, "base": b,
                            "tuned": t})
    (run_dir / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in predictions))
    table = write_report(run_dir, results, rows, references, base, tuned, cfg=cfg, adapter_dir=adapter_dir)
    log.info("held-out results (%d examples):\n%s", len(rows), table)
    return results, predictions
