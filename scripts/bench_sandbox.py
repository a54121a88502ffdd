"""Python grader speed with the sandbox vs without: the same worker and grader, in a bubblewrap sandbox (lorakit's
way) and in a plain child process with the same rlimits (the way before the sandbox), side by side.

Usage:
    python scripts/bench_sandbox.py                    # batches of 1, 32 and 256 examples, 5 repeats each
    python scripts/bench_sandbox.py --sizes 1 8 --repeats 3

For each batch size: the median seconds to grade one batch (a sandbox or process started per batch, as graders/run
does per request and the reinforcement trainer per step), the seconds to the first answer (the start: the process,
the sandbox and the grader's imports), and the sandboxed/plain ratio. The grader is OpenAI's documented rapidfuzz
example (its imports included). The per-example cleanup (killing what a grader left running) is part of the
sandboxed time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from lorakit.core import sandbox
from lorakit.evaluation.graders import python_grader

SOURCE = """from rapidfuzz import fuzz, utils

def grade(sample, item) -> float:
    return fuzz.WRatio(sample["output_text"], item["reference_answer"], processor=utils.default_process) / 100.0
"""


class Plain(sandbox.Sandbox):
    """The same program and pipes in a plain child process (no namespaces, no cgroup, the host's file system)."""

    def __init__(self, program, binds, limits, env):
        program = [str(python_grader.WORKER) if arg == "/lorakit/worker.py" else arg for arg in program]
        site = ":".join(sorted({source.rsplit("/", 1)[0] for source, _ in python_grader.library_binds()}))
        self.limit = None
        self.proc = subprocess.Popen([sys.executable, "-c", f"import sys; sys.path[:0] = {site.split(':')!r}; "
                                      f"sys.argv = {program[2:]!r}; exec(open(sys.argv[0]).read())"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     bufsize=0, env={**sandbox.BARE_ENV, **env, "HOME": "/tmp"}, cwd="/tmp")
        os.set_blocking(self.proc.stdin.fileno(), False)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.kept, self._buffer = set(), b""

    def kill_strays(self) -> int:
        return 0


def timed(size: int, repeats: int) -> tuple[float, float]:
    """(median seconds per batch, median seconds to the first answer)."""
    samples, items = [{"output_text": f"Paris {i}"} for i in range(size)], [{"reference_answer": "Paris"}] * size
    batches, firsts = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        python_grader.grade(SOURCE, samples[:1], items[:1])
        firsts.append(time.perf_counter() - start)
        start = time.perf_counter()
        out = python_grader.grade(SOURCE, samples, items)
        batches.append(time.perf_counter() - start)
        assert all(o.error is None for o in out), out[0]
    return statistics.median(batches), statistics.median(firsts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 32, 256])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    python_grader.require()
    real = sandbox.Sandbox
    print(f"{'examples':>8} {'plain s':>9} {'sandbox s':>10} {'ratio':>6} {'plain start':>12} {'sandbox start':>14}")
    for size in args.sizes:
        sandbox.Sandbox = Plain
        plain, plain_first = timed(size, args.repeats)
        sandbox.Sandbox = real
        boxed, boxed_first = timed(size, args.repeats)
        print(f"{size:>8} {plain:>9.3f} {boxed:>10.3f} {boxed / plain:>6.2f} {plain_first:>12.3f} {boxed_first:>14.3f}")


if __name__ == "__main__":
    main()
