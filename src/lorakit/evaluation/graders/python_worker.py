"""The process a `python` grader runs in (started by lorakit.evaluation.graders.python_grader, never imported).

run: python -I python_worker.py   (stdin: one JSON header {"source", "memory_mb"}, then one {"sample", "item"} a line)

Before the grader's source runs, the process gives itself its limits: no network (a new, empty network namespace
where the kernel allows one, and socket creation refused either way), an address-space limit, and stdout kept for
the answers (the grader's own prints go to stderr). It answers each line with {"score": x} or {"error": "..."}.
"""

import ctypes
import json
import math
import numbers
import os
import resource
import socket
import sys
import traceback

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000


def _isolate_network() -> str:
    """'namespace' when the process now has a network namespace of its own (no interfaces but a down loopback),
    else 'sockets'; socket creation is refused in both cases."""
    mode = "sockets"
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        for flags in (CLONE_NEWNET, CLONE_NEWUSER | CLONE_NEWNET):
            if libc.unshare(flags) == 0:
                mode = "namespace"
                break
    except (OSError, AttributeError):
        pass

    def refused(*_args, **_kwargs):
        raise PermissionError("a python grader has no network")

    socket.socket = refused  # type: ignore[assignment,misc]
    socket.create_connection = refused  # type: ignore[assignment]
    socket.socketpair = refused  # type: ignore[assignment]
    return mode


def _error(err: BaseException) -> str:
    lines = traceback.format_exception(type(err), err, err.__traceback__)
    kept = [line for line in lines if 'File "<grader>"' in line or line is lines[-1]]
    return "".join(kept).strip()[-2000:]


def main() -> None:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    header = json.loads(sys.stdin.readline())
    limit = int(header["memory_mb"]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    network = _isolate_network()
    namespace = {"__name__": "grader"}
    try:
        exec(compile(header["source"], "<grader>", "exec"), namespace)  # the user's grader, in this process only
        grade, failure = namespace.get("grade"), None
        if not callable(grade):
            failure = "the source defines no grade(sample, item) function"
    except BaseException as err:  # noqa: BLE001 - every failure of the user's code is reported, none kills us
        grade, failure = None, _error(err)
    answers.write(json.dumps({"ready": True, "network": network}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        if failure:
            answers.write(json.dumps({"error": failure}) + "\n")
            continue
        try:
            score = grade(request["sample"], request["item"])
            if not isinstance(score, numbers.Real) or not math.isfinite(score):
                raise TypeError(f"grade() returned {score!r}; return a finite number")
            answer = {"score": float(score)}
        except BaseException as err:  # noqa: BLE001
            answer = {"error": _error(err)}
        answers.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
