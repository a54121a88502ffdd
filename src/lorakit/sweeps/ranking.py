"""The leaderboard of a sweep: each job's metric read from its own run folder (compare.json's value and 95%
interval, or its losses), ranked, with its swept values, status, train seconds and error; written to the sweep
folder (sweep_summary.csv/.md, sweep_metric.png, best/) when a sweep ends (SweepSummary, a Hydra callback) or on
demand (python -m lorakit.leaderboard)."""

from __future__ import annotations

import csv
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from hydra.experimental.callback import Callback

from lorakit.core.errors import ConfigError
from lorakit.core.runs import RunFolder, SweepFolder, logged_error
from lorakit.sweeps.trials import direction, metric_name, metrics_of

log = logging.getLogger(__name__)


@dataclass
class Job:
    folder: Path
    overrides: dict[str, str]
    status: str                  # succeeded | failed | unfinished
    value: float | None = None
    ci: tuple[float, float] | None = None
    train_s: float | None = None
    error: str | None = None
    metrics: dict = field(default_factory=dict)


def _overrides(folder: Path) -> dict[str, str]:
    path = folder / ".hydra" / "overrides.yaml"
    items = yaml.safe_load(path.read_text()) if path.is_file() else []
    return dict(item.split("=", 1) for item in items or [] if "=" in item)


def _error(folder: Path) -> str | None:
    log_file = next((p for p in (RunFolder(folder).log, *folder.glob("*.log")) if p.is_file()), None)
    error = logged_error(log_file) if log_file is not None else None
    if not error:
        return None
    error = re.sub(r"^\[[^]]*\]\[[^]]*\]\[[A-Z]+\] - ", "", error)  # the log line's time, logger and level
    return " ".join(error.split())[:300]


def read_job(folder: Path, metric: str | None) -> Job:
    run = RunFolder(folder)
    job = Job(folder, _overrides(folder), "unfinished", metrics=metrics_of(folder))
    timings = json.loads(run.timings.read_text()) if run.timings.is_file() else {}
    job.train_s = timings.get("train")
    name = metric_name(job.metrics, metric)
    if name in job.metrics and (run.timings.is_file() or run.metrics.is_file()):
        job.status, job.value = "succeeded", float(job.metrics[name])
        compared = RunFolder(folder).compare()
        stats = json.loads(compared.read_text())["candidates"].get("tuned", {}) if compared.is_file() else {}
        if name in stats and stats[name].get("ci_low") is not None:
            job.ci = (stats[name]["ci_low"], stats[name]["ci_high"])
    elif run.timings.is_file():
        job.status, job.error = "failed", f"no metric {name!r} in this job (it has {sorted(job.metrics)})"
    else:
        job.error = _error(folder)
        job.status = "failed" if job.error else "unfinished"
    return job


def jobs_of(sweep: Path, metric: str | None) -> list[Job]:
    folders = sorted((p for p in sweep.iterdir() if p.is_dir() and not p.is_symlink() and (p / ".hydra").is_dir()),
                     key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name))
    return [read_job(f, metric) for f in folders]


def rank(jobs: list[Job], mode: str) -> list[Job]:
    done = sorted((j for j in jobs if j.value is not None), key=lambda j: j.value, reverse=mode in ("max", "maximize"))
    return done + [j for j in jobs if j.value is None]


def write(sweep: Path, metric: str | None = None, mode: str | None = None) -> list[Job]:
    """Rank the sweep's jobs by `metric` (default: the first evaluated one) and write the summary files; `mode`
    maximize / minimize (default: minimize a loss, maximize the rest). Returns the jobs, best first."""
    found = jobs_of(sweep, metric) if Path(sweep).is_dir() else []
    if not found:
        raise ConfigError(f"{sweep}: no job folders (with .hydra/) in it; give a multirun folder such as "
                          "outputs/multirun/<experiment>-<hash>")
    name = next((n for j in found if (n := metric_name(j.metrics, metric))), "metric")
    mode = direction(name, mode)
    jobs = rank(found, mode)
    swept = sorted({k for j in jobs for k in j.overrides if len({x.overrides.get(k) for x in jobs}) > 1})
    header = ["rank", name, "ci_low", "ci_high", *swept, "status", "train_s", "folder", "error"]
    rows = []
    for i, j in enumerate(jobs, 1):
        rows.append([i if j.value is not None else "", j.value, *(j.ci or ("", "")), *(j.overrides.get(k, "") for k in swept),
                     j.status, j.train_s, str(j.folder), j.error or ""])
    with SweepFolder(sweep).summary(".csv").open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    cells = [[("" if c is None else f"{c:.4f}" if isinstance(c, float) else str(c)).replace("|", "\\|") for c in r]
             for r in rows]
    SweepFolder(sweep).summary().write_text(
        f"# Sweep {sweep}\n\nranked by {name} ({mode}); {sum(j.status == 'succeeded' for j in jobs)} of {len(jobs)} "
        "jobs succeeded\n\n| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n"
        + "".join("| " + " | ".join(r) + " |\n" for r in cells))
    _plot(sweep, jobs, swept, name)
    best = SweepFolder(sweep).best
    if best.is_symlink() or best.exists():
        best.unlink()
    if jobs[0].value is not None:
        best.symlink_to(jobs[0].folder.resolve(), target_is_directory=True)
    log.info("%s: %d jobs, best %s = %s in %s", sweep, len(jobs), name, jobs[0].value, jobs[0].folder)
    return jobs


def _number(text: str) -> float | None:
    return float(text) if re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text or "") else None


def _plot(sweep: Path, jobs: list[Job], swept: list[str], name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [j for j in jobs if j.value is not None]
    if not done or not swept:
        return
    fig, axes = plt.subplots(1, len(swept), figsize=(4 * len(swept), 3.2), squeeze=False)
    for ax, key in zip(axes[0], swept, strict=True):
        raw = [j.overrides.get(key, "") for j in done]
        numeric = all(_number(v) is not None for v in raw)
        labels = sorted(set(raw), key=lambda v: _number(v) if numeric else v)
        xs = [_number(v) if numeric else labels.index(v) for v in raw]
        errors = [[j.value - j.ci[0] if j.ci else 0 for j in done], [j.ci[1] - j.value if j.ci else 0 for j in done]]
        ax.errorbar(xs, [j.value for j in done], yerr=errors, fmt="o", capsize=3)
        if numeric and min(xs) > 0 and max(xs) / min(xs) >= 10:
            ax.set_xscale("log")
        if not numeric:
            ax.set_xticks(range(len(labels)), labels)
        ax.set_xlabel(key)
        ax.set_ylabel(name)
    fig.tight_layout()
    fig.savefig(SweepFolder(sweep).metric_plot, dpi=110)
    plt.close(fig)


class SweepSummary(Callback):
    """A Hydra callback (conf/config.yaml, hydra.callbacks): the leaderboard is written when a sweep ends."""

    def __init__(self, metric: str | None = None, mode: str | None = None):
        self.metric, self.mode = metric, mode

    def on_multirun_end(self, config, **kwargs) -> None:
        sweep = Path(config.hydra.sweep.dir)
        if sweep.is_dir():
            write(sweep, self.metric, self.mode)
            log.info("leaderboard: %s", SweepFolder(sweep).summary())
