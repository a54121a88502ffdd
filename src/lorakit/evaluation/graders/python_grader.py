"""A `python` grader: its `grade(sample, item)` runs in a separate process (python_worker.py), never in lorakit's.

The process starts from the interpreter with -I (no user site, no PYTHONPATH), an environment of PATH and a
temporary HOME only (no keys), in an empty temporary folder, with an address-space limit and no network. One
process grades a batch, an example at a time; an example that runs past its time limit, or a process that dies
(a crash, os._exit, memory), fails that example with the reason, and a new process goes on with the rest.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

WORKER = Path(__file__).with_name("python_worker.py")
MAX_SOURCE = 256 * 1024  # bytes, OpenAI's limit for a python grader's source


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 30.0    # wall clock per example
    memory_mb: int = 2048      # address space of the grading process
    start_s: float = 60.0      # wall clock for the process to start and run the source's top level (its imports)


@dataclass
class Outcome:
    score: float | None
    error: str | None = None
    kind: str | None = None    # OpenAI's error flag: python_grader_runtime_error or python_grader_server_error


class _Worker:
    def __init__(self, source: str, limits: Limits, home: str):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8"}
        self.proc = subprocess.Popen([sys.executable, "-I", str(WORKER)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=home, env=env,
                                     text=True, bufsize=1)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        self.limits = limits
        self.proc.stdin.write(json.dumps({"source": source, "memory_mb": limits.memory_mb}) + "\n")
        self.proc.stdin.flush()
        self.ready = self._read(limits.start_s)

    def _read(self, timeout: float) -> dict | None:
        """The next answer; None past the timeout or when the process has ended (then it is reaped)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if self.selector.select(left):
                line = self.proc.stdout.readline()
                if line:
                    return json.loads(line)
                self.proc.wait()  # the pipe closed: the process has ended
                return None
        return None

    def ask(self, sample: dict, item: dict) -> Outcome:
        try:
            self.proc.stdin.write(json.dumps({"sample": sample, "item": item}, ensure_ascii=False) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._dead()
        answer = self._read(self.limits.timeout_s)
        if answer is None:
            return self._dead()
        if "error" in answer:
            return Outcome(None, answer["error"], "python_grader_runtime_error")
        return Outcome(answer["score"])

    def _dead(self) -> Outcome:
        running = self.proc.poll() is None
        self.close()
        if running and self.ready is None:
            return Outcome(None, f"the source's top level ran past its limit of {self.limits.start_s:g} s",
                           "python_grader_server_error")
        if running:
            return Outcome(None, f"grade() ran past its limit of {self.limits.timeout_s:g} s and was stopped",
                           "python_grader_server_error")
        code = self.proc.returncode
        why = "out of memory?" if code in (-9, 1) else f"exit status {code}"
        return Outcome(None, f"the grading process ended while grading ({why}; memory limit "
                             f"{self.limits.memory_mb} MB)", "python_grader_server_error")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.selector.close()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


def grade(source: str, samples: list[dict], items: list[dict], limits: Limits = Limits()) -> list[Outcome]:
    """One outcome per example, in order."""
    out: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="lorakit-grader-") as home:
        worker = None
        for sample, item in zip(samples, items, strict=True):
            if worker is None:
                worker = _Worker(source, limits, home)
                if worker.ready is None:
                    failed = worker._dead()
                    out += [failed] * (len(samples) - len(out))  # the source itself hangs or kills the process
                    return out
            outcome = worker.ask(sample, item)
            out.append(outcome)
            if worker.proc.poll() is not None or outcome.kind == "python_grader_server_error":
                worker = None
        if worker is not None:
            worker.close()
    return out
