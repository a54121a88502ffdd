"""`python -m lorakit.compare`: compare the base model, adapters and few-shot prompting on one held-out set.

Usage:
    python -m lorakit.compare "candidates=[base,outputs/A,outputs/B/checkpoint-40,fewshot:4]" data.test_file=test.jsonl
    python -m lorakit.compare "candidates=[base,outputs/A]"           # A's own test split

Writes compare.json, compare.md, compare.html (figures embedded) and examples.jsonl to out_dir (default
outputs/compare/<date>/<time>); W&B tables too with logger=wandb. Answers are cached: a re-run, or one more
candidate, generates only what is new. eval.judge.model=... adds an LLM judge (lorakit.evaluation.judge).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from lorakit import methods
from lorakit.config.compose import cuda_available, register_resolvers
from lorakit.core.errors import exit_2_on_user_error
from lorakit.core.paths import CONF_DIR
from lorakit.core.runs import RunFolder, read_jsonl
from lorakit.data import task_match
from lorakit.evaluation import candidates as C
from lorakit.evaluation.comparison import compare, test_set
from lorakit.evaluation.report import comparison_table, write_comparison
from lorakit.models.loading import load_base
from lorakit.stages.loggers import RunLogger

log = logging.getLogger("lorakit.compare")
register_resolvers()


def _test_rows(cfg: DictConfig, runs: list, tokenizer) -> list[dict]:
    """data.test_file when given, else the test split of the first run compared."""
    fields = methods.of(cfg).task_fields(cfg)
    if cfg.data.test_file:
        return test_set(cfg, tokenizer, None, fields)
    if runs and runs[0].split("test").is_file():
        return test_set(cfg, tokenizer, runs[0].split("test"), fields)
    raise C.CandidateError("no test set: set data.test_file=path/to/test.jsonl (chat JSONL), or compare a run "
                           "folder that has a test split")


def _check_task(cfg: DictConfig, candidates: list, rows: list[dict]) -> None:
    """The test set must hold the task each compared run was trained on (data.check_task_match=false skips)."""
    if not cfg.data.get("check_task_match", True):
        return
    test = [r["messages"] for r in rows]
    for c in candidates:
        if c.run is not None and c.run.split("train").is_file():
            refused = task_match.refusal([r["messages"] for r in read_jsonl(c.run.split("train"))], test,
                                         test_set=cfg.data.get("test_file") or "(the runs' own)", trained=f"candidate {c.name!r}",
                                         fix="Set data.test_file=<a held-out file of that task>")
            if refused:
                raise C.CandidateError(refused)


def run(cfg: DictConfig) -> dict:
    candidates = [C.parse(spec) for spec in cfg.candidates]
    runs = [c.run for c in candidates if c.run is not None]
    base = load_base(cfg.model)
    rows = _test_rows(cfg, runs, base.tokenizer)
    _check_task(cfg, candidates, rows)
    train_rows = None
    if any(c.kind == "fewshot" for c in candidates):
        source = Path(cfg.data.train_file) if cfg.data.train_file else (runs[0].split("train") if runs else None)
        train_rows = read_jsonl(source) if source and source.is_file() else []
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    logger = RunLogger(cfg, out_dir)
    failed = True
    try:
        result = compare(cfg, candidates, rows, base=base, cuda=cuda_available(), train_rows=train_rows,
                         cache_dir=cfg.eval.cache_dir if cfg.eval.cache else None)
        write_comparison(out_dir, result, rows, examples=cfg.eval.report_examples)
        logger.log_comparison(result, rows)
        failed = False
    finally:
        logger.finish(failed=failed)
    log.info("%d test examples:\n%s\nreport: %s", len(rows), comparison_table(result), RunFolder(out_dir).compare(".md"))
    return result


@hydra.main(config_path=str(CONF_DIR), config_name="compare", version_base="1.3")
def main(cfg: DictConfig) -> None:
    with exit_2_on_user_error(log):
        run(cfg)


if __name__ == "__main__":
    main()
