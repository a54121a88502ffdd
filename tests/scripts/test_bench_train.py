"""CPU smoke run of scripts/bench_train.py: both trainers run on the same data and their losses agree."""

from __future__ import annotations

import importlib.util
import json

from lorakit.core.paths import ROOT


def test_bench_train_runs_b0_and_lorakit_on_the_same_data(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "scripts" / "bench_train.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.json"
    bench.main(["--arch", "tiny", "--seq-len", "192", "--batch", "3", "--steps", "3", "--warmup", "1",
                "--cache", str(tmp_path / "models"), "--json", str(out)])
    printed = capsys.readouterr().out
    assert "lorakit / B0: tokens/s" in printed and "WARNING" not in printed  # same examples, same order
    runs = {r["variant"]: r for r in json.loads(out.read_text())["runs"]}
    b0, lorakit = runs["B0"], runs["lorakit"]
    assert b0["timed_tokens"] == lorakit["timed_tokens"] > 0
    assert b0["padding"] > 0 and lorakit["padding"] == 0  # B0 pads each batch, lorakit's batches are padding-free
    assert len(b0["losses"]) == len(lorakit["losses"]) == 3
    for x, y in zip(lorakit["losses"], b0["losses"], strict=True):
        assert abs(x - y) / y < 0.01  # the same objective, computed two ways
    assert 0 < lorakit["flops_per_s"] and 0 < b0["tokens_per_s"]
