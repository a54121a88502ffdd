"""Prepare stage: JSONL checks with file:line errors, loss masking on the real chat template, deterministic splits."""

from __future__ import annotations

import json

import pytest

from helpers import compose_cfg, pair_rows, tool_picker_rows, write_jsonl
from lorakit.data.encoding import IGNORE, tokenize_with_labels
from lorakit.data.reading import DataError, read_examples
from lorakit.data.splits import split_indices
from lorakit.models.loading import end_of_turn_ids
from lorakit.stages import prepare

CONVERSATION = [
    {"role": "system", "content": "You convert units."},
    {"role": "user", "content": "3 km in miles?"},
    {"role": "assistant", "content": "1.86 miles"},
    {"role": "user", "content": "and 10 km?"},
    {"role": "assistant", "content": "6.21 miles"},
]


def test_only_assistant_tokens_and_their_end_of_turn_are_trained(tokenizer):
    eot = end_of_turn_ids(tokenizer)
    [row] = tokenize_with_labels(tokenizer, [CONVERSATION], eot)
    ids, labels = row["input_ids"], row["labels"]
    assert len(ids) == len(labels)
    trained = [i for i, lab in enumerate(labels) if lab != IGNORE]
    assert all(labels[i] == ids[i] for i in trained)
    # The trained tokens are exactly each reply followed by its end-of-turn token, in two separate runs.
    runs, current = [], [trained[0]]
    for i in trained[1:]:
        if i == current[-1] + 1:
            current.append(i)
        else:
            runs.append(current)
            current = [i]
    runs.append(current)
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert [tokenizer.decode([ids[i] for i in run]) for run in runs] == ["1.86 miles<|im_end|>", "6.21 miles<|im_end|>"]
    assert all(ids[run[-1]] == im_end for run in runs)
    # Every other token (system, user, role headers, newlines between turns) is masked.
    masked_text = tokenizer.decode([ids[i] for i in range(len(ids)) if labels[i] == IGNORE])
    assert "You convert units." in masked_text and "3 km in miles?" in masked_text and "miles" not in masked_text.replace(
        "3 km in miles?", "")
    # The full sequence is exactly the chat template's rendering.
    assert tokenizer.decode(ids) == tokenizer.apply_chat_template(CONVERSATION, tokenize=False)


def test_malformed_lines_are_reported_with_file_and_line(tmp_path):
    good = tool_picker_rows("train", 1)[0]
    path = write_jsonl(tmp_path / "train.jsonl", [
        good,
        '{"messages": [{"role": "user", "content": "hi"}',  # truncated JSON
        {"messages": [{"role": "bot", "content": "hello"}]},
        {"messages": [{"role": "user", "content": "only a question"}]},
        "",
        {"prompt": "x", "completion": "y"},
        good,
    ])
    with pytest.raises(DataError) as err:
        read_examples(path)
    msg = str(err.value)
    assert "4 unusable record(s)" in msg
    assert f"{path}:2: not_json: not valid JSON" in msg
    assert f"{path}:3: unknown_role: message 1 has role 'bot'; use one of system, user, assistant, tool" in msg
    assert f"{path}:4: no_assistant: no assistant message" in msg
    assert f'{path}:6: missing_messages: missing or empty "messages" list' in msg
    assert f"{path}:1:" not in msg and f"{path}:7:" not in msg


