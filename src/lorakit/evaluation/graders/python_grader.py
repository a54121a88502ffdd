"""A `python` grader: its `grade(sample, item)` runs only inside a sandbox (lorakit.core.sandbox: bubblewrap, no
network, no key, nothing of the host's files but the Python runtime and the libraries below, limits for the whole
process tree). Where no sandbox can be made, python graders are refused (SandboxUnavailable says how to get one).

One sandbox grades a batch, an example at a time (python_worker.py inside); after each example whatever the
grader left running is killed. An example that runs past its time limit, a sandbox that dies (a crash, os._exit,
memory), or an answer that is not one, fails that example with the reason, and a new sandbox goes on with the rest.
The libraries OpenAI documents for its python graders are importable, where installed (GRADER_LIBRARIES).
"""

from __future__ import annotations

import functools
import importlib.metadata as metadata
import json
import math
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement

from lorakit.core import sandbox

WORKER = Path(__file__).with_name("python_worker.py")
MAX_SOURCE = 256 * 1024  # bytes, OpenAI's limit for a python grader's source
# the third-party packages OpenAI's python graders may import (its graders guide), bound where installed; setup
# installs all but rdkit, scikit-bio and ast-grep-py (chemistry, biology, code search: large; install them to use them)
GRADER_LIBRARIES = ("numpy", "scipy", "sympy", "pandas", "rapidfuzz", "scikit-learn", "rouge-score", "deepdiff",
                    "jsonschema", "pydantic", "pyyaml", "nltk", "sqlparse", "rdkit", "scikit-bio", "ast-grep-py")
SITE = "/lorakit/site"
STOPPED = "grading stopped: its request was abandoned or passed its time limit"


@dataclass(frozen=True)
class Limits(sandbox.Limits):
    timeout_s: float = 30.0    # wall clock per example
    start_s: float = 60.0      # wall clock for the sandbox to start and run the source's top level (its imports)


@dataclass
class Outcome:
    score: float | None
    error: str | None = None
    kind: str | None = None    # OpenAI's error flag: python_grader_runtime_error or python_grader_server_error


def _closure(names) -> list[metadata.Distribution]:
    """The installed distributions of `names` and everything they need (extras left out)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = seen[name] = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return list(seen.values())


@functools.cache
def library_binds() -> tuple[tuple[str, str], ...]:
    """(installed path, path inside) for every top-level entry of the grader libraries and their dependencies."""
    binds = {}
    for dist in _closure(GRADER_LIBRARIES):
        for file in dist.files or []:
            top = file.parts[0]
            if top not in {"..", "__pycache__"} and not top.endswith(".pth"):
                source = Path(dist.locate_file(top))
                if source.exists():
                    binds[top] = str(source)
    return tuple((source, f"{SITE}/{top}") for top, source in sorted(binds.items()))


def binds() -> list[tuple[str, str]]:
    return [(str(WORKER), "/lorakit/worker.py"), *library_binds()]


def require() -> None:
    """Raise SandboxUnavailable, with the fix, when python graders cannot run here."""
    sandbox.mode(tuple(binds()))


def _answer(line: bytes | None) -> dict | None:
    """The worker's answer when it is one ({"score": finite number} or {"error": text}), else None."""
    try:
        answer = json.loads(line, parse_constant=lambda name: float("nan")) if line is not None else None
    except (ValueError, RecursionError):
        return None
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        return answer
    score = answer.get("score") if isinstance(answer, dict) else None
    ok = isinstance(score, int | float) and not isinstance(score, bool) and math.isfinite(score)
    return answer if ok else None


class _Worker:
    def __init__(self, source: str, limits: Limits, cancelled):
        self.limits, self.cancelled = limits, cancelled
        env = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
        self.box = sandbox.Sandbox([sandbox.python_executable(), "-I", "/lorakit/worker.py"], binds(), limits, env)
        self.ready, self.closed = False, False
        if self.box.receive(limits.start_s, cancelled) == b'{"hello": true}':
            self.box.keep_current()  # the worker's own processes, before any of the grader's code has run
            header = {"source": source, "limits": {k: getattr(limits, k) for k in
                                                    ("memory_mb", "processes", "tmp_mb", "cpu_s")}}
            self.ready = (self.box.send(json.dumps(header).encode(), limits.start_s)
                          and self.box.receive(limits.start_s, cancelled) == b'{"ready": true}')

    def ask(self, sample: dict, item: dict) -> Outcome:
        line = json.dumps({"sample": sample, "item": item}, ensure_ascii=False).encode()
        sent = self.box.send(line, self.limits.timeout_s)
        reply = self.box.receive(self.limits.timeout_s, self.cancelled) if sent else None
        self.box.kill_strays()  # the tree ends with its example: nothing the grader started outlives it
        answer = _answer(reply)
        if reply is not None and answer is None:  # the grader's code wrote on the answers' channel itself
            self.close()
            return Outcome(None, f"the grader wrote something that is not an answer where answers go: "
                                 f"{reply[:200]!r}", "python_grader_runtime_error")
        if answer is None:
            return self.dead()
        if "error" in answer:
            return Outcome(None, answer["error"][-2000:], "python_grader_runtime_error")
        return Outcome(float(answer["score"]))

    def dead(self) -> Outcome:
        running = self.box.proc.poll() is None
        oom = self.box.oom_killed()
        self.close()
        if self.cancelled():
            return Outcome(None, STOPPED, "python_grader_server_error")
        if running and not self.ready:
            return Outcome(None, f"the source's top level ran past its limit of {self.limits.start_s:g} s, or the "
                                 "sandbox did not start", "python_grader_server_error")
        if running:
            return Outcome(None, f"grade() ran past its limit of {self.limits.timeout_s:g} s and was stopped",
                           "python_grader_server_error")
        code = self.box.proc.returncode
        why = "out of memory" if oom else "out of memory?" if code in (-9, 137, 1) else f"exit status {code}"
        return Outcome(None, f"the grading process ended while grading ({why}; memory limit "
                             f"{self.limits.memory_mb} MB for the grader and its processes)", "python_grader_server_error")

    def close(self) -> None:
        self.closed = True
        self.box.close()


def grade(source: str, samples: list[dict], items: list[dict], limits: Limits = Limits(),
          cancelled=lambda: False) -> list[Outcome]:
    """One outcome per example, in order; once `cancelled()` is true the sandbox is stopped and the rest fail."""
    out: list[Outcome] = []
    worker = None
    try:
        for sample, item in zip(samples, items, strict=True):
            if cancelled():
                out.append(Outcome(None, STOPPED, "python_grader_server_error"))
                continue
            if worker is None:
                worker = _Worker(source, limits, cancelled)
                if not worker.ready:
                    failed = worker.dead()
                    return out + [failed] * (len(samples) - len(out))  # the source itself hangs or kills it
            outcome = worker.ask(sample, item)
            out.append(outcome)
            if worker.closed:
                worker = None
    finally:
        if worker is not None:
            worker.close()
    return out
