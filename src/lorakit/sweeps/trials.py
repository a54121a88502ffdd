"""What a sweep's jobs share: the sweep's folder name, a job's identity (a hash of its resolved config), the metric it
reports to the sweeper, and the count and time estimate a sweep prints before it spends hours.

    python -m train -m +experiment=quickstart lora.r=8,16 train.learning_rate=3e-4,1e-3
        -> outputs/multirun/quickstart-<hash of the command's overrides>/{0,1,2,3}; the same command again finds the
           same folder: finished jobs are skipped (same config hash), interrupted ones resume from their checkpoint.

The sweepers themselves (grid, Optuna) are Hydra plugins in hydra_plugins/lorakit_sweepers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from lorakit.core.paths import quoted
from lorakit.core.runs import RunFolder, file_sha256

log = logging.getLogger("lorakit.sweeps")
# settings that do not change what a job computes: a job that differs only in these is the same job
NOT_IDENTITY = ("run_dir", "resume", "max_runs", "logger")
# overrides that do not name another sweep (the folder stays the same when they are added)
NOT_SWEEP_NAME = ("resume", "max_runs", "logger", "hydra.", "hydra/")
WORK_KEYS = ("train.num_train_epochs", "train.max_steps")
LOSSES = ("validation_loss", "train_loss")
DATA_FILES = ("train_file", "test_file", "validation_file")


@dataclass(frozen=True)
class SweepJob:
    """The sweep a job belongs to (hydra.sweep.dir) and the values chosen for it (its command-line overrides)."""

    sweep_dir: Path
    overrides: dict[str, str]


def sweep_name(task_overrides: list[str]) -> str:
    """`<experiment>-<8 hex>`, the same for the same overrides in any order (Hydra's `${lorakit_sweep:}`)."""
    kept = sorted(o for o in task_overrides if not o.lstrip("+~").startswith(NOT_SWEEP_NAME))
    experiment = next((o.split("=", 1)[1] for o in kept if o.lstrip("+").startswith("experiment=")), "sweep")
    digest = hashlib.sha256("\n".join(kept).encode()).hexdigest()[:8]
    return f"{experiment.replace('/', '_')}-{digest}"


def resolver(*, _root_) -> str:
    """Registered as `${lorakit_sweep:}`: the name from the sweep's own overrides (a job's config holds only the job's
    overrides, so the sweepers hand the resolved folder to their jobs: `pinned`)."""
    return sweep_name(list(_root_.hydra.overrides.task))


def pinned(jobs: list[list[str]], sweep_dir: Path) -> list[list[str]]:
    """Each job's overrides with the sweep's folder as a literal, for jobs composed in the sweep's process or not."""
    return [[*job, f"hydra.sweep.dir={quoted(sweep_dir)}"] for job in jobs]


def identity(resolved: dict) -> dict:
    """What a job computes (run_dir/identity.json): the sha256 of its resolved config (without the keys that do not change
    its result) and of its data files' contents (an edited file under the same name is new work), and those files'
    sha256 each."""
    kept = {k: v for k, v in resolved.items() if k not in NOT_IDENTITY}
    files = {k: file_sha256((resolved.get("data") or {}).get(k)) for k in DATA_FILES}
    digest = hashlib.sha256(json.dumps([kept, files], sort_keys=True, default=str).encode()).hexdigest()
    return {"hash": digest, "files": files}


def recorded(run_dir: Path) -> dict:
    """The identity written by the run in `run_dir`, {} if none."""
    path = RunFolder(run_dir).identity
    return json.loads(path.read_text()) if path.is_file() else {}


def finished(run_dir: Path, job: dict) -> bool:
    """The job `job` (an identity) ran to its end in `run_dir` (its timings are written last)."""
    return RunFolder(run_dir).timings.is_file() and recorded(run_dir).get("hash") == job["hash"]


def metrics_of(run_dir: Path) -> dict[str, float]:
    """What a job can be ranked by: the tuned adapter's evaluated metrics (metrics.json) and the train stage's last
    validation_loss and train_loss (train_log.json; these need no evaluate stage)."""
    folder = RunFolder(run_dir)
    found = dict(json.loads(folder.metrics.read_text()).get("tuned") or {}) if folder.metrics.is_file() else {}
    history = json.loads(folder.train_log.read_text()) if folder.train_log.is_file() else []
    for name, key in (("validation_loss", "eval_loss"), ("train_loss", "train_loss")):
        values = [row[key] for row in history if key in row]
        if values:
            found[name] = values[-1]
    return found


def metric_name(metrics: dict, metric: str | None) -> str | None:
    """`metric`, or by default the first evaluated metric (else validation_loss, else train_loss: a small file
    trains without a validation split)."""
    fallback = "validation_loss" if "validation_loss" in metrics or "train_loss" not in metrics else "train_loss"
    return metric or next((k for k in metrics if k not in LOSSES), fallback if metrics else None)


def direction(metric: str | None, direction: str | None) -> str:
    """maximize or minimize: as given, else minimize for a loss and maximize for a quality metric."""
    return direction or ("minimize" if metric in LOSSES else "maximize")


def objective(run_dir: Path, metric: str | None) -> float | None:
    """The value a sweeper optimizes: the job's `metric` (see metric_name), None when the job has none."""
    metrics = metrics_of(run_dir)
    name = metric_name(metrics, metric)
    if name not in metrics:
        if metrics:
            log.error("optimized_metric=%s is not among this job's metrics %s", name, sorted(metrics))
        return None
    return float(metrics[name])


def check_size(jobs: int, max_runs: int | None, how: str) -> None:
    """Refuse a sweep over `max_runs` jobs before anything runs."""
    if max_runs is not None and jobs > max_runs:
        raise SystemExit(f"this sweep would run {jobs} jobs ({how}), over max_runs={max_runs}: narrow the sweep, or "
                         f"raise the limit with max_runs={jobs}")


def job_seconds(folder: Path) -> float | None:
    """Seconds a finished job took (its stages' timings), None if it has not finished."""
    path = RunFolder(folder).timings
    return sum(json.loads(path.read_text()).values()) if path.is_file() else None


def work(overrides: list[str], default: float) -> float:
    """A job's relative amount of training: its epochs or steps when the sweep varies them, else `default`."""
    for item in overrides:
        key, _, value = item.lstrip("+").partition("=")
        if key in WORK_KEYS:
            try:
                return float(value)
            except ValueError:
                return default
    return default


def estimate(first: list[str], first_s: float, rest: list[list[str]]) -> str:
    """A line for the log: the time the remaining jobs should take, scaled from the first job by epochs/steps."""
    base = work(first, 1.0)
    seconds = sum(first_s * work(o, base) / base for o in rest)
    return (f"the first job took {duration(first_s)}; the {len(rest)} job(s) still to run should take about "
            f"{duration(seconds)} one after another (scaled by their epochs or steps where those are swept)")


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