def test_non_utf8_line_is_reported(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(json.dumps(tool_picker_rows("train", 1)[0]).encode() + b"\n\xff\xfe\n")
    with pytest.raises(DataError, match=r"bad.jsonl:2: not_utf8: not valid UTF-8"):
        read_examples(path)


def test_split_is_deterministic_and_disjoint():
    rest, held = split_indices(100, 0.1, seed=3)
    assert len(held) == 10 and len(rest) == 90 and not set(rest) & set(held)
    assert split_indices(100, 0.1, seed=3) == (rest, held)
    assert split_indices(100, 0.1, seed=4) != (rest, held)
    assert split_indices(5, 0.1, seed=0)[1] != []  # a non-zero fraction always holds out one


def test_prepare_accounts_for_every_example(tmp_path, tokenizer):
    rows = tool_picker_rows("train", 40)
    rows[5]["messages"][1]["content"] = "word " * 600  # far over max_length
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    cfg = compose_cfg("+experiment=quickstart", f"data.train_file={train}", "data.test_file=null",
                      "data.test_fraction=0.2", "data.val_fraction=0.25", run_dir=tmp_path / "run")
    report = prepare.run(cfg, tokenizer, end_of_turn_ids(tokenizer), tmp_path / "run")
    acc = report["accounting"]
    assert sum(acc["used"].values()) + acc["dropped"] == acc["records"] == 40
    assert acc["dropped_by_reason"] == {"too_long": 1}
    [finding] = report["findings"]
    assert (finding["line"], finding["category"], finding["severity"]) == (6, "too_long", "error")
    written = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert written["accounting"] == acc and written["tokens"]["assistant_trained_per_epoch"] > 0
    for split in ("train", "validation", "test"):
        lines = [json.loads(x)["line"] for x in (tmp_path / "run" / "data" / f"{split}.jsonl").read_text().splitlines()]
        assert len(lines) == acc["used"][split]
        assert 6 not in lines


def test_no_validation_split(tmp_path, tokenizer):
    train = write_jsonl(tmp_path / "train.jsonl", tool_picker_rows("train", 10))
    cfg = compose_cfg("+experiment=quickstart", f"data.train_file={train}", "data.val_fraction=0", run_dir=tmp_path)
    report = prepare.run(cfg, tokenizer, end_of_turn_ids(tokenizer), tmp_path)
    assert report["accounting"]["used"] == {"train": 10, "validation": 0, "test": 100}
    assert not (tmp_path / "data" / "validation").exists()


def test_prepare_stage_alone_checks_data_without_training(tmp_path):
    from lorakit.stages.pipeline import run

    train = write_jsonl(tmp_path / "train.jsonl", tool_picker_rows("train", 12))
    cfg = compose_cfg("+experiment=quickstart", f"data.train_file={train}", "data.test_file=null", "stages=[prepare]",
                      run_dir=tmp_path / "run")
    assert run(cfg) is None
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert sum(report["accounting"]["used"].values()) == 12 and "## Where every record went" in (
        tmp_path / "run" / "data_report.md").read_text()
    assert not (tmp_path / "run" / "adapter").exists() and not (tmp_path / "run" / "metrics.json").exists()


def test_preference_pairs_are_prepared_and_accounted_for(tmp_path, tokenizer):
    rows = pair_rows(30)
    rows[3]["non_preferred_output"] = rows[3]["preferred_output"]          # line 4: identical sides
    rows[7]["input"]["messages"][1]["content"] = "word " * 3000           # line 8: far over max_length
    train = write_jsonl(tmp_path / "pairs.jsonl", rows)
    cfg = compose_cfg("method=dpo", f"data.train_file={train}", "data.test_file=null", "data.test_fraction=0.2",
                      "data.val_fraction=0.25", run_dir=tmp_path / "run")
    report = prepare.run(cfg, tokenizer, end_of_turn_ids(tokenizer), tmp_path / "run")
    acc = report["accounting"]
    assert sum(acc["used"].values()) + acc["dropped"] == acc["records"] == 30
    assert acc["dropped_by_reason"] == {"identical_outputs": 1, "too_long": 1}
    assert [(f["line"], f["category"]) for f in report["findings"]] == [(4, "identical_outputs"), (8, "too_long")]
    from datasets import load_from_disk
    train_set = load_from_disk(str(tmp_path / "run" / "data" / "train"))
    assert {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(train_set.column_names)
    assert len(train_set) == acc["used"]["train"]
    test = [json.loads(x) for x in (tmp_path / "run" / "data" / "test.jsonl").read_text().splitlines()]
    assert len(test) == acc["used"]["test"] and all(r["rejected"]["role"] == "assistant" for r in test)


def test_a_file_for_the_other_method_gets_one_message_naming_the_method(tmp_path, tokenizer):
    chat = write_jsonl(tmp_path / "chat.jsonl", tool_picker_rows("train", 10))
    pairs = write_jsonl(tmp_path / "pairs.jsonl", pair_rows(10))
    eot = end_of_turn_ids(tokenizer)
    with pytest.raises(DataError, match=r"chat.jsonl holds chat examples \(openai_chat format\), and method=dpo "
                                        r"trains on preference pairs.*python -m lorakit.pairs.*method=supervised"):
        prepare.run(compose_cfg("method=dpo", f"data.train_file={chat}", run_dir=tmp_path / "a"), tokenizer, eot,
                    tmp_path / "a")
    with pytest.raises(DataError, match=r"pairs.jsonl holds preference pairs \(openai_preference format\), which "
                                        r"method=supervised does not train on; run with method=dpo"):
        prepare.run(compose_cfg(f"data.train_file={pairs}", run_dir=tmp_path / "b"), tokenizer, eot, tmp_path / "b")


def test_chat_examples_and_tasks_each_given_to_the_other_method_are_named(tmp_path, tokenizer):
    grader = tmp_path / "grader.yaml"
    grader.write_text("{type: string_check, name: same, input: '{{ sample.output_text }}', "
                      "reference: '{{ item.answer }}', operation: eq}\n")
    chat = write_jsonl(tmp_path / "chat.jsonl", [{**r, "answer": "x"} for r in tool_picker_rows("train", 10)])
    tasks = write_jsonl(tmp_path / "tasks.jsonl", [{"messages": r["messages"][:-1], "answer": "x"}
                                                   for r in tool_picker_rows("train", 10)])
    eot = end_of_turn_ids(tokenizer)
    with pytest.raises(DataError, match=r"chat.jsonl holds chat examples \(every line ends in an assistant reply\), "
                                        r"and method=reinforcement trains on tasks.*or train on the examples with "
                                        r"method=supervised"):
        prepare.run(compose_cfg("method=reinforcement", f"method.grader={grader}", f"data.train_file={chat}",
                                run_dir=tmp_path / "a"), tokenizer, eot, tmp_path / "a")
    with pytest.raises(DataError, match=r"these look like reinforcement tasks; train on them with "
                                        r"method=reinforcement method.grader=<your grader>"):
        prepare.run(compose_cfg(f"data.train_file={tasks}", run_dir=tmp_path / "b"), tokenizer, eot, tmp_path / "b")
