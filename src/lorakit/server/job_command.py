"""A fine-tuning job as a `python -m train` command: OpenAI's method and hyperparameters as lorakit's settings, and
the uploads each method trains on.

Hyperparameters ("auto" leaves lorakit's own default):
  n_epochs -> train.num_train_epochs; learning_rate_multiplier -> train.learning_rate x it; batch_size ->
  train.per_device_train_batch_size (reinforcement: tasks per step, each answered num_generations times);
  beta (dpo) -> method.beta; compute_multiplier (reinforcement) -> method.num_generations x it (more completions
  explored per task); eval_interval -> validation every N steps; eval_samples -> method.num_generations_eval;
  reasoning_effort has no meaning for lorakit's models (reported in the job's events by jobs_api).
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from lorakit.core.paths import quoted
from lorakit.data.tasks import read_tasks
from lorakit.evaluation.graders import spec

GENERATIONS = 4  # conf/method/reinforcement.yaml's num_generations, scaled by compute_multiplier
TASKS_FORMAT = ('one JSON object per line with "messages" ending in the user turn to answer, plus the fields the '
                "grader reads")


def missing_fields(body: dict, path: Path, filename: str) -> str | None:
    """For a reinforcement job: the task lines of an upload that lack a field its grader reads (file:line and the
    field), else None."""
    if body["method"]["type"] != "reinforcement":
        return None
    needed = spec.item_fields(body["method"]["reinforcement"]["grader"])
    missing = [f for f in read_tasks(path, needed).findings if f.category == "missing_field"]
    if not missing:
        return None
    lines = "; ".join(f"{filename}:{f.line}: {f.message}" for f in missing[:20])
    more = f" (and {len(missing) - 20} more)" if len(missing) > 20 else ""
    return f"{len(missing)} task line(s) lack a field the grader reads: {lines}{more}"


def wrong_kind(method: str, meta: dict) -> str | None:
    """What is wrong with a checked upload for this method: chat examples or tasks for dpo, pairs or tasks for
    supervised, anything but tasks for reinforcement."""
    kind = meta.get("lorakit_kind") or "chat"
    if method == "reinforcement" and kind != "tasks":
        return (f"holds {'preference pairs' if kind == 'pairs' else 'chat examples'}; a reinforcement job trains on "
                f"tasks: {TASKS_FORMAT}")
    if kind == "tasks" and method != "reinforcement":
        return ("holds tasks (every conversation ends in a user turn); train on them with method={\"type\": "
                "\"reinforcement\", \"reinforcement\": {\"grader\": {...}}}")
    if method == "dpo" and kind != "pairs":
        return ("holds chat examples; a dpo job trains on preference pairs: one JSON object per line with \"input\", "
                "\"preferred_output\" and \"non_preferred_output\"")
    if method == "supervised" and kind == "pairs":
        return "holds preference pairs; train on them with method={\"type\": \"dpo\"}"
    return None


def _reinforcement(body: dict, hp: dict, run_dir: Path, base_model: str) -> list[str]:
    """method.* and the batch of a reinforcement job; its grader written to the run folder (a model grader's
    served base id becomes the model the job loads)."""
    grader = json.loads(json.dumps(body["method"]["reinforcement"]["grader"]))  # a copy: the job keeps its own
    parts = list(grader["graders"].values()) if grader["type"] == "multi" else [grader]
    for part in parts:
        if part["type"] in {"score_model", "label_model"}:
            part["model"] = base_model
    path = run_dir / "grader.json"
    path.write_text(json.dumps(grader, indent=2))
    out = [f"method.grader={quoted(path)}"]
    generations = GENERATIONS
    if hp.get("compute_multiplier", "auto") != "auto":
        generations = max(2, round(GENERATIONS * float(hp["compute_multiplier"])))
        out.append(f"method.num_generations={generations}")
    if hp["batch_size"] != "auto" or generations != GENERATIONS:
        tasks = 1 if hp["batch_size"] == "auto" else int(hp["batch_size"])
        out.append(f"train.per_device_train_batch_size={tasks * generations}")
    if hp.get("eval_samples", "auto") != "auto":
        out.append(f"+method.num_generations_eval={int(hp['eval_samples'])}")
    return out


def command(body: dict, init_from: str | None, run_dir: Path, *, training_file: Path, validation_file: Path | None,
            model_overrides: list[str], learning_rate: float, base_model: str) -> list[str]:
    """`python -m train ...` for the job: prepare and train in run_dir, checkpoints every epoch, metrics every
    step."""
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
    if kind == "reinforcement":
        overrides += _reinforcement(body, hp, run_dir, base_model)
    elif hp["batch_size"] != "auto":
        overrides.append(f"train.per_device_train_batch_size={hp['batch_size']}")
    if hp.get("beta", "auto") != "auto":
        overrides.append(f"method.beta={float(hp['beta'])!r}")
    if hp["learning_rate_multiplier"] != "auto":
        overrides.append(f"train.learning_rate={learning_rate * float(hp['learning_rate_multiplier'])!r}")
    return [sys.executable, "-m", "train", *overrides]


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
