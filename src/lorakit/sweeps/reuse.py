"""Prepare once per sweep: jobs whose data settings, data files, seed and tokenizer are the same reuse one prepared
dataset instead of reading, checking and tokenizing the files again each.

The prepared data is kept in <sweep dir>/prepared/<key>/ (key: a hash of all of that, file contents included); each
job gets its own hard-linked copy in run_dir/data, so a job's folder stays complete on its own. Jobs running side
by side (a parallel launcher) wait on a lock while the first one prepares.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from omegaconf import OmegaConf

from lorakit.core import distributed
from lorakit.core.runs import RunFolder
from lorakit.data import data_report
from lorakit.openai import pricing
from lorakit.training import plan

log = logging.getLogger(__name__)


def _tokenizer_sha256(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocab = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    parts = [vocab, tokenizer.chat_template or "", json.dumps(tokenizer.all_special_tokens)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def key(cfg, tokenizer, eot_ids: set[int], files: dict[str, str | None]) -> str:
    """What the prepared data depends on: the data settings, the files' contents (`files`: their sha256, from the
    run's identity), the seed, the tokenizer, and whether the run is ranked by its validation loss (the split)."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    parts = {"data": data, "seed": cfg.seed, "files": files, "method": (cfg.get("method") or {}).get("name"),
             "ranks_by_validation": cfg.get("optimized_metric") == "validation_loss",
             "tokenizer": _tokenizer_sha256(tokenizer), "eot": sorted(eot_ids)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(src, dst)


def for_this_run(report: dict, cfg) -> dict:
    """The report of shared data with this job's epochs, model and rates (the only parts that are the job's own)."""
    tokens = report["tokens"]
    train, sequences = OmegaConf.to_container(cfg.train, resolve=True), report["template"]["rendering"]["sequences"]
    epochs = plan.epochs(train, sequences, distributed.world_size())
    report["decisions"] = [d for d in report.get("decisions", []) if not d["setting"].startswith("train.")] + [
        d.to_dict() for d in plan.decide(train, sequences, distributed.world_size())]
    extra = report["template"]["rendering"]["extra_tokens_per_epoch"]
    tokens.update(model=cfg.model.name_or_path, epochs=epochs, total=int(tokens["per_epoch"] * epochs))
    report["openai_cost"] = pricing.openai_cost(cfg.pricing, int((tokens["per_epoch"] - extra) * epochs))
    return report


def prepared(prepare: Callable[..., dict], cfg, tokenizer, eot_ids: set[int], run_dir: Path, shared: Path | None,
             files: dict[str, str | None]) -> dict:
    """The prepare stage (`prepare`: lorakit.stages.prepare.run) into run_dir, or, with a `shared` folder, a copy of
    what an earlier job prepared from the same inputs (prepared there first if none has). Returns the data
    report."""
    if shared is None:
        return prepare(cfg, tokenizer, eot_ids, run_dir)
    store = shared / key(cfg, tokenizer, eot_ids, files)
    with _locked(shared / f"{store.name}.lock"):
        reused = (store / "done").is_file()
        if not reused:
            if store.exists():
                shutil.rmtree(store)  # left by a job killed while preparing
            prepare(cfg, tokenizer, eot_ids, store)
            (store / "done").write_text("")
        else:
            log.info("data prepared earlier in this sweep from the same files, settings and tokenizer: reusing %s",
                     store)
    target = RunFolder(run_dir)
    if target.data.exists():
        shutil.rmtree(target.data)
    shutil.copytree(RunFolder(store).data, target.data, copy_function=_link_or_copy)
    report = for_this_run(json.loads(RunFolder(store).data_report.read_text()), cfg)
    data_report.write(run_dir, report)
    if reused:
        data_report.log_summary(report)
    return report
