"""python -m lorakit.pairs, then python -m train method=dpo init_from=<that run>: the recipe's two commands on the tiny
model, with a run killed after a checkpoint resuming as an uninterrupted one."""

from __future__ import annotations

import json
import shutil

import pytest

from helpers import python_m, write_jsonl
from lorakit.data.reading import read_file


def _dpo(run, pairs, start, cwd):
    return python_m("train", "method=dpo", "model=tiny-llama", f"data.train_file={pairs}", "data.test_fraction=0.25",
                    f"init_from={start}", "+train.max_steps=4", "train.save_steps=2", "train.logging_steps=1",
                    "train.per_device_train_batch_size=4", f"hydra.run.dir={run}", "eval.max_new_tokens=4", cwd=cwd)


def test_pairs_from_a_runs_mistakes_then_dpo_from_that_run(two_runs, tmp_path):
    start = two_runs / "A"
    out = python_m("lorakit.pairs", str(start), f"data.train_file={two_runs / 'train.jsonl'}", "--out",
                   str(tmp_path / "pairs.jsonl"), cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    pairs = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert f"{len(pairs)} of 24 answers differ from the reference" in out.stderr and len(pairs) > 12
    read = read_file(tmp_path / "pairs.jsonl")
    assert read.format == "openai_preference" and len(read.examples) == len(pairs) and not read.findings

    rows = [json.loads(line) for line in (two_runs / "train.jsonl").read_text().splitlines()]
    answer = pairs[0]["non_preferred_output"][0]["content"]
    first = next(r for r in rows if r["messages"][:-1] == pairs[0]["input"]["messages"])
    first["messages"][-1] = {"role": "assistant", "content": answer}  # now the model answers this one as referenced
    again = python_m("lorakit.pairs", str(start), f"data.train_file={write_jsonl(tmp_path / 'fixed.jsonl', rows)}",
                     "--out", str(tmp_path / "fewer.jsonl"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    fewer = [json.loads(line) for line in (tmp_path / "fewer.jsonl").read_text().splitlines()]
    assert fewer == pairs[1:]

    whole = _dpo(tmp_path / "whole", tmp_path / "pairs.jsonl", start, tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    metrics = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    assert 0 <= metrics["tuned"]["reward_accuracy"] <= 1 and "reward_accuracy" not in metrics["base"]
    assert f"starting from the adapter in {start / 'adapter'}" in whole.stdout
    history = json.loads((tmp_path / "whole" / "train_log.json").read_text())
    assert [h["step"] for h in history if "rewards/accuracies" in h][:4] == [1, 2, 3, 4]

    def losses(run):
        return {h["step"]: h["loss"] for h in json.loads((run / "train_log.json").read_text()) if "loss" in h}

    before = losses(tmp_path / "whole")
    killed = tmp_path / "whole"  # as SIGKILL after checkpoint-2 leaves it: no adapter, no later checkpoint
    for gone in ("adapter", "train_log.json", "timings.json", "metrics.json", "checkpoints/checkpoint-4"):
        shutil.rmtree(killed / gone) if (killed / gone).is_dir() else (killed / gone).unlink()
    resumed = _dpo(killed, tmp_path / "pairs.jsonl", start, tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"resuming from {killed / 'checkpoints' / 'checkpoint-2'}" in resumed.stdout
    after = losses(killed)
    assert sorted(after) == [1, 2, 3, 4]  # the history goes on from the checkpoint's
    for step in (3, 4):
        assert after[step] == pytest.approx(before[step], rel=1e-3, abs=1e-4)
