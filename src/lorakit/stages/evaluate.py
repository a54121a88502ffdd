"""Evaluate stage: base model (or the adapter the run started from, init_from) vs tuned adapter on the held-out test
set, greedy decoding, batched; after DPO also the reward accuracy and margin on held-out pairs; after
reinforcement, the method's grader on the held-out tasks (with its interval and paired test).

Usage:
    python -m train +experiment=quickstart                                     # after training, in the same run
    python -m train +experiment=quickstart stages=[prepare,evaluate] adapter_dir=outputs/.../adapter

The engine of `python -m lorakit.compare` with the candidates [base, tuned] (lorakit.evaluation.comparison):
one base model load, the tuned answers from the adapter (merged first when the base is not quantized).
Writes metrics.json, predictions.jsonl, report.md, compare.json and compare.md to the run folder.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import DictConfig

from lorakit import methods
from lorakit.core.messages import prompt_of
from lorakit.core.runs import RunFolder, find_adapter, read_jsonl, write_jsonl
from lorakit.evaluation.candidates import Candidate
from lorakit.evaluation.comparison import compare, test_set
from lorakit.evaluation.report import write_comparison, write_report
from lorakit.models.loading import BaseModel

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run_dir: Path, base: BaseModel, adapter_dir: Path, *, cuda: bool,
        tuned_model: str | None = None) -> tuple[dict[str, dict[str, float]], list[dict], dict, list[dict]]:
    """Compare base and tuned (plus fewshot:K with eval.fewshot=K) through the evaluation engine; write
    metrics.json, predictions.jsonl, report.md, compare.json and compare.md.

    tuned_model: with backend=openai, the fine-tuned model's id; base and tuned then answer through the API
    (backend.model and tuned_model) instead of the local base model and adapter_dir.

    Returns:
        ({"base": {metric: value}, "tuned": {...}}, one prediction record per test example, the comparison
        (lorakit.evaluation.comparison.compare's result), the test rows)
    """
    folder = RunFolder(run_dir)
    method = methods.of(cfg)
    # this run's split; evaluate-only: the data config's
    rows = test_set(cfg, base.tokenizer, folder.split("test"), method.task_fields(cfg))
    start = None
    if tuned_model:
        candidates = [Candidate("base", "api", model=cfg.backend.model), Candidate("tuned", "api", model=tuned_model)]
    else:  # "base" is where training started: the base model, or init_from's adapter
        start = find_adapter(cfg.init_from) if cfg.get("init_from") else None
        candidates = [Candidate("base", "adapter", adapter=start) if start else Candidate("base", "base"),
                      Candidate("tuned", "adapter", adapter=Path(adapter_dir))]
    train_rows = None
    if cfg.eval.get("fewshot"):
        candidates.append(Candidate(f"fewshot:{cfg.eval.fewshot}", "fewshot", shots=int(cfg.eval.fewshot)))
        train_rows = read_jsonl(folder.split("train")) if folder.split("train").is_file() else []
    cache_dir = cfg.eval.cache_dir if cfg.eval.get("cache") else None
    cfg, graders = method.evaluation(cfg)  # e.g. reinforcement: its grader on the held-out tasks
    result = compare(cfg, candidates, rows, base=base, cuda=cuda, train_rows=train_rows, cache_dir=cache_dir,
                     graders=graders)
    results = {name: {m: stat["value"] for m, stat in stats.items()} for name, stats in result["candidates"].items()}
    if not tuned_model:  # a local adapter: what the method measures beyond the answers (DPO: held-out rewards)
        results["tuned"].update(method.extra_metrics(cfg, base, Path(adapter_dir), start, rows, cuda=cuda))
    folder.metrics.write_text(json.dumps(results, indent=2))
    answers, tuned, references = result["outputs"]["base"], result["outputs"]["tuned"], result["references"]
    predictions = []
    for row, ref, b, t in zip(rows, references, answers, tuned, strict=True):
        predictions.append({"line": row["line"], "input": prompt_of(row["messages"]), "reference": ref, "base": b,
                            "tuned": t})
    write_jsonl(folder.predictions, predictions)
    write_comparison(run_dir, result, rows, examples=cfg.eval.report_examples)
    table = write_report(run_dir, {k: results[k] for k in ("base", "tuned")}, rows, references, answers, tuned, cfg=cfg,
                         adapter_dir=tuned_model or adapter_dir)
    log.info("held-out results (%d examples):\n%s", len(rows), table)
    return results, predictions, result, rows
