"""Where the server's fine-tuning jobs run on this machine: how many at once, and which GPUs each one holds.

- GPUs: jobs use `--job-gpus` (GPU ids as CUDA_VISIBLE_DEVICES numbers them; default: every GPU the server sees,
  CUDA_VISIBLE_DEVICES or nvidia-smi's list). Each job holds `--gpus-per-job` of them (default 1), or what its
  `metadata` asks for with `{"lorakit_gpus": "N"}` (OpenAI's metadata values are strings; method hyperparameters
  cannot say it). A job on more than one GPU runs under `accelerate launch` (DDP), one process per GPU.
- At most `--max-jobs` jobs run at once (default: as many as the job GPUs hold; 1 on a machine without GPUs); with
  several at once, each gets its share of the CPU cores as its thread count (OMP_NUM_THREADS, unless set).
- Queued jobs start in the order they were created, as GPUs free up: a job that waits for two GPUs is not
  overtaken by a later one that needs one.
- Serving shares the machine: lorakit's engine (or vLLM, `--vllm-gpu-memory` of the GPU) decodes on the first GPU
  the server sees. Jobs may train on that GPU too (the default); `--job-gpus` without it keeps it for serving.
  A split that cannot fit is refused at start (check_split).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from lorakit.core.errors import ConfigError

METADATA_KEY = "lorakit_gpus"
VLLM_SHARED_MAX = 0.8  # vLLM's share of a GPU that jobs train on too: above it a job's model would not fit beside it


def parse_gpus(setting: str, visible: list[str]) -> list[str]:
    """`--job-gpus`: "all" (every visible GPU), "none" (jobs train on the CPU), or ids such as "1,2".

    Raises:
        ConfigError: an id the server does not see.
    """
    if setting.strip().lower() == "all":
        return list(visible)
    if setting.strip().lower() == "none":
        return []
    ids = [g.strip() for g in setting.split(",") if g.strip()]
    unknown = [g for g in ids if g not in visible]
    if unknown:
        raise ConfigError(f"--job-gpus {setting}: GPU {', '.join(unknown)} is not among the GPUs this server sees "
                          f"({', '.join(visible) or 'none'}; CUDA_VISIBLE_DEVICES or nvidia-smi -L)")
    return list(dict.fromkeys(ids))


def check_split(job_gpus: list[str], visible: list[str], *, vllm_share: float | None) -> None:
    """Serving decodes on the first visible GPU; refuse a split that leaves a job no room there.

    Raises:
        ConfigError: vLLM takes more than VLLM_SHARED_MAX of a GPU that jobs train on too.
    """
    if not visible or vllm_share is None or visible[0] not in job_gpus:
        return
    if vllm_share > VLLM_SHARED_MAX:
        rest = list(visible[1:])
        raise ConfigError(f"--vllm-gpu-memory {vllm_share} leaves {1 - vllm_share:.0%} of GPU {visible[0]} to the "
                          "fine-tuning jobs that also train on it: set --vllm-gpu-memory at most "
                          f"{VLLM_SHARED_MAX}, or keep GPU {visible[0]} for serving with "
                          + (f"--job-gpus {','.join(rest)}" if rest else "--job-gpus none (jobs on the CPU)"))


@dataclass
class Slots:
    gpus: list[str]                 # the GPUs jobs may use ([]: jobs run on the CPU)
    per_job: int = 1                # GPUs a job holds unless its metadata asks for another number
    max_jobs: int | None = None     # jobs at once; None: as many as the GPUs hold (1 without GPUs)
    held: dict[str, list[str]] = field(default_factory=dict)  # job id -> the GPUs it holds
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self):
        if self.per_job < 1 or (self.max_jobs is not None and self.max_jobs < 1):
            raise ConfigError("--gpus-per-job and --max-jobs must be at least 1")
        if self.gpus and self.per_job > len(self.gpus):
            raise ConfigError(f"--gpus-per-job {self.per_job} is more than the {len(self.gpus)} GPU(s) jobs may use "
                              f"({','.join(self.gpus)}); lower it or give more with --job-gpus")
        if self.max_jobs is None:
            self.max_jobs = max(len(self.gpus) // self.per_job, 1)

    def need(self, job: dict) -> int:
        """The GPUs a job holds (0 on a machine without GPUs)."""
        if not self.gpus:
            return 0
        asked = (job.get("metadata") or {}).get(METADATA_KEY)
        return int(asked) if asked is not None else self.per_job

    def problem(self, job: dict) -> str | None:
        """Why a job can never run here (its metadata's GPU count), or None."""
        asked = (job.get("metadata") or {}).get(METADATA_KEY)
        if asked is None:
            return None
        if not (isinstance(asked, str) and asked.strip().isdigit() and int(asked) >= 1):
            return f"metadata.{METADATA_KEY} must be a whole number of GPUs written as a string, e.g. \"2\""
        if self.gpus and int(asked) > len(self.gpus):
            return (f"metadata.{METADATA_KEY} asks for {int(asked)} GPUs and this server's jobs may use "
                    f"{len(self.gpus)} ({','.join(self.gpus)})")
        return None

    def threads(self) -> int | None:
        """CPU threads per job when several run at once: the cores shared out (torch's default, a thread per core in
        every job, oversubscribes them: 4x slower for two jobs on 2 cores, BENCHMARKS.md "Jobs side by side");
        None: one job at a time keeps torch's default."""
        if self.max_jobs <= 1:
            return None
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return max(cores // self.max_jobs, 1)

    def take(self, job_id: str, n: int) -> list[str] | None:
        """Hold n free GPUs for the job (n=0: a CPU job), or None when it must wait."""
        with self._lock:
            if len(self.held) >= self.max_jobs:
                return None
            busy = {g for gpus in self.held.values() for g in gpus}
            free = [g for g in self.gpus if g not in busy]
            if n > len(free):
                return None
            self.held[job_id] = free[:n]
            return self.held[job_id]

    def give(self, job_id: str) -> None:
        with self._lock:
            self.held.pop(job_id, None)
