"""`python -m lorakit.compare` through the real command line, on two tiny adapters of one base."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import tool_picker_rows, write_jsonl


def cli(module: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("compare")
    write_jsonl(tmp / "train.jsonl", tool_picker_rows("train", 24))
    write_jsonl(tmp / "test.jsonl", tool_picker_rows("test", 8))
    for name, lr in (("A", "5e-3"), ("B", "1e-4")):
        out = cli("train", "+experiment=quickstart", "model=tiny-llama", "data.train_file=train.jsonl",
                  "data.test_file=test.jsonl", "+train.max_steps=3", f"train.learning_rate={lr}",
                  "stages=[prepare,train]", f"hydra.run.dir={tmp / name}", cwd=tmp)
        assert out.returncode == 0, out.stderr[-3000:]
    return tmp


def test_compare_base_two_adapters_and_fewshot_from_one_base_load_then_from_the_cache(two_runs):
    tmp = two_runs
    args = ("model=tiny-llama", "candidates=[base,A,B/adapter,fewshot:2]", "eval.max_new_tokens=8")
    out = cli("lorakit.compare", *args, f"out_dir={tmp / 'cmp'}", cwd=tmp)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp / "cmp" / "compare.json").read_text())
    assert report["n_examples"] == 8  # A's own test split
    assert list(report["candidates"]) == ["base", "A", "B/adapter", "fewshot:2"]
    for metrics in report["candidates"].values():
        for stat in metrics.values():
            assert stat["ci_low"] <= stat["value"] <= stat["ci_high"]
    assert {(t["a"], t["b"]) for t in report["tests"]} == {("base", "A"), ("base", "B/adapter"), ("base", "fewshot:2")}
    em = next(t for t in report["tests"] if t["metric"] == "exact_match")
    assert em["test"] == "McNemar exact" and 0 <= em["p_value"] <= 1
    assert report["generated"] == {"base": 8, "fewshot:2": 8, "A": 8, "B/adapter": 8}
    assert "base model loads: 1" in out.stdout + out.stderr
    assert "## Paired tests" in (tmp / "cmp" / "compare.md").read_text()

    again = cli("lorakit.compare", *args, f"out_dir={tmp / 'again'}", cwd=tmp)
    assert again.returncode == 0, again.stderr[-3000:]
    cached = json.loads((tmp / "again" / "compare.json").read_text())
    assert cached["generated"] == {"base": 0, "fewshot:2": 0, "A": 0, "B/adapter": 0}
    assert cached["candidates"] == report["candidates"] and "base model loads: 0" in again.stdout + again.stderr


def test_bad_candidates_fail_before_any_generation_with_the_fix(two_runs):
    tmp = two_runs
    out = cli("lorakit.compare", "model=tiny-llama", "candidates=[base,nowhere/run]", f"out_dir={tmp / 'x'}", cwd=tmp)
    assert out.returncode == 2 and "Traceback" not in out.stdout + out.stderr
    assert ("candidate 'nowhere/run': nowhere/run does not exist; give base, fewshot:K, a run folder"
            in out.stdout + out.stderr)
    # the tiny adapters against the embedded SmolLM2: another base model, refused by name or by shape
    out = cli("lorakit.compare", "candidates=[base,A]", f"out_dir={tmp / 'y'}", cwd=tmp)
    assert out.returncode == 2 and "Traceback" not in out.stdout + out.stderr
    text = out.stdout + out.stderr
    assert "candidate 'A' was trained on 'tiny-llama'" in text and "model=..." in text
    assert not (tmp / "y" / "compare.json").exists()
