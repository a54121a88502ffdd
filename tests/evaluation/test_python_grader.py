"""A python grader runs only in the sandbox: OpenAI's documented example scores as rapidfuzz does; its failures (an
exception, a hang, a crash, too much memory) fail that example with the reason and the rest go on; and each way
out that worked before the sandbox (host files, the server's environment through /proc, writing outside its
tmpfs, the network with or without setns, root, children that outlive their example, memory across children, a
fork bomb) is refused or contained."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from lorakit.core import cgroups
from lorakit.evaluation.graders import spec
from lorakit.evaluation.graders.python_grader import Limits
from lorakit.evaluation.graders.run import grade

OPENAI_EXAMPLE = """from rapidfuzz import fuzz, utils

def grade(sample, item) -> float:
    output_text = sample["output_text"]
    reference_answer = item["reference_answer"]
    return fuzz.WRatio(output_text, reference_answer, processor=utils.default_process) / 100.0
"""

TRICKY = """import os

def grade(sample, item):
    what = sample["output_text"]
    if what == "raise":
        raise ValueError("no answer in " + repr(what))
    if what == "hang":
        while True:
            pass
    if what == "crash":
        os._exit(3)
    if what == "memory":
        return len(bytearray(4 * 2**30))
    if what == "text":
        return "1"
    print("grading", what)  # the grader's own output does not disturb the answers
    return float(what == item["answer"])
"""


def _python(source):
    return spec.check({"type": "python", "name": "p", "source": source})


def _run(source: str, answers: list[str], items=None, **limits):
    return grade(_python(source), items or [{}] * len(answers), answers, limits=Limits(**limits))


def test_openai_documented_python_grader():
    from rapidfuzz import fuzz, utils

    answers = ["The capital of France is Paris.", "paris", "Lyon"]
    grades = grade(_python(OPENAI_EXAMPLE), [{"reference_answer": "Paris"}] * 3, answers)
    assert [g.error for g in grades] == [None] * 3
    assert [g.score for g in grades] == [fuzz.WRatio(a, "Paris", processor=utils.default_process) / 100
                                         for a in answers]
    assert grades[1].score == 1.0


def test_the_libraries_openai_lists_import_inside():
    source = ("import numpy, scipy, sympy, pandas, rapidfuzz, sklearn, rouge_score, deepdiff, jsonschema, pydantic\n"
              "import yaml, nltk, sqlparse\n\ndef grade(sample, item):\n"
              "    return float(numpy.mean([1.0, 0.0]) + sympy.Integer(1))\n")
    [result] = _run(source, ["x"])
    assert result.error is None and result.score == 1.5


def test_each_failure_fails_its_example_and_the_rest_go_on():
    answers = ["ok", "raise", "ok", "hang", "ok", "crash", "no", "memory", "text", "ok"]
    grades = grade(_python(TRICKY), [{"answer": "ok"}] * len(answers), answers,
                   limits=Limits(timeout_s=2, memory_mb=1024))
    by = dict(zip(answers, grades, strict=False))
    assert [g.score for a, g in zip(answers, grades, strict=True) if a == "ok"] == [1.0] * 4
    assert by["no"].score == 0.0 and by["no"].error is None
    assert "ValueError: no answer in 'raise'" in by["raise"].error and 'line 6, in grade' in by["raise"].error
    assert by["raise"].flag == "python_grader_runtime_error"
    assert by["hang"].error == "grade() ran past its limit of 2 s and was stopped"
    assert by["hang"].flag == "python_grader_server_error"
    assert "the grading process ended while grading (exit status 3" in by["crash"].error
    assert "MemoryError" in by["memory"].error
    assert "return a finite number" in by["text"].error


@pytest.mark.parametrize(("source", "why"), [("import time\ntime.sleep(60)\n", "top level ran past its limit of 1 s"),
                                             ("raise SystemExit(4)\n", "SystemExit"),
                                             ("x = 1\n", "defines no grade(sample, item) function")])
def test_a_source_that_cannot_start_fails_every_example(source, why):
    grades = grade({"type": "python", "name": "p", "source": source}, [{}] * 3, ["a", "b", "c"],
                   limits=Limits(timeout_s=1, start_s=1))
    assert len(grades) == 3 and all(why in g.error and g.score == 0.0 for g in grades)


def test_it_reads_no_host_file_and_no_environment_of_the_server(tmp_path, monkeypatch):
    monkeypatch.setenv("LORAKIT_API_KEY", "sk-the-servers-key")
    secret = tmp_path / "lorakit.sqlite"
    secret.write_text("the server's data")
    source = f"""import glob, os

def grade(sample, item):
    what = sample["output_text"]
    if what == "files":
        found = [p for p in ({str(secret)!r}, {str(tmp_path)!r}, "/etc/passwd", "/etc/shadow", "/home", "/var",
                             "/root/.bashrc", "/sys/fs/cgroup") if os.path.exists(p)]
        return float(len(found))
    if what == "environ":  # every process it can see, the sandbox's own init (bwrap) included
        seen = b"".join(open(p, "rb").read() for p in glob.glob("/proc/*/environ"))
        return float(b"sk-the-servers-key" in seen or b"LORAKIT" in seen) + 10 * float(len(seen) == 0)
    if what == "processes":
        return float(len([p for p in os.listdir("/proc") if p.isdigit()]))
    return float(any("KEY" in k for k in os.environ))
