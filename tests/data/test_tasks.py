"""Reinforcement tasks (OpenAI's RFT JSONL) checked line by line: each unusable line named with its file, line,
category and fix; the usable ones kept with the whole line as the grader's item."""

from __future__ import annotations

import json

from lorakit.data.tasks import read_tasks

TASK = {"messages": [{"role": "system", "content": "Answer with the city."},
                     {"role": "user", "content": "Where is the Eiffel Tower?"}], "answer": "Paris", "id": 7}


def test_each_line_is_checked_and_named(tmp_path):
    path = tmp_path / "tasks.jsonl"
    lines = [json.dumps(TASK),
             "not json",
             json.dumps([1, 2]),
             json.dumps({"answer": "Paris"}),
             json.dumps({**TASK, "messages": [*TASK["messages"], {"role": "assistant", "content": "Paris"}]}),
             json.dumps({k: v for k, v in TASK.items() if k != "answer"}),
             json.dumps({**TASK, "messages": [{"role": "user", "content": "  "}]}),
             json.dumps({**TASK, "messages": [{"role": "bot", "content": "hi"}, {"role": "user", "content": "x"}]}),
             "",
             json.dumps({**TASK, "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]})]
    path.write_text("\n".join(lines) + "\n")
    read = read_tasks(path, needed={"answer"})
    assert read.records == 9  # the blank line is no record
    assert [t.line for t in read.examples] == [1, 10]
    assert read.examples[0].item == TASK and read.examples[0].messages[-1]["role"] == "user"
    assert read.examples[1].tools[0]["function"]["name"] == "f"
    found = {(f.line, f.category) for f in read.findings}
    assert found == {(2, "not_json"), (3, "not_object"), (4, "missing_messages"), (5, "not_a_task"),
                     (6, "missing_field"), (7, "empty_content"), (8, "unknown_role")}
    by_line = {f.line: str(f) for f in read.findings}
    assert by_line[6] == (f'{path}:6: missing_field: the grader reads item.answer, and this line has no "answer"; '
                          "add it (or fix the grader's template)")
    assert "the last message's role is 'assistant'; a task ends with the user turn the model answers" in by_line[5]
    assert all(f.drops for f in read.findings)
    assert len(read.examples) + len({f.record for f in read.findings}) == read.records  # every line accounted for
