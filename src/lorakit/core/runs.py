"""A run folder's layout, defined once, the one JSONL reader/writer, and a file's sha256.

    run_dir/
      config.yaml            the resolved configuration (secrets redacted)
      identity.json          what the run computes: a hash of its config and data, its data files' sha256
      train.log              everything the run printed
      job.json               backend=openai: the hosted job and its model
      data/                  train.jsonl, validation.jsonl, test.jsonl (checked chat records), train/ and
                             validation/ (tokenized), openai_train.jsonl (backend=openai: what was uploaded)
      data_report.json/.md   where every input record went
      adapter/               the PEFT adapter, tokenizer and chat template
      checkpoints/           the trainer's checkpoints (checkpoint-N/, each an adapter too)
      train_log.json         loss history
      progress.jsonl         one line per logging step while training (step, max_steps, loss): for followers
      metrics.json           {"base": {metric: value}, "tuned": {...}}
      predictions.jsonl      one record per test example
      report.md              base and tuned side by side, with examples
      compare.json/.md/.html the comparison report (lorakit.evaluation), examples.jsonl per example
      merged/                stage merge: the adapter merged into its base
      timings.json           seconds per stage

An adapter folder (a run's adapter/ or checkpoints/checkpoint-N/) is one that holds ADAPTER_CONFIG.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ADAPTER_CONFIG = "adapter_config.json"  # PEFT's file: what makes a folder an adapter


def holds_adapter(folder: Path | str) -> bool:
    """Whether `folder` is a PEFT adapter (a run's adapter/, a checkpoint)."""
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def find_adapter(path: Path | str) -> Path | None:
    """The adapter folder a path names: the folder itself, a run's adapter/, or a run's checkpoint."""
    path = Path(path)
    if holds_adapter(path):
        return path
    if holds_adapter(RunFolder(path).adapter):
        return RunFolder(path).adapter
    if re.fullmatch(r"checkpoint-\d+", path.name) and holds_adapter(RunFolder(path.parent).checkpoints / path.name):
        return RunFolder(path.parent).checkpoints / path.name
    return None


@dataclass(frozen=True)
class RunFolder:
    path: Path

    @property
    def data(self) -> Path:
        return self.path / "data"

    def split(self, name: str) -> Path:
        """data/{train,validation,test}.jsonl: the checked chat records of a split."""
        return self.data / f"{name}.jsonl"

    def tokenized(self, name: str) -> Path:
        """data/{train,validation}/: the tokenized split (a datasets folder)."""
        return self.data / name

    def openai_split(self, name: str) -> Path:
        """data/openai_{train,validation}.jsonl: a split in OpenAI's training format."""
        return self.data / f"openai_{name}.jsonl"

    @property
    def adapter(self) -> Path:
        return self.path / "adapter"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"checkpoint-{step}"

    @property
    def merged(self) -> Path:
        return self.path / "merged"

    @property
    def log(self) -> Path:
        """train.log: everything the run printed (Hydra's job log; a served job's process output)."""
        return self.path / "train.log"

    @property
    def job(self) -> Path:
        return self.path / "job.json"

    @property
    def report(self) -> Path:
        return self.path / "report.md"

    def compare(self, suffix: str = ".json") -> Path:
        """compare.json, compare.md or compare.html."""
        return self.path / f"compare{suffix}"

    @property
    def examples(self) -> Path:
        return self.path / "examples.jsonl"

    @property
    def config(self) -> Path:
        return self.path / "config.yaml"

    @property
    def train_log(self) -> Path:
        return self.path / "train_log.json"

    @property
    def progress(self) -> Path:
        return self.path / "progress.jsonl"

    @property
    def data_report(self) -> Path:
        """data_report.json; data_report.md beside it."""
        return self.path / "data_report.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions.jsonl"

    @property
    def timings(self) -> Path:
        return self.path / "timings.json"

    @property
    def identity(self) -> Path:
        return self.path / "identity.json"

    def is_run(self) -> bool:
        return self.config.is_file() and (self.adapter.is_dir() or self.checkpoints.is_dir())


@dataclass(frozen=True)
class SweepFolder:
    """A sweep's folder (hydra.sweep.dir): one run folder per job, and

        sweep_summary.csv/.md  the leaderboard; sweep_metric.png the metric per swept value; best/ the winner
        prepared/<key>/        data prepared once for the jobs with the same data (lorakit.sweeps.reuse)
        optuna.db              the Optuna study (hparams_search)
    """

    path: Path

    def summary(self, suffix: str = ".md") -> Path:
        return self.path / f"sweep_summary{suffix}"

    @property
    def metric_plot(self) -> Path:
        return self.path / "sweep_metric.png"

    @property
    def best(self) -> Path:
        return self.path / "best"

    @property
    def prepared(self) -> Path:
        return self.path / "prepared"


def file_sha256(path: str | Path | None) -> str | None:
    """The sha256 of a file's bytes, None when there is no such file."""
    if not path or not Path(path).is_file():
        return None
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_jsonl(path: Path) -> list[dict]:
    """Every non-blank line of a JSONL file lorakit wrote, as a dict."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> Path:
    """Write rows one JSON object per line (UTF-8), its folder made if needed; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def logged_error(log_file: Path, tail: int = 0) -> str | None:
    """The last error a run's log holds: lorakit's last `[ERROR]` message (else the last traceback) with the lines
    after it, each traceback reduced to its exception line. When the log holds neither: its last `tail` lines (e.g.
    Hydra refusing an override), or None with tail=0 or no log."""
    log_file = Path(log_file)
    lines = [line for line in (log_file.read_text(errors="replace").splitlines() if log_file.is_file() else [])
             if line.strip() and "HYDRA_FULL_ERROR" not in line]
    marked = ([i for i, line in enumerate(lines) if "][ERROR]" in line]
              or [i for i, line in enumerate(lines) if line.startswith("Traceback")])
    if not marked:
        return "\n".join(lines[-tail:]) if tail and lines else None
    out, in_traceback = [], False
    for line in lines[marked[-1]:]:
        if line.startswith("Traceback"):
            in_traceback = True
        elif not in_traceback or not line[:1].isspace():  # a traceback's frames are indented; its exception is not
            out.append(line)
            in_traceback = False
    return "\n".join(out)
