"""backend=openai: the train stage through OpenAI's fine-tuning API (or any server that speaks it, such as
lorakit.serve), with the official openai SDK.

    python -m train backend=openai data.train_file=my/train.jsonl data.test_file=my/test.jsonl

After the prepare stage has checked the data: its train/validation splits are written in OpenAI's exact format
(data/openai_train.jsonl, ...; lorakit's bookkeeping keys removed, tool-call arguments as JSON strings) and
uploaded, the cost estimate is printed, the job is created with the hyperparameters from the config and followed
event by event (Ctrl-C asks before cancelling it); job.json in the run folder records the job and the model.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from lorakit.core.errors import UserError
from lorakit.core.runs import RunFolder, read_jsonl, write_jsonl
from lorakit.openai import api
from lorakit.openai.pricing import openai_cost
from lorakit.openai.records import training_record

log = logging.getLogger(__name__)
FINAL = {"succeeded", "failed", "cancelled"}


class HostedJobError(UserError, RuntimeError):
    """The hosted job did not succeed; the message carries the service's reason."""


def openai_files(run_dir: Path) -> dict[str, Path]:
    """data/openai_{train,validation}.jsonl from the checked splits; {split: path} for the non-empty ones."""
    folder = RunFolder(run_dir)
    out = {}
    for split in ("train", "validation"):
        rows = read_jsonl(folder.split(split)) if folder.split(split).is_file() else []
        if rows:
            out[split] = folder.openai_split(split)
            write_jsonl(out[split], (training_record(r) for r in rows))
    return out


def cost_line(cfg: DictConfig, run_dir: Path, n_epochs) -> str:
    report = json.loads(RunFolder(run_dir).data_report.read_text())
    if "billed_tokens" not in report["openai_cost"]:  # reinforcement: billed by training time
        return report["openai_cost"]["note"]
    per_epoch = report["openai_cost"]["billed_tokens"] / max(report["tokens"]["epochs"], 1)
    epochs = n_epochs if isinstance(n_epochs, int) else report["tokens"]["epochs"]
    pricing = OmegaConf.merge(cfg.pricing, {"model": cfg.backend.model})
    cost = openai_cost(pricing, int(per_epoch * epochs))
    price = (f"about ${cost['usd']:.2f} at ${cost['usd_per_1m_training_tokens']}/1M tokens (rates as of "
             f"{cost['rates_as_of']})" if cost["usd"] is not None else
             f"no rate for {cfg.backend.model} in conf/pricing/openai.yaml (add it to get a cost estimate)")
    return f"{cost['billed_tokens']:,} training tokens ({epochs} epochs): {price}"


def _record(run_dir: Path, job, base_url: str) -> None:
    RunFolder(run_dir).job.write_text(json.dumps(
        {"base_url": base_url, "job_id": job.id, "status": job.status, "model": job.model,
         "fine_tuned_model": job.fine_tuned_model, "error": job.error.model_dump() if job.error else None,
         "trained_tokens": job.trained_tokens}, indent=2))


def _ask_cancel(job_id: str) -> bool:
    if not sys.stdin.isatty():
        return False
    try:
        return input(f"\nCancel fine-tuning job {job_id}? [y/N] ").strip().lower() in {"y", "yes"}
    except (EOFError, KeyboardInterrupt):
        return False


def follow(client, job, run_dir: Path, base_url: str, poll_s: float):
    """Print the job's events as they come, with a step bar, until it ends; Ctrl-C asks before cancelling.

    Ctrl-C only sets a flag that the loop reads between requests: raised inside an HTTP call, the interrupt could
    be taken for a network error and retried away."""
    seen: set[str] = set()
    bar = None
    interrupted = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: interrupted.set())
    try:
        while True:
            job = client.fine_tuning.jobs.retrieve(job.id)
            for event in reversed(client.fine_tuning.jobs.list_events(job.id, limit=100).data):
                if event.id in seen:
                    continue
                seen.add(event.id)
                data = event.data or {}
                if event.type == "metrics" and data.get("total_steps"):
                    bar = bar or tqdm(total=data["total_steps"], desc=f"{job.id} training", unit="step")
                    bar.update(data["step"] - bar.n)
                    bar.set_postfix({k: round(v, 4) for k, v in data.items() if k.endswith("loss")})
                else:
                    log.log(logging.ERROR if event.level == "error" else logging.INFO, "%s: %s", job.id, event.message)
            _record(run_dir, job, base_url)
            if job.status in FINAL:
                return job
            if interrupted.wait(poll_s):
                break
    finally:
        signal.signal(signal.SIGINT, previous)  # a second Ctrl-C, e.g. at the question, stops at once
        if bar is not None:
            bar.close()
    if _ask_cancel(job.id):
        job = client.fine_tuning.jobs.cancel(job.id)
        _record(run_dir, job, base_url)
        log.warning("cancelled %s", job.id)
    else:
        log.warning("job %s keeps running at %s; its id is in %s", job.id, base_url, RunFolder(run_dir).job)
    raise KeyboardInterrupt


def train(cfg: DictConfig, run_dir: Path, how: dict) -> str:
    """Upload, create the job with OpenAI's `method` object `how` (the run's method gives it: lorakit.methods),
    follow it to its end; return the fine-tuned model's id.

    Raises:
        HostedJobError: the job failed or was cancelled (with the service's reason).
        CandidateError: no API key for OpenAI, or the endpoint refused a request.
    """
    import openai

    backend = cfg.backend
    base_url = backend.base_url or "https://api.openai.com/v1"
    client = api.client(backend)
    hp = how[how["type"]]["hyperparameters"]
    files = openai_files(run_dir)
    log.info("hosted fine-tuning of %s at %s: %s", backend.model, base_url, cost_line(cfg, run_dir, hp["n_epochs"]))
    try:
        ids = {split: client.files.create(file=(path.name, path.read_bytes()), purpose="fine-tune").id
               for split, path in files.items()}
        log.info("uploaded %s", ", ".join(f"{s} ({files[s].name}) as {i}" for s, i in ids.items()))
        job = client.fine_tuning.jobs.create(
            model=backend.model, training_file=ids["train"], validation_file=ids.get("validation"),
            suffix=backend.suffix or None, seed=int(cfg.seed),
            method=how)
    except openai.APIStatusError as err:
        raise HostedJobError(f"{base_url} refused the job ({err.status_code}): {err.message}") from None
    log.info("created %s (%s, hyperparameters %s); following it (Ctrl-C asks before cancelling)", job.id, how["type"], hp)
    _record(run_dir, job, base_url)
    job = follow(client, job, run_dir, base_url, float(backend.poll_s))
    if job.status != "succeeded":
        reason = f": {job.error.message}" if job.error else ""
        raise HostedJobError(f"fine-tuning job {job.id} {job.status}{reason}")
    log.info("fine-tuned model %s (%s trained tokens)", job.fine_tuned_model, job.trained_tokens)
    return job.fine_tuned_model
