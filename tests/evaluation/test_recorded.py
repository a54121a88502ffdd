"""Recorded answers as a candidate (`recorded:<file>`): each test prompt takes the answer recorded for it, a prompt
with none is refused naming the fix; and the non-inferiority verdicts read the paired interval against -margin."""

from __future__ import annotations

import json

import pytest

from lorakit.evaluation import recorded
from lorakit.evaluation.candidates import CandidateError, parse
from lorakit.evaluation.scoring import non_inferiority


def _rows():
    return [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": "ref"}]} for q in "abc"]


def test_each_test_prompt_takes_its_recorded_answer(tmp_path):
    path = tmp_path / "recorded.jsonl"
    lines = [{"id": q, "request": {"messages": [{"role": "user", "content": [{"type": "text", "text": q}]}]},
              "answer": q.upper()} for q in "cab"]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert parse(f"recorded:{path}").kind == "recorded"
    assert recorded.answers(path, _rows()) == ["A", "B", "C"]  # matched by prompt, whatever the file's order
    path.write_text("".join(json.dumps(line) + "\n" for line in lines[:2]))
    with pytest.raises(CandidateError, match="no answer recorded for 1 of the 3 test prompts"):
        recorded.answers(path, _rows())
    path.write_text("{not json\n")
    with pytest.raises(CandidateError, match="recorded.jsonl:1: not a recorded answer"):
        recorded.answers(path, _rows())
    with pytest.raises(CandidateError, match="is not a file"):
        parse(f"recorded:{tmp_path / 'none.jsonl'}")


def test_non_inferiority_verdicts():
    def test(low, high, metric="exact_match"):
        return {"metric": metric, "a": "recorded:x", "b": "local", "difference": (low + high) / 2, "ci_low": low,
                "ci_high": high}

    tests = [test(-0.04, 0.02), test(-0.2, -0.08), test(-0.1, 0.01), test(-5, 5, "length")]
    assert [v["verdict"] for v in non_inferiority(tests, 0.05)] == ["non-inferior", "inferior", "inconclusive"]
    assert non_inferiority(tests, None) is None
