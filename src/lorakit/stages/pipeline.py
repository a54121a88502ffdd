"""The whole pipeline in one function: validate the config, then prepare -> train -> evaluate (-> merge).

Usage:
    python -m train +experiment=quickstart
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from lorakit import methods
from lorakit.config.compose import cuda_available, redact
from lorakit.config.validation import validate
from lorakit.core import distributed
from lorakit.core.runs import RunFolder, SweepFolder, read_jsonl
from lorakit.data import template
from lorakit.models import merging
from lorakit.models.loading import load_base
from lorakit.openai import hosted
from lorakit.stages import prepare
from lorakit.stages.loggers import RunLogger
from lorakit.sweeps import reuse
from lorakit.sweeps.trials import SweepJob, finished, identity
from lorakit.training import resume

log = logging.getLogger(__name__)


@contextmanager
def _timed(timings: dict[str, float], stage: str):
    start = time.perf_counter()
    yield
    timings[stage] = round(time.perf_counter() - start, 2)
    log.info("%s took %.1fs", stage, timings[stage])


def _check_saved_template(tokenizer, adapter_dir: Path, train_jsonl: Path) -> None:
    """The template saved with the adapter must render every training example exactly as in training."""
    rows = read_jsonl(train_jsonl) if train_jsonl.is_file() else []
    sha = template.verify_saved(tokenizer, adapter_dir, [(r["messages"], r["tools"]) for r in rows])
    log.info("the chat template saved with the adapter renders all %d training examples as in training (sha256 %s)",
             len(rows), sha[:12])


def _train_alongside(cfg: DictConfig, run_dir: Path, cuda: bool) -> None:
    """The processes other than rank 0 of a multi-process run: once rank 0 has prepared the data (and cleared the
    folder for resume=never), train with it; rank 0 alone saves, evaluates and logs."""
    if "train" not in cfg.stages or cfg.backend.name != "local":
        return None
    distributed.barrier()
    trained, checkpoint = resume.plan(run_dir, "auto")
    if not trained:
        from lorakit.stages import train  # here, not above: torch's and TRL's training modules take seconds to import

        train.run(cfg, run_dir, load_base(cfg.model), cuda=cuda, report_to="none", resume_from=checkpoint)
    return None


def _start(cfg: DictConfig, run_dir: Path, sweep: SweepJob | None) -> dict | None:
    """Record the run in its folder (config.yaml, identity.json): the job's identity, or None when a sweep job
    already ran to its end there with the same config and data."""
    run_dir.mkdir(parents=True, exist_ok=True)
    resolved = redact(OmegaConf.to_container(cfg, resolve=True))
    job = identity(resolved)
    if sweep and cfg.resume != "never" and finished(run_dir, job):
        log.info("%s ran to its end earlier with the same config and data: not running it again (resume=never reruns "
                 "it)", run_dir)
        return None
    if "train" in cfg.stages and cfg.backend.name == "local":
        resume.check(run_dir, resolved, cfg.resume, job["files"])
    RunFolder(run_dir).config.write_text(yaml.safe_dump(resolved, sort_keys=False))
    RunFolder(run_dir).identity.write_text(json.dumps(job, indent=2))
    return job


def _base_model(cfg: DictConfig, adapter_dir: Path):
    """The base model; an existing adapter is evaluated (or merged) with the tokenizer and chat template it was
    trained with."""
    evaluates_existing = "train" not in cfg.stages and ("evaluate" in cfg.stages or "merge" in cfg.stages)
    return load_base(cfg.model, tokenizer_from=adapter_dir if evaluates_existing else None)


def _train(cfg: DictConfig, run_dir: Path, base, adapter_dir: Path, logger: RunLogger, cuda: bool,
           timings: dict[str, float]) -> Path:
    """The local train stage, unless this folder holds the finished run; the adapter's folder."""
    trained, checkpoint = resume.plan(run_dir, cfg.resume)
    distributed.barrier()  # the other processes of a multi-process run start training from here
    if not trained:
        from lorakit.stages import train  # here, not above: a run that stops before training does not import TRL's trainers

        with _timed(timings, "train"):
            adapter_dir = train.run(cfg, run_dir, base, cuda=cuda, report_to=logger.report_to,
                                    resume_from=checkpoint)
    _check_saved_template(base.tokenizer, adapter_dir, RunFolder(run_dir).split("train"))
    return adapter_dir


