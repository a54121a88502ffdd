"""A test set of another task is refused before training; one of the same task, however varied, is not."""

from __future__ import annotations

import random
import shutil

from helpers import train_cli, write_jsonl
from lorakit.core.paths import ROOT
from lorakit.data.reading import read_examples
from lorakit.data.task_match import mismatches


def _examples(task: str, split: str) -> list[list[dict]]:
    return [ex.messages for ex in read_examples(ROOT / "data" / task / f"{split}.jsonl")]


def test_the_shipped_tasks_are_told_apart_and_each_matches_itself():
    for task in ("tool_picker", "contacts", "dates"):
        assert mismatches(_examples(task, "train"), _examples(task, "test")) == []
    reasons = mismatches(_examples("tool_picker", "train"), _examples("contacts", "test"))
    assert len(reasons) == 2 and reasons[0].startswith("different system prompts")
    assert "JSON answers without a key in common" in reasons[1] and "'email'" in reasons[1]
    reasons = mismatches(_examples("dates", "train"), _examples("tool_picker", "test"))
    assert "training answers are free text, test answers JSON objects" in reasons[1]


def test_varied_multi_turn_chat_with_per_example_system_prompts_is_not_flagged(tmp_path):
    """Human-like data: free-text answers, a different persona prompt per conversation (or none), 1-3 turns, a
    few JSON replies among them. Two random halves of it are one task."""
    rng = random.Random(0)
    words = "the a model data train answer question why how because it works when you try again later".split()
    rows = []
    for i in range(120):
        messages = [{"role": "system", "content": f"You are assistant #{i}, {rng.choice(words)} and kind."}] \
            if rng.random() < 0.6 else []
        for _ in range(rng.randint(1, 3)):
            messages.append({"role": "user", "content": " ".join(rng.choices(words, k=rng.randint(3, 12))) + "?"})
            reply = '{"ok": true}' if rng.random() < 0.05 else " ".join(rng.choices(words, k=rng.randint(4, 30)))
            messages.append({"role": "assistant", "content": reply})
        rows.append({"messages": messages})
    train = [ex.messages for ex in read_examples(write_jsonl(tmp_path / "train.jsonl", rows[:100]))]
    test = [ex.messages for ex in read_examples(write_jsonl(tmp_path / "test.jsonl", rows[100:]))]
    assert mismatches(train, test) == []


def test_own_training_data_with_the_quickstart_test_file_is_refused(tmp_path):
    shutil.copy(ROOT / "data" / "dates" / "train.jsonl", tmp_path / "mine.jsonl")
    out = train_cli("+experiment=quickstart", "data.train_file=mine.jsonl", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode == 2 and "Traceback" not in text
    assert "is the test set of a shipped example (tool_picker), while data.train_file is your own" in text
    assert "data.test_file=null to hold out data.test_fraction" in text


def test_a_test_file_of_another_task_stops_the_run_before_training(tmp_path):
    shutil.copy(ROOT / "data" / "tool_picker" / "train.jsonl", tmp_path / "train.jsonl")
    shutil.copy(ROOT / "data" / "contacts" / "test.jsonl", tmp_path / "test.jsonl")
    args = ("data.train_file=train.jsonl", "data.test_file=test.jsonl", "stages=[prepare,train]")
    out = train_cli(*args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode == 2 and "Traceback" not in text
    assert "the test set test.jsonl does not look like the task of train.jsonl" in text
    assert "different system prompts" in text and "data.check_task_match=false" in text
    assert not (tmp_path / "run" / "data").exists() and not (tmp_path / "run" / "adapter").exists()
    out = train_cli(*args[:2], "stages=[prepare]", "data.check_task_match=false", f"hydra.run.dir={tmp_path / 'ok'}",
              cwd=tmp_path)
    assert out.returncode == 0, text[-2000:]
