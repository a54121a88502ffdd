"""The real command line (`python -m train`, real Hydra, real W&B offline) on the tiny model and on SmolLM2."""

from __future__ import annotations

import json

import pytest

from helpers import tool_picker_rows, train_cli, write_jsonl
from lorakit.core.paths import ROOT


def test_tiny_run_writes_every_artifact_and_logs_to_wandb_offline(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", tool_picker_rows("train", 24))
    test = write_jsonl(tmp_path / "test.jsonl", tool_picker_rows("test", 6))
    run = tmp_path / "run"
    out = train_cli("+experiment=quickstart", "model=tiny-llama", "data.train_file=train.jsonl", "data.test_file=test.jsonl",
              "+train.max_steps=2", "logger=wandb", f"hydra.run.dir={run}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) == {"base", "tuned"}
    assert set(metrics["tuned"]) == {"exact_match", "json_valid", "json_equal", "field_accuracy", "bleu", "chrf",
                                     "rouge_1", "rouge_2", "rouge_l", "length"}  # chosen for JSON references
    compared = json.loads((run / "compare.json").read_text())
    assert set(compared["candidates"]) == {"base", "tuned"} and compared["n_examples"] == 6
    assert compared["candidates"]["tuned"]["exact_match"]["value"] == metrics["tuned"]["exact_match"]
    assert {t["test"] for t in compared["tests"] if t["metric"] == "exact_match"} == {"McNemar exact"}
    preds = [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 6 and set(preds[0]) == {"line", "input", "reference", "base", "tuned"}
    assert preds[0]["reference"] == json.loads(test.read_text().splitlines()[0])["messages"][-1]["content"]
    assert "| exact_match |" in (run / "report.md").read_text()
    assert (run / "adapter" / "adapter_config.json").is_file() and (run / "adapter" / "chat_template.jinja").is_file()
    assert json.loads((run / "data_report.json").read_text())["accounting"]["used"]["test"] == 6
    assert "| exact_match |" in out.stdout + out.stderr  # the table is printed at the end
    # W&B: a real offline run holding the training curve, data summary, metrics and the predictions table.
    [wandb_run] = list((run / "wandb").glob("offline-run-*"))
    [records] = list(wandb_run.glob("*.wandb"))
    for key in (b"train/loss", b"data/used/train", b"data/dropped", b"eval/base/exact_match", b"eval/tuned/rouge_l",
                b"time_s/train"):
        assert key in records.read_bytes(), key
    [table] = list((wandb_run / "files" / "media" / "table" / "eval").glob("predictions*.table.json"))
    assert [row[1] for row in json.loads(table.read_text())["data"]] == [p["reference"] for p in preds]

    # stages=[evaluate,merge] without train re-evaluates the saved adapter into a new run folder, with the same
    # results (it needs only the test file), and saves base + adapter as one model.
    again = tmp_path / "again"
    out = train_cli("+experiment=quickstart", "model=tiny-llama", "data.train_file=absent.jsonl", "data.test_file=test.jsonl",
              "stages=[evaluate,merge]", f"adapter_dir={run / 'adapter'}", f"hydra.run.dir={again}", "eval.cache=false",
              cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads((again / "metrics.json").read_text()) == metrics
    merged = json.loads((again / "merged" / "config.json").read_text())
    assert merged["architectures"] == ["LlamaForCausalLM"] and (again / "merged" / "model.safetensors").is_file()
    assert (again / "merged" / "chat_template.jinja").is_file()
    assert set(json.loads((again / "timings.json").read_text())) == {"evaluate", "merge"}


def test_bad_input_exits_2_with_the_fix_and_no_traceback(tmp_path):
    bad = write_jsonl(tmp_path / "train.jsonl", [tool_picker_rows("train", 1)[0], '{"messages": "oops"}'])
    out = train_cli("+experiment=quickstart", f"data.train_file={bad}", "data.test_file=null", "data.strict=true",
              f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 2
    assert f'{bad}:2: missing_messages: missing or empty "messages" list; add one' in out.stderr + out.stdout
    assert "Traceback" not in out.stderr + out.stdout
    # every problem of the config in one message (before: tracebacks after the model loaded, or a run of 0 steps
    # that exited 0)
    out = train_cli("+experiment=quickstart", "quant=nf4", "+lora.rnk=4", "train.learning_rate=abc",
                    "train.per_device_train_batch_size=0", "lora.lora_dropout=2", "train.num_train_epochs=0",
                    f"model.name_or_path={tmp_path / 'nowhere'}", f"hydra.run.dir={tmp_path / 'run2'}", cwd=tmp_path)
    text = out.stderr + out.stdout
    assert out.returncode == 2 and "Traceback" not in text and "parameters" not in text  # no model loaded
    assert "add quant=none" in text and "lora.rnk: not a peft.LoraConfig field" in text
    for key in ("train.learning_rate", "train.per_device_train_batch_size", "lora.lora_dropout",
                "train.num_train_epochs=0", "model.name_or_path"):
        assert key in text, key


@pytest.mark.slow
def test_smollm2_learns_tool_picking_end_to_end(tmp_path):
    """The embedded model on a slice of the shipped data (to keep CI short: 64 examples, 2 epochs; the whole
    quickstart reaches 0.94, BENCHMARKS.md): the evaluate stage ranks it above the base model with a paired test."""
    train = write_jsonl(tmp_path / "train.jsonl", tool_picker_rows("train", 64))
    test = write_jsonl(tmp_path / "test.jsonl", tool_picker_rows("test", 24))
    run = tmp_path / "run"
    out = train_cli("+experiment=quickstart", f"data.train_file={train}", f"data.test_file={test}", "train.num_train_epochs=2",
              f"hydra.run.dir={run}", cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["base"]["exact_match"] <= 0.2
    assert metrics["tuned"]["exact_match"] >= 0.75
    assert metrics["tuned"]["json_valid"] >= 0.95
    report = json.loads((run / "compare.json").read_text())
    em = {name: stats["exact_match"] for name, stats in report["candidates"].items()}
    assert em["tuned"]["value"] == metrics["tuned"]["exact_match"]
    assert em["tuned"]["ci_low"] > em["base"]["ci_high"]  # ranked, intervals apart
    test_run = next(t for t in report["tests"] if t["metric"] == "exact_match" and t["b"] == "tuned")
    assert test_run["test"] == "McNemar exact" and test_run["p_value"] < 0.001 and test_run["ci_low"] > 0.5
