"""A python grader runs in its own process: OpenAI's documented example scores as rapidfuzz does; its failures
(an exception, a hang, a crash, too much memory, a network call) fail that example with the reason and the rest
go on; it sees no key of ours."""

from __future__ import annotations

import pytest

from lorakit.evaluation.graders import spec
from lorakit.evaluation.graders.python_grader import Limits
from lorakit.evaluation.graders.run import grade

OPENAI_EXAMPLE = """from rapidfuzz import fuzz, utils

def grade(sample, item) -> float:
    output_text = sample["output_text"]
    reference_answer = item["reference_answer"]
    return fuzz.WRatio(output_text, reference_answer, processor=utils.default_process) / 100.0
"""

TRICKY = """import os, socket

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
    if what == "network":
        socket.create_connection(("127.0.0.1", 9))
    if what == "keys":
        return float(any("KEY" in k for k in os.environ))
    if what == "text":
        return "1"
    print("grading", what)  # the grader's own output does not disturb the answers
    return float(what == item["answer"])
"""


def _python(source):
    return spec.check({"type": "python", "name": "p", "source": source})


def test_openai_documented_python_grader():
    from rapidfuzz import fuzz, utils

    answers = ["The capital of France is Paris.", "paris", "Lyon"]
    grades = grade(_python(OPENAI_EXAMPLE), [{"reference_answer": "Paris"}] * 3, answers)
    assert [g.error for g in grades] == [None] * 3
    assert [g.score for g in grades] == [fuzz.WRatio(a, "Paris", processor=utils.default_process) / 100
                                         for a in answers]
    assert grades[1].score == 1.0


def test_each_failure_fails_its_example_and_the_rest_go_on(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("LORAKIT_API_KEY", "secret")
    answers = ["ok", "raise", "ok", "hang", "ok", "crash", "no", "memory", "network", "keys", "text", "ok"]
    grades = grade(_python(TRICKY), [{"answer": "ok"}] * len(answers), answers,
                   limits=Limits(timeout_s=2, memory_mb=1024))
    by = dict(zip(answers, grades, strict=False))
    assert [g.score for a, g in zip(answers, grades, strict=True) if a == "ok"] == [1.0] * 4
    assert by["no"].score == 0.0 and by["no"].error is None
    assert by["keys"].score == 0.0 and by["keys"].error is None  # the environment holds no key
    assert "ValueError: no answer in 'raise'" in by["raise"].error and 'line 6, in grade' in by["raise"].error
    assert by["raise"].flag == "python_grader_runtime_error"
    assert by["hang"].error == "grade() ran past its limit of 2 s and was stopped"
    assert by["hang"].flag == "python_grader_server_error"
    assert "the grading process ended while grading (exit status 3" in by["crash"].error
    assert "MemoryError" in by["memory"].error
    assert "PermissionError" in by["network"].error or "OSError" in by["network"].error
    assert "return a finite number" in by["text"].error
    assert all(g.score == 0.0 for a, g in zip(answers, grades, strict=True) if a not in {"ok", "keys"} and g.error)


@pytest.mark.parametrize(("source", "why"), [("import time\ntime.sleep(60)\n", "top level ran past its limit of 1 s"),
                                             ("raise SystemExit(4)\n", "SystemExit"),
                                             ("x = 1\n", "defines no grade(sample, item) function")])
def test_a_source_that_cannot_start_fails_every_example(source, why):
    grades = grade({"type": "python", "name": "p", "source": source}, [{}] * 3, ["a", "b", "c"],
                   limits=Limits(timeout_s=1, start_s=1))
    assert len(grades) == 3 and all(why in g.error and g.score == 0.0 for g in grades)
