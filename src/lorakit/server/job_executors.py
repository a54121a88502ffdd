"""Where a job's `python -m train` process runs: here, as the server's child (LocalExecutor), or on a SLURM cluster
through submitit (SlurmExecutor, `lorakit.serve --executor slurm`).

Either way the job writes its run folder (progress.jsonl, checkpoints, adapter, train.log) under the server's data
dir, and the server follows it from there: on a cluster that folder must be on a file system the nodes share. A
handle says whether the job has ended (poll), stops it (stop), and what the job's record keeps to find it again
(ref): a SLURM job outlives the server, and a restarted server follows it on (attach); a local child dies with it.
A SLURM job that is preempted or runs out of time is requeued by submitit and goes on from its checkpoint
(LoggedCommand).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import submitit

SECRETS = ("LORAKIT_API_KEY", "OPENAI_API_KEY")  # never in a job's environment, nor in what SLURM keeps of it
GONE_POLLS = 3  # a SLURM job missing from squeue, without its result file, this many polls in a row has ended


def job_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment (the node's, on SLURM) without the keys, and the server's settings for the job."""
    return {**{k: v for k, v in os.environ.items() if k not in SECRETS}, **extra}


def run_logged(command: list[str], extra: dict[str, str], log: str) -> int:
    """On the node: the job's command, its output appended to the run's log; its exit status."""
    with open(log, "ab") as out:
        return subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env=job_env(extra)).returncode


class LoggedCommand(submitit.helpers.Checkpointable):
    """run_logged as a SLURM job that submitit requeues when SLURM preempts it or its time runs out (the signal it
    asks for signal_delay_s before the limit; time-outs up to max_num_timeout times): the same command again goes
    on from the run's last checkpoint (resume=auto)."""

    def __call__(self, command: list[str], extra: dict[str, str], log: str) -> int:
        return run_logged(command, extra, log)


class LocalHandle:
    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.ref = {"pid": proc.pid}

    def poll(self) -> int | None:
        return self.proc.poll()

    def stop(self) -> None:
        """The whole process group (accelerate's workers with it): TERM, then KILL after 10 s."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()


def _die_with_parent() -> None:
    """In the child: be killed when the server dies, however it dies (Linux); a process group of its own."""
    os.setsid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class LocalExecutor:
    name = "local"

    def start(self, job_id: str, command: list[str], extra: dict[str, str], log: Path, run_dir: Path) -> LocalHandle:
        with log.open("ab") as out:
            return LocalHandle(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                env=job_env(extra), preexec_fn=_die_with_parent))

    def attach(self, ref: dict) -> None:
        """A local job does not outlive the server that started it."""
        return None


def slurm_state(job_id: str) -> str | None:
    """The job's state as squeue shows it (PENDING, RUNNING, ...), or None once SLURM no longer holds it."""
    out = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip() or None if out.returncode == 0 else None


class SlurmHandle:
    def __init__(self, job):
        self.job, self.missing = job, 0
        self.ref = {"slurm_job_id": str(job.job_id), "slurm_folder": str(job.paths.folder)}

    def poll(self) -> int | None:
        """The exit status once the job ended: its command's, from submitit's result file; 1 for a job SLURM no
        longer holds that left no result (cancelled, killed, out of time)."""
        if self.job.paths.result_pickle.exists():
            try:
                return int(self.job.result())
            except Exception:  # noqa: BLE001 - the node's own error: the job failed; its log says why
                return 1
        if slurm_state(self.job.job_id) is not None:
            self.missing = 0
            return None
        self.missing += 1  # a shared file system may show the result file a little after squeue lets the job go
        return 1 if self.missing >= GONE_POLLS else None

    def stop(self) -> None:
        subprocess.run(["scancel", str(self.job.job_id)], capture_output=True, timeout=30)


class SlurmExecutor:
    name = "slurm"

    def __init__(self, *, partition: str | None, account: str | None, time_min: int, gpus: int, cpus: int | None,
                 mem_gb: float | None, options: dict[str, str]):
        self.parameters = {"partition": partition, "account": account, "time": time_min,
                           "gpus_per_node": gpus or None, "cpus_per_task": cpus,
                           "mem": f"{int(mem_gb * 1024)}M" if mem_gb else None,
                           # sbatch sends the server's environment, and slurmctld keeps it on disk: not the keys
                           "additional_parameters": {"export": "ALL," + ",".join(f"{k}=" for k in SECRETS), **options}}

    def start(self, job_id: str, command: list[str], extra: dict[str, str], log: Path, run_dir: Path) -> SlurmHandle:
        executor = submitit.SlurmExecutor(folder=run_dir / "slurm")
        executor.update_parameters(job_name=f"lorakit-{job_id}", **{k: v for k, v in self.parameters.items()
                                                                      if v not in (None, {})})
        return SlurmHandle(executor.submit(LoggedCommand(), command, extra, str(log)))

    def attach(self, ref: dict) -> SlurmHandle | None:
        """The SLURM job a restarted server follows on, or None for a job it did not submit."""
        if "slurm_job_id" not in ref:
            return None
        return SlurmHandle(submitit.SlurmJob(folder=ref["slurm_folder"], job_id=ref["slurm_job_id"]))
