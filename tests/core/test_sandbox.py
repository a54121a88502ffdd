"""The sandbox itself: where bwrap cannot be had, code is refused with the fix (never run unsandboxed); a
program inside sees only what it is given; its lines are bounded; it dies with close()."""

from __future__ import annotations

import os
import sys

import pytest

from lorakit.core import sandbox
from lorakit.evaluation import grading
from lorakit.evaluation.graders import python_grader
from lorakit.evaluation.graders.run import grade


@pytest.fixture
def no_bwrap(monkeypatch, tmp_path):
    monkeypatch.setitem(sandbox.BARE_ENV, "PATH", str(tmp_path))  # an empty folder: no bwrap on it
    monkeypatch.setattr("shutil.which", lambda name, path=None: None)
    sandbox.mode.cache_clear()
    yield
    sandbox.mode.cache_clear()


def test_without_bwrap_python_graders_are_refused_with_the_fix(no_bwrap):
    grader = {"type": "python", "name": "p", "source": "def grade(s, i):\n    return 1.0\n"}
    with pytest.raises(sandbox.SandboxUnavailable, match="apt-get install bubblewrap"):
        python_grader.require()
    [problem] = grading.check_can_run({"p": grader})
    assert "a python grader cannot run here" in problem and "bubblewrap" in problem  # before any model loads
    with pytest.raises(sandbox.SandboxUnavailable):
        grade(grader, [{}], ["x"])  # never run without the sandbox


def test_a_program_inside_sees_only_its_binds_and_its_lines_are_bounded(tmp_path):
    (tmp_path / "given.txt").write_text("given")
    (tmp_path / "other.txt").write_text("other")
    program = ("import os, sys\nprint(open('/given.txt').read(), os.path.exists('" + str(tmp_path / "other.txt")
               + "'), flush=True)\nsys.stdout.write('x' * (8 * 2**20))\nsys.stdout.flush()\n")
    box = sandbox.Sandbox([sandbox.python_executable(), "-I", "-c", program],
                          [(str(tmp_path / "given.txt"), "/given.txt")], sandbox.Limits(), {})
    try:
        assert box.receive(30) == b"given False"
        assert box.receive(30) is None  # 8 MiB without a newline: refused, not held
    finally:
        box.close()
    assert box.proc.poll() is not None and box.tree() <= {box.proc.pid}


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"),
                    reason="the drop from root to uid 65534 outside needs root and a Python under /usr")
def test_as_root_the_sandbox_is_unprivileged_outside_too(monkeypatch):
    monkeypatch.setattr(sandbox, "python_executable", lambda: os.path.realpath("/usr/bin/python3"))
    monkeypatch.setattr(sys, "base_prefix", "/usr")  # a Python user 65534 can read, as in most installs
    sandbox.mode.cache_clear()
    try:
        assert sandbox.mode(()) is True
        box = sandbox.Sandbox([sandbox.python_executable(), "-I", "-c", "import os; print(os.getuid(), flush=True); "
                               "input()"], [], sandbox.Limits(), {})
        try:
            assert box.receive(30) == b"65534"
            uids = {line.split()[1] for pid in box.tree() - {box.proc.pid}
                    for line in open(f"/proc/{pid}/status") if line.startswith("Uid:")}
            assert uids == {"65534"}  # seen from the host: no process of the tree is root
        finally:
            box.close()
    finally:
        sandbox.mode.cache_clear()
