"""A fine-tuning job as a `python -m train` command: OpenAI's method and hyperparameters as lorakit's settings, and
the uploads each method trains on.

Hyperparameters ("auto" leaves lorakit's own default): n_epochs -> train.num_train_epochs; learning_rate_multiplier
-> train.learning_rate x it; eval_interval -> validation every N steps. The method maps its own (lorakit.methods):
batch_size -> train.per_device_train_batch_size (reinforcement: tasks per step, each answered num_generations
times); beta (dpo) -> method.beta; compute_multiplier (reinforcement) -> method.num_generations x it;
eval_samples -> method.num_generations_eval; reasoning_effort has no meaning for lorakit's models (reported in the
job's events).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from lorakit import methods
from lorakit.core.distributed import free_port
from lorakit.core.paths import CONF_DIR, quoted

HOLDS = {"chat": "chat examples", "pairs": "preference pairs",
         "tasks": "tasks (every conversation ends in a user turn)"}  # an upload's kind (files_api), as said


def file_problem(job: dict, meta: dict, path: Path) -> str | None:
    """What is wrong with a checked upload for the job's method: another kind of data than it trains on (naming the
    method that trains on it), or what the method itself finds (e.g. task lines without a field the grader reads)."""
    method = methods.get(job["method"]["type"])
    kind = meta.get("lorakit_kind") or "chat"
    if kind == method.data:
        return method.file_problem(job, path, meta["filename"])
    said = f"holds {HOLDS.get(kind, kind)}; a {method.name} job trains on {methods.DATA[method.data]}"
    other = next((methods.get(n) for n in methods.names() if methods.get(n).data == kind), None)
    if other is None:
        return said
    own = {other.name: {f: {"...": "..."} for f in other.openai_fields}} if other.openai_fields else {}
    return f"{said}. Train on them with method={json.dumps({'type': other.name, **own})}"


def launcher(gpus: int) -> list[str]:
    """How a job's `python -m train` starts: itself, or on several GPUs under `accelerate launch` (DDP, one process
    per GPU, its rendezvous on a free port of its own so that jobs side by side do not meet)."""
    if gpus <= 1:
        return [sys.executable, "-m", "train"]
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONF_DIR / "accelerate" / "ddp.yaml"),
            "--num_processes", str(gpus), "--main_process_port", str(free_port()), "-m", "train"]


def command(body: dict, init_from: str | None, run_dir: Path, *, training_file: Path, validation_file: Path | None,
            model_overrides: list[str], learning_rate: float, base_model: str, gpus: int = 0) -> list[str]:
    """`python -m train ...` for the job (on `gpus` GPUs): prepare and train in run_dir, checkpoints every epoch,
    metrics every step."""
    hp, kind = body["hyperparameters"], body["method"]["type"]
    start = [f"init_from={quoted(init_from)}"] if init_from else []
    overrides = [f"method={kind}", *start, *model_overrides, "stages=[prepare,train]",
                 f"hydra.run.dir={quoted(run_dir)}", "logger=none", f"data.train_file={quoted(training_file)}",
                 "data.test_file=null", "data.test_fraction=0", f"seed={body['seed']}", "train.save_strategy=epoch",
                 "train.save_total_limit=3", "train.logging_steps=1"]  # as OpenAI: every step's metrics
    if validation_file:
        overrides.append(f"data.validation_file={quoted(validation_file)}")
        if hp.get("eval_interval", "auto") != "auto":
            overrides += ["train.eval_strategy=steps", f"+train.eval_steps={int(hp['eval_interval'])}"]
    else:
        overrides.append("data.val_fraction=0")  # as OpenAI: without a validation file, everything trains
    if hp["n_epochs"] != "auto":
        overrides.append(f"train.num_train_epochs={hp['n_epochs']}")
    overrides += methods.get(kind).job_overrides(body, hp, run_dir, base_model)  # batch, beta, a grader...
    if hp["learning_rate_multiplier"] != "auto":
        overrides.append(f"train.learning_rate={learning_rate * float(hp['learning_rate_multiplier'])!r}")
    return [*launcher(gpus), *overrides]


def retrain_script(job: dict, folder: Path, *, training_file: Path, validation_file: Path | None,
                   init_from: Path | None, model_overrides: list[str], learning_rate: float, base_model: str,
                   recorded: Path | None, test_file: Path | None, margin: float, free_text: bool = False,
                   judge: str | None = None, python: str = sys.executable) -> str:
    """run.sh for an OpenAI job brought home (lorakit.migrate): the same method on the same data with OpenAI's
    resolved hyperparameters mapped as the server maps a job's (`job`: a job body as jobs_api.hyperparameters
    reads it), trained into folder/local on the local base (a reinforcement job's grader written there); then,
    where answers were recorded, lorakit.compare of the local adapter against them with the non-inferiority margin
    (MARGIN in the environment overrides it) and, for free-text answers, the pairwise judge (JUDGE in the
    environment overrides `judge`; empty: none)."""
    run_dir = folder / "local"
    run_dir.mkdir(parents=True, exist_ok=True)
    train = command(job, str(init_from) if init_from else None, run_dir, training_file=training_file,
                    validation_file=validation_file, model_overrides=model_overrides, learning_rate=learning_rate,
                    base_model=base_model)
    lines = ["#!/usr/bin/env bash",
             f"# {job['id']}: {job['method']['type']} on {job.get('model')} -> {job.get('fine_tuned_model')}, trained "
             "again here, then compared with the answers recorded from it",
             "set -euo pipefail", shlex.join([python, *train[1:]])]
    if recorded is not None and test_file is not None:
        name = f"recorded:{recorded}"
        compare = shlex.join([python, "-m", "lorakit.compare", f"candidates=[{quoted(name)},{quoted(run_dir)}]",
                              f"reference={quoted(name)}", f"data.test_file={quoted(test_file)}", *model_overrides,
                              f"hydra.run.dir={quoted(folder / 'compare')}"]) + f' "eval.margin=${{MARGIN:-{margin}}}"'
        if free_text:  # metrics see the surface of free text; a judge reads it (both orders, as a win rate)
            lines.insert(3, f"JUDGE=${{JUDGE-{shlex.quote(judge) if judge else ''}}}  # the pairwise judge of the "
                            "free-text answers: a conf/model name, a folder, a hub id or openai:<model>; empty: none")
            compare += ' ${JUDGE:+"eval.judge.model=$JUDGE" eval.judge.mode=pairwise}'
        lines.append(compare)
    else:
        lines.append("# no recorded answers to compare with (no validation file, and no --prompts when migrating)")
    return "\n".join(lines) + "\n"
