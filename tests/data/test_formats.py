"""Every input format gives the same training example; weights decide which assistant turns are trained."""

from __future__ import annotations

import json

import pytest

from helpers import write_jsonl
from lorakit.data.encoding import IGNORE, tokenize_with_labels
from lorakit.data.reading import DataError, read_examples
from lorakit.models.loading import end_of_turn_ids

SYSTEM, QUESTION, CONTEXT, ANSWER = "You are terse.", "Capital of France?", "Answer in one word.", "Paris"
CHAT = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": f"{QUESTION}\n\n{CONTEXT}"},
        {"role": "assistant", "content": ANSWER}]


def _files(tmp_path) -> dict[str, tuple[str, str]]:
    """The same conversation in every format: name -> (path, data.format a user may give)."""
    alpaca = {"instruction": QUESTION, "input": CONTEXT, "output": ANSWER, "system": SYSTEM}
    files = {
        "openai.jsonl": [{"messages": CHAT}],
        "sharegpt.jsonl": [{"conversations": [{"from": "system", "value": SYSTEM},
                                              {"from": "human", "value": f"{QUESTION}\n\n{CONTEXT}"},
                                              {"from": "gpt", "value": ANSWER}]}],
        "alpaca.jsonl": [alpaca],
        "prompt_completion.jsonl": [{"prompt": CHAT[:2], "completion": CHAT[2:]}],
    }
    out = {}
    for name, rows in files.items():
        out[name] = str(write_jsonl(tmp_path / name, rows))
    (tmp_path / "alpaca.json").write_text(json.dumps([alpaca], indent=2))
    out["alpaca.json"] = str(tmp_path / "alpaca.json")
    (tmp_path / "data.csv").write_text(f'sys,question,answer\n"{SYSTEM}","{QUESTION}\n\n{CONTEXT}",{ANSWER}\n')
    out["data.csv"] = str(tmp_path / "data.csv")
    return out


def test_every_format_gives_the_same_tokens_and_loss_mask(tmp_path, tokenizer):
    columns = {"prompt": "question", "completion": "answer", "system": "sys"}
    eot = end_of_turn_ids(tokenizer)
    expected = tokenize_with_labels(tokenizer, [CHAT], eot)[0]
    assert any(label != IGNORE for label in expected["labels"])
    for name, path in _files(tmp_path).items():
        [example] = read_examples(path, "auto", columns)
        assert example.messages == CHAT, name
        assert example.line == (2 if name in ("alpaca.json", "data.csv") else 1), name  # where the record starts
        assert tokenize_with_labels(tokenizer, [example.messages], eot)[0] == expected, name


def test_string_prompt_completion_is_one_user_turn_and_one_reply(tmp_path):
    path = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": QUESTION, "completion": ANSWER}])
    [example] = read_examples(path)
    assert example.messages == [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}]


def test_weight_zero_turns_are_context_and_every_weighted_turn_is_trained(tmp_path, tokenizer):
    eot = end_of_turn_ids(tokenizer)
    turns = [{"role": "user", "content": "Say one."}, {"role": "assistant", "content": "one", "weight": 0},
             {"role": "user", "content": "Say two."}, {"role": "assistant", "content": "two two", "weight": 1},
             {"role": "user", "content": "Say three."}, {"role": "assistant", "content": "three three three"}]
    path = write_jsonl(tmp_path / "w.jsonl", [{"messages": turns}])
    [example] = read_examples(path)
    row = tokenize_with_labels(tokenizer, [example.messages], eot)[0]
    trained = tokenizer.decode([t for t in row["labels"] if t != IGNORE])
    assert "one" not in trained and "two two" in trained and "three three three" in trained
    assert len(row["input_ids"]) == len(tokenize_with_labels(tokenizer, [[dict(m, weight=1) if "weight" in m else m
                                                                          for m in turns]], eot)[0]["input_ids"])
    all_weighted = tokenize_with_labels(tokenizer, [[{k: v for k, v in m.items() if k != "weight"} for m in turns]], eot)
    n_all = sum(label != IGNORE for label in all_weighted[0]["labels"])
    n_some = sum(label != IGNORE for label in row["labels"])
    assert n_all - n_some == len(tokenizer("one", add_special_tokens=False)["input_ids"]) + 1  # reply + end of turn


@pytest.mark.parametrize(("rows", "message"), [
    ([{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]}],
     "every assistant message has weight 0"),
    ([{"messages": [{"role": "user", "content": "q", "weight": 1}, {"role": "assistant", "content": "a"}]}],
     "set weight 0 or 1, on assistant messages only"),
    ([{"conversations": [{"from": "human", "value": "q"}, {"from": "robot", "value": "a"}]}], "from='robot'"),
    ([{"text": "hello"}], "cannot tell the format"),
])
def test_format_problems_name_file_line_and_fix(tmp_path, rows, message):
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError, match=message) as err:
        read_examples(path)
    assert f"{path}:1:" in str(err.value)


def test_csv_without_the_configured_columns_lists_the_header(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("question,answer\nq,a\n")
    with pytest.raises(DataError, match=r"d.csv:2: missing_messages: column\(s\) \['prompt', 'completion'\] not in the header"):
        read_examples(path)


def test_broken_json_array_reports_the_element_line(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n  {"instruction": "q", "output": "a"},\n  {"instruction": "q" "output": "a"}\n]\n')
    with pytest.raises(DataError, match=r"a.json:3: not_json: not valid JSON"):
        read_examples(path)


def test_qa_pair_and_conversation_helpers_write_files_prepare_reads(tmp_path, tokenizer):
    from lorakit.data.dataset import from_conversations, from_qa_pairs
    from lorakit.data.dataset import write_jsonl as write

    [example] = read_examples(write(tmp_path / "qa.jsonl", from_qa_pairs([(QUESTION, ANSWER)], system=SYSTEM)))
    assert example.messages == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION},
                                {"role": "assistant", "content": ANSWER}]
    with pytest.raises(TypeError, match="pair 1"):
        from_qa_pairs([("q", "a"), ("q",)])

    conversation = [{"role": "user", "content": "Say one."}, {"role": "assistant", "content": "one"},
                    {"role": "user", "content": "Say two."}, {"role": "assistant", "content": "two two"}]
    eot = end_of_turn_ids(tokenizer)
    trained = {}
    for train_on in ("all", "last"):
        path = write(tmp_path / f"{train_on}.jsonl", from_conversations([conversation], system=SYSTEM, train_on=train_on))
        [example] = read_examples(path)  # one example per conversation, not one per turn
        assert example.messages[0] == {"role": "system", "content": SYSTEM} and len(example.messages) == 5
        row = tokenize_with_labels(tokenizer, [example.messages], eot)[0]
        trained[train_on] = tokenizer.decode([t for t in row["labels"] if t != IGNORE])
    assert trained == {"all": "one<|im_end|>two two<|im_end|>", "last": "two two<|im_end|>"}


def test_text_after_a_json_array_is_reported_not_ignored(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[{"instruction": "q", "output": "a"}]\n{"instruction": "q2", "output": "a2"}\n')
    with pytest.raises(DataError, match=r"a.json:2: not_json: text after the end of the JSON array"):
        read_examples(path)
    path.write_text('[{"instruction": "q", "output": "a"},\n')
    with pytest.raises(DataError, match=r"a.json:2: not_json: the JSON array is not closed"):
        read_examples(path)