def _stages(cfg: DictConfig, run_dir: Path, job: dict, sweep: SweepJob | None, logger: RunLogger, cuda: bool,
            timings: dict[str, float]) -> dict | None:
    """prepare -> train (local or hosted) -> evaluate -> merge, as configured; the evaluation metrics."""
    adapter_dir = Path(cfg.adapter_dir).resolve() if cfg.adapter_dir else RunFolder(run_dir).adapter
    base = _base_model(cfg, adapter_dir)
    results, tuned_model = None, None
    if "prepare" in cfg.stages:
        with _timed(timings, "prepare"):
            shared = SweepFolder(sweep.sweep_dir).prepared if sweep else None
            report = reuse.prepared(prepare.run, cfg, base.tokenizer, base.eot_ids, run_dir, shared, job["files"])
        acc = report["accounting"]
        logger.log_dict("data", {"records": acc["records"], "used": acc["used"], "dropped": acc["dropped"],
                                 "tokens": {k: v for k, v in report["tokens"].items() if k != "model"}})
    if "train" in cfg.stages and cfg.backend.name == "openai":  # hosted: OpenAI or an OpenAI-compatible server
        with _timed(timings, "train"):
            tuned_model = hosted.train(cfg, run_dir, methods.of(cfg).openai_method(cfg))
    elif "train" in cfg.stages:
        adapter_dir = _train(cfg, run_dir, base, adapter_dir, logger, cuda, timings)
    if "evaluate" in cfg.stages:
        from lorakit.stages import evaluate  # here: the report's plotting library only when there is a report

        with _timed(timings, "evaluate"):
            results, predictions, comparison, rows = evaluate.run(cfg, run_dir, base, adapter_dir, cuda=cuda,
                                                                  tuned_model=tuned_model)
        logger.log_dict("eval", results)
        logger.log_predictions(predictions)
        logger.log_comparison(comparison, rows)
    if "merge" in cfg.stages:  # into the unquantized base, also after QLoRA (see lorakit.models.merging)
        with _timed(timings, "merge"):
            merging.merge(adapter_dir, RunFolder(run_dir).merged, base=base.path)
    return results


def run(cfg: DictConfig, sweep: SweepJob | None = None) -> dict | None:
    """Run the configured stages in one run folder; return the evaluation metrics when evaluated.

    In a sweep (`sweep` given), a job that already ran to its end in its folder with the same config and data files
    is not run again, and the prepared data is shared by the jobs whose data, files and tokenizer are the same. Under
    `accelerate launch` every process calls this; rank 0 alone prepares, evaluates and logs."""
    from transformers import set_seed

    cuda = cuda_available()
    validate(cfg, cuda=cuda)
    run_dir = distributed.start(cuda, Path(cfg.run_dir).resolve())  # several processes: rank 0's folder
    set_seed(cfg.seed)
    if not distributed.is_main():
        return _train_alongside(cfg, run_dir, cuda)
    job = _start(cfg, run_dir, sweep)
    if job is None:
        metrics = RunFolder(run_dir).metrics
        return json.loads(metrics.read_text()) if metrics.is_file() else None
    log.info("run folder %s; stages %s; %s", run_dir, list(cfg.stages), "CUDA" if cuda else "CPU")
    logger = RunLogger(cfg, run_dir, sweep)
    timings: dict[str, float] = {}
    failed = True
    try:
        results = _stages(cfg, run_dir, job, sweep, logger, cuda, timings)
        logger.log_dict("time_s", timings)
        RunFolder(run_dir).timings.write_text(json.dumps(timings, indent=2))
        failed = False
    finally:
        logger.finish(failed=failed)
    if results:
        log.info("metrics: %s", json.dumps(results))
    log.info("done: everything is in %s", run_dir)
    return results
