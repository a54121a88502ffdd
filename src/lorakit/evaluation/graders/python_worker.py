"""The program a `python` grader runs in, inside the sandbox (started by python_grader.py, never imported).

run: python -I /lorakit/worker.py   (stdin: one JSON header {"source", "limits"}, then one {"sample", "item"} a line)

It says {"hello": true} before it reads anything (the processes running then are its own: the sandbox kills any
other after each example), gives itself its per-process limits (address space, processes, file size, CPU time;
hard limits: the grader cannot raise them), keeps stdout for the answers (the grader's own prints go to stderr),
runs the source and answers {"ready": true}, then each line with {"score": x} or {"error": "..."}.
"""

import json
import math
import numbers
import os
import resource
import sys
import traceback

SITE = "/lorakit/site"  # the grader libraries, bound read-only


def _error(err: BaseException) -> str:
    lines = traceback.format_exception(type(err), err, err.__traceback__)
    kept = [line for line in lines if 'File "<grader>"' in line or line is lines[-1]]
    return "".join(kept).strip()[-2000:]


def _limit(limits: dict) -> None:
    mb = 2**20
    for name, value in ((resource.RLIMIT_AS, limits["memory_mb"] * mb), (resource.RLIMIT_NPROC, limits["processes"]),
                        (resource.RLIMIT_FSIZE, limits["tmp_mb"] * mb), (resource.RLIMIT_CPU, limits["cpu_s"]),
                        (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(name, (value, value))


def _answer(grade, request: dict) -> dict:
    try:
        score = grade(request["sample"], request["item"])
        if isinstance(score, bool) or not isinstance(score, numbers.Real) or not math.isfinite(score):
            raise TypeError(f"grade() returned {score!r}; return a finite number")
        return {"score": float(score)}
    except BaseException as err:  # noqa: BLE001 - every failure of the user's code is reported, none kills us
        return {"error": _error(err)}


def main() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    answers.write(json.dumps({"hello": True}) + "\n")
    header = json.loads(sys.stdin.readline())
    _limit(header["limits"])
    sys.path.insert(0, SITE)
    namespace = {"__name__": "grader"}
    try:
        exec(compile(header["source"], "<grader>", "exec"), namespace)  # the user's grader, in the sandbox only
        grade, failure = namespace.get("grade"), None
        if not callable(grade):
            failure = "the source defines no grade(sample, item) function"
    except BaseException as err:  # noqa: BLE001
        grade, failure = None, _error(err)
    answers.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        answer = {"error": failure} if failure else _answer(grade, json.loads(line))
        answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
