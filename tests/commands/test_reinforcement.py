"""python -m train method=reinforcement on the tiny model: OpenAI's reinforcement JSONL checked line by line, TRL's
GRPOTrainer rewarded by the grader, the reward logged and plotted, and the same grader on the held-out tasks for
the starting model and the tuned one, with its paired test."""

from __future__ import annotations

import json

import yaml

from helpers import python_m, tool_picker_rows, write_jsonl
from lorakit.core.runs import RunFolder

GRADER = {"type": "text_similarity", "name": "close", "input": "{{ sample.output_text }}",
          "reference": "{{ item.reference_answer }}", "evaluation_metric": "fuzzy_match"}


def tasks(n: int) -> list[dict]:
    """tool_picker prompts as reinforcement tasks: the conversation up to the user turn, the reply as a field."""
    return [{"messages": r["messages"][:-1], "reference_answer": r["messages"][-1]["content"]}
            for r in tool_picker_rows("train", n)]


def test_reinforcement_trains_on_the_graders_reward_and_evaluates_with_it(tmp_path):
    rows = tasks(16)
    lines = [*rows[:7], {"messages": rows[7]["messages"]}, tool_picker_rows("train", 9)[8], *rows[9:]]
    data = write_jsonl(tmp_path / "tasks.jsonl", lines)
    grader = tmp_path / "grader.yaml"
    grader.write_text(yaml.safe_dump(GRADER))
    run = tmp_path / "run"
    out = python_m("train", "method=reinforcement", f"method.grader={grader}", "model=tiny-llama",
                   f"data.train_file={data}", "data.test_fraction=0.25", "method.num_generations=4",
                   "method.max_completion_length=8", "+train.max_steps=3", "train.logging_steps=1",
                   "train.per_device_train_batch_size=4", f"hydra.run.dir={run}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    folder = RunFolder(run)

    report = json.loads(folder.data_report.read_text())
    acc = report["accounting"]
    assert acc["records"] == 16 and acc["used"] == {"train": 10, "validation": 0, "test": 4}
    assert acc["dropped_by_reason"] == {"missing_field": 1, "not_a_task": 1}
    found = {(f["line"], f["category"]) for f in report["findings"]}
    assert found == {(8, "missing_field"), (9, "not_a_task"), (9, "missing_field")}
    assert report["tokens"]["completions_per_task"] == 4
    test = [json.loads(line) for line in folder.split("test").read_text().splitlines()]
    assert all(t["item"]["reference_answer"] and t["messages"][-1]["role"] == "user" for t in test)

    history = json.loads(folder.train_log.read_text())
    logged = [h for h in history if "reward" in h]
    assert [h["step"] for h in logged] == [1, 2, 3]
    assert all(0 <= h["reward"] <= 1 and h["reward_std"] >= 0 for h in logged)
    assert (folder.adapter / "adapter_config.json").is_file()

    metrics = json.loads(folder.metrics.read_text())
    assert set(metrics) == {"base", "tuned"} and all(set(m) == {"close"} for m in metrics.values())
    assert all(0 <= m["close"] <= 1 for m in metrics.values())
    compare = json.loads((run / "compare.json").read_text())
    assert compare["metrics"] == ["close"] and compare["n_examples"] == 4
    assert [(t["metric"], t["a"], t["b"]) for t in compare["tests"]] == [("close", "base", "tuned")]
    assert compare["graders"]["close"]["failed"] == {"base": 0, "tuned": 0}
    assert "Reinforcement: mean reward per step" in (run / "compare.html").read_text()
    assert compare["max_new_tokens"] == 8  # answers as long as the completions in training