"""
    files, environ, processes, keys = _run(source, ["files", "environ", "processes", "keys"])
    assert (files.error, files.score) == (None, 0.0)  # before: the data dir, /etc/passwd, /root were all there
    assert (environ.error, environ.score) == (None, 0.0)  # before: the parent's /proc/<pid>/environ held the key
    assert processes.score <= 3  # bwrap's init, the worker and nothing of the host's
    assert keys.score == 0.0


def test_it_writes_only_into_its_own_tmpfs(tmp_path):
    target = tmp_path / "pwned"
    source = f"""import os

def grade(sample, item):
    written = 0
    for path in ({str(target)!r}, "/usr/pwned", "/pwned", "/etc/pwned"):
        try:
            with open(path, "w") as out:
                out.write("x")
            written += 1
        except OSError:
            pass
    with open("/tmp/mine", "w") as out:  # its own scratch space works
        out.write("ok")
    return written + 10 * (open("/tmp/mine").read() == "ok")
"""
    [result] = _run(source, ["x"])
    assert result.error is None and result.score == 10.0
    assert not target.exists()


def test_it_has_no_network_even_through_setns():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list = []
    listener.settimeout(0.2)

    def accept() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not accepted:
            try:
                accepted.append(listener.accept())
            except TimeoutError:
                pass

    watcher = threading.Thread(target=accept)
    watcher.start()
    source = f"""import ctypes, glob, importlib, os, socket

def grade(sample, item):
    importlib.reload(socket)  # whatever replaced its functions in this process is gone
    if sample["output_text"] == "setns":
        libc = ctypes.CDLL(None, use_errno=True)
        for ns in glob.glob("/proc/*/ns/net"):  # the server's namespace is not among them
            try:
                libc.setns(os.open(ns, os.O_RDONLY), 0)
            except OSError:
                pass
    try:
        socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"stolen")
        return 1.0
    except OSError:
        return 0.0
"""
    try:
        plain, through_setns = _run(source, ["plain", "setns"])
    finally:
        accepted.append(None)
        watcher.join()
        listener.close()
    assert (plain.error, plain.score) == (None, 0.0)
    assert (through_setns.error, through_setns.score) == (None, 0.0)
    assert accepted == [None]  # nothing reached the listener on the host's loopback


def test_it_runs_unprivileged():
    source = """import subprocess

def grade(sample, item):
    uid = int(subprocess.run(["id", "-u"], capture_output=True, text=True).stdout)
    caps = [l for l in open("/proc/self/status") if l.startswith("CapEff")][0].split()[1]
    return uid + 1000000 * int(caps, 16)
"""
    [result] = _run(source, ["x"])
    assert result.error is None and result.score == 65534.0  # before: uid 0, every capability


def _running(marker: str) -> list[int]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                out.append(int(pid))
        except OSError:
            pass
    return out


def test_what_a_grader_starts_ends_with_its_example():
    marker = f"lorakit-test-child-{os.getpid()}"
    source = f"""import os, subprocess, time

def grade(sample, item):
    if sample["output_text"] == "fork":
        subprocess.Popen(["/bin/sh", "-c", "sleep 1; echo late > /tmp/marker; sleep 30 # {marker}"])
        if os.fork() == 0:  # a double fork, detached from the worker
            os.setsid()
            if os.fork() == 0:
                time.sleep(1)
                open("/tmp/marker2", "w").write("late")
                time.sleep(30)
            os._exit(0)
        return 1.0
    time.sleep(2)
    return float(os.path.exists("/tmp/marker") or os.path.exists("/tmp/marker2"))
"""
    forked, later = _run(source, ["fork", "later"])
    assert forked.score == 1.0 and (later.error, later.score) == (None, 0.0)  # before: 1.0, the children lived on
    assert _running(marker) == []


def test_a_fork_bomb_stops_at_the_process_limit():
    source = """import os, time

def grade(sample, item):
    made = 0
    for _ in range(500):
        try:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            made += 1
        except OSError:
            break
    return float(made)
"""
    [result] = _run(source, ["x"], processes=32)
    assert result.error is None and result.score < 32


def _cgroups() -> bool:
    limit = cgroups.create(2**30, 8)
    if limit is not None:
        limit.close()
    return limit is not None


@pytest.mark.skipif(not _cgroups(),
                    reason="no cgroup can be made here (not root, no delegated cgroup): memory is limited per process")
def test_memory_is_limited_for_the_whole_tree_of_processes():
    source = """import os

def grade(sample, item):
    children = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            block = bytearray(600 * 2**20)
            block[::4096] = b"x" * len(block[::4096])  # touched: resident, not only reserved
            os._exit(0)
        children.append(pid)
    return float(sum(os.waitpid(pid, 0)[1] == 0 for pid in children))
"""
    [result] = _run(source, ["x"], memory_mb=1024)
    # each child alone fits its 1 GiB, three of them do not fit the tree's: before, all three ran (4.2 GB in all)
    assert result.score < 3 or result.error is not None
