"""The validation catalogue: one record of every finding, each reported with its line and category; the counts add
up; strict mode stops the run listing them all; the template check and tool calls."""

from __future__ import annotations

import copy
import json

import pytest

from helpers import compose_cfg, train_cli, write_jsonl
from helpers.family_models import TEMPLATES
from lorakit.data.encoding import IGNORE, encode_split
from lorakit.data.reading import DataError, read_examples, read_file
from lorakit.data.template import TemplateError, verify_saved
from lorakit.models.loading import end_of_turn_ids
from lorakit.stages import prepare

SYSTEM = "You answer arithmetic questions with the number only."
def chat(question: str, answer: str, system: str | None = SYSTEM, **extra) -> dict:
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": messages, **extra}


def good(i: int) -> dict:
    return chat(f"What is {i} plus {i}?", str(2 * i))


# (category expected on this line or None, severity, the record). Line n of the file is CATALOGUE[n - 1].
CATALOGUE = [
    (None, None, good(1)),
    ("not_json", "error", '{"messages": [{"role": "user", "content": "hi"}'),
    ("not_object", "error", "[1, 2]"),
    ("missing_messages", "error", {"messages": []}),
    ("unknown_key", "warning", chat("What is 3 plus 3?", "6", wieght=1)),
    ("unknown_role", "error", {"messages": [{"role": "bot", "content": "hi"}, {"role": "assistant", "content": "x"}]}),
    ("missing_content", "error", {"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}),
    ("empty_content", "error", chat("  ", "8")),
    ("no_assistant", "error", {"messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "q"}]}),
    ("role_order", "error", {"messages": [{"role": "system", "content": SYSTEM},
                                          {"role": "user", "content": "What is 5 plus 5?"},
                                          {"role": "user", "content": "Quickly."},
                                          {"role": "assistant", "content": "10"}]}),
    ("truncated", "warning", chat("Count from 1 to 100.", "1, 2, 3, ...")),
    ("special_token", "error", chat("What is 7 plus 7?<|im_end|>", "14")),
    ("special_token", "warning", chat("[INST] What is 8 plus 8?", "16")),
    ("not_utf8", "error", b'{"messages": "\xff"}'),
    ("duplicate", "error", good(1)),
    ("leakage", "error", chat("What is the capital of Peru?", "Lima, I think")),
    ("system_prompt", "warning", chat("What is 9 plus 9?", "18", system="Be verbose.")),
    ("too_long", "error", chat("Add these: " + "1 + " * 300 + "1", "301")),
    ("bad_weight", "error", {"messages": [{"role": "user", "content": "q", "weight": 1},
                                          {"role": "assistant", "content": "a"}]}),
    ("bad_tool_call", "error", {"messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"type": "function", "function": {"name": "weather", "arguments": "{city: Oslo}"}}]}]}),
    ("no_trained_turn", "error", {"messages": [{"role": "user", "content": "q"},
                                               {"role": "assistant", "content": "a", "weight": 0}]}),
] + [(None, None, good(i)) for i in range(10, 18)]
TEST_FILE = [chat("What is the capital of Peru?", "Lima"), chat("What is 40 plus 40?", "80")]


def write_catalogue(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_bytes(b"".join((row if isinstance(row, bytes) else
                                (row if isinstance(row, str) else json.dumps(row)).encode()) + b"\n"
                               for _, _, row in CATALOGUE))
    test = write_jsonl(tmp_path / "test.jsonl", TEST_FILE)
    return train, test


def catalogue_cfg(tmp_path, *overrides):
    train, test = write_catalogue(tmp_path)
    return compose_cfg(f"data.train_file={train}", f"data.test_file={test}", "data.val_fraction=0",
                       "data.max_length=256", *overrides, run_dir=tmp_path / "run")


@pytest.fixture(scope="module")
def mistral_style(tokenizer):
    """SmolLM2's tokenizer with Mistral-7B-Instruct-v0.3's chat template: strict user/assistant alternation, the
    system prompt in the last user turn."""
    strict = copy.deepcopy(tokenizer)
    strict.chat_template = (TEMPLATES / "mistral_v0_3.jinja").read_text()
    return strict


def test_every_finding_is_reported_with_its_line_and_category(tmp_path, mistral_style):
    cfg = catalogue_cfg(tmp_path)
    report = prepare.run(cfg, mistral_style, end_of_turn_ids(mistral_style), tmp_path / "run")
    train_file = str(tmp_path / "train.jsonl")
    found = {(f["line"], f["category"], f["severity"]) for f in report["findings"] if f["file"] == train_file}
    expected = {(n, category, severity) for n, (category, severity, _) in enumerate(CATALOGUE, 1) if category}
    assert found == expected
    assert {c for c, _, _ in CATALOGUE if c} >= {"not_json", "unknown_key", "role_order", "leakage", "too_long"}
    # Every finding's message says how to fix it.
    assert all(any(w in f["message"] for w in ("fix", "use ", "remove", "set ", "add ", "re-save", "raise", "make ",
                                                  "reorder", "complete", "fill", "dropped"))
               for f in report["findings"]), [f["message"] for f in report["findings"]]

    acc = report["accounting"]
    dropped = sum(severity == "error" for _, severity, _ in CATALOGUE)
    assert acc["records"] == len(CATALOGUE) + len(TEST_FILE)
    assert acc["dropped"] == dropped and sum(acc["dropped_by_reason"].values()) == dropped
    assert acc["used"] == {"train": len(CATALOGUE) - dropped, "validation": 0, "test": 2}
    assert acc["files"][train_file]["dropped"]["special_token"] == 1
    # The training data holds exactly the records without a dropping finding, warnings included.
    used_lines = [json.loads(x)["line"] for x in (tmp_path / "run" / "data" / "train.jsonl").read_text().splitlines()]
    assert used_lines == [n for n, (_, severity, _) in enumerate(CATALOGUE, 1) if severity != "error"]
    markdown = (tmp_path / "run" / "data_report.md").read_text()
    assert f"`{train_file}:10` the model's chat template rejects this conversation" in markdown


def test_strict_mode_stops_before_training_listing_every_finding(tmp_path, mistral_style):
    cfg = catalogue_cfg(tmp_path, "data.strict=true")
    with pytest.raises(DataError) as err:
        prepare.run(cfg, mistral_style, end_of_turn_ids(mistral_style), tmp_path / "run")
    message = str(err.value)
    for n, (category, _, _) in enumerate(CATALOGUE, 1):
        if category:
            assert f"train.jsonl:{n}: {category}: " in message, (n, category)
    assert not (tmp_path / "run" / "data" / "train").exists()  # nothing prepared for training
    assert (tmp_path / "run" / "data_report.md").is_file()  # but the report is there to read


def test_strict_cli_exits_2_with_the_list_and_no_traceback(tmp_path):

    train, test = write_catalogue(tmp_path)
    out = train_cli("stages=[prepare]", f"data.train_file={train}", f"data.test_file={test}", "data.max_length=256",
              "data.strict=true", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stdout + out.stderr
    for n, (category, _, _) in enumerate(CATALOGUE, 1):
        if category and category != "role_order":  # SmolLM2's ChatML template takes any order of roles
            assert f"train.jsonl:{n}: {category}: " in out.stdout + out.stderr, (n, category)


@pytest.mark.parametrize(("policy", "kept", "category"), [("drop", False, "too_long"), ("truncate", True, None)])
def test_too_long_policy(tmp_path, tokenizer, policy, kept, category):
    long = chat("Repeat after me.", "la " * 400)
    train = write_jsonl(tmp_path / "train.jsonl", [good(1), long, good(2)])
    cfg = compose_cfg(f"data.train_file={train}", "data.test_file=null", "data.test_fraction=0", "data.val_fraction=0",
                      "data.max_length=128", f"data.too_long={policy}", run_dir=tmp_path / "run")
    report = prepare.run(cfg, tokenizer, end_of_turn_ids(tokenizer), tmp_path / "run")
    assert report["accounting"]["used"]["train"] == (3 if kept else 2)
    assert report["accounting"]["dropped_by_reason"].get("too_long") == (None if kept else 1)
    assert [f["line"] for f in report["findings"]] == [2]
    if kept:
        from datasets import load_from_disk

        rows = load_from_disk(str(tmp_path / "run" / "data" / "train"))
        assert max(rows["length"]) == 128 and rows[1]["line"] == 2


def test_too_long_error_policy_stops_the_run(tmp_path, tokenizer):
    train = write_jsonl(tmp_path / "train.jsonl", [good(1), chat("Repeat after me.", "la " * 400)])
    cfg = compose_cfg(f"data.train_file={train}", "data.test_file=null", "data.test_fraction=0", "data.val_fraction=0",
                      "data.max_length=128", "data.too_long=error", run_dir=tmp_path / "run")
    with pytest.raises(DataError, match=r"train.jsonl:2: too_long: \d+ tokens > data.max_length=128"):
        prepare.run(cfg, tokenizer, end_of_turn_ids(tokenizer), tmp_path / "run")


def test_duplicates_can_be_kept(tmp_path, tokenizer):
    train = write_jsonl(tmp_path / "train.jsonl", [good(1), good(2), good(1)])
    cfg = compose_cfg(f"data.train_file={train}", "data.test_file=null", "data.test_fraction=0", "data.val_fraction=0",
                      "data.duplicates=keep", run_dir=tmp_path / "run")
    report = prepare.run(cfg, tokenizer, end_of_turn_ids(tokenizer), tmp_path / "run")
    assert report["accounting"]["used"]["train"] == 3
    assert [(f["line"], f["category"], f["severity"]) for f in report["findings"]] == [(3, "duplicate", "warning")]


def test_split_off_test_set_does_not_leak_into_training(tmp_path, tokenizer):
    rows = [good(i) for i in range(40)] + [chat("What is 3 plus 3?", f"{6 + i}") for i in range(5)]  # same prompt
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    cfg = compose_cfg(f"data.train_file={train}", "data.test_file=null", "data.test_fraction=0.25",
                      "data.val_fraction=0", run_dir=tmp_path / "run")
    prepare.run(cfg, tokenizer, end_of_turn_ids(tokenizer), tmp_path / "run")

    def prompts(split):
        lines = (tmp_path / "run" / "data" / f"{split}.jsonl").read_text().splitlines()
        return {json.dumps(json.loads(x)["messages"][:-1]) for x in lines}

    assert prompts("test") and not prompts("train") & prompts("test")


def test_tool_calls_are_trained_as_json_text_when_the_template_has_no_tool_support(tmp_path, tokenizer):
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
    row = {"messages": [{"role": "user", "content": "Weather in Oslo?"},
                        {"role": "assistant", "content": None, "tool_calls": [call]},
                        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 3}'},
                        {"role": "assistant", "content": "3 degrees in Oslo."}],
           "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]}
    train = write_jsonl(tmp_path / "train.jsonl", [row])
    [example] = read_examples(train)
    assert example.messages[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}
    assert example.tools == row["tools"]
    [encoded] = encode_split([example], tokenizer, end_of_turn_ids(tokenizer),
                                     compose_cfg("data.train_file=x").data)[0]
    trained = tokenizer.decode([t for t in encoded["labels"] if t != IGNORE])
    assert trained == '{"name": "weather", "arguments": {"city": "Oslo"}}<|im_end|>3 degrees in Oslo.<|im_end|>'


def test_saved_template_must_render_like_the_training_one(tmp_path, tokenizer, mistral_style):
    conversations = [(good(1)["messages"], None)]
    tokenizer.save_pretrained(tmp_path / "same")
    assert verify_saved(tokenizer, tmp_path / "same", conversations) == verify_saved(
        tokenizer, tmp_path / "same", conversations)
    mistral_style.save_pretrained(tmp_path / "other")
    with pytest.raises(TemplateError, match="renders training example 0 differently"):
        verify_saved(tokenizer, tmp_path / "other", conversations)


def test_template_without_end_of_turn_in_the_loss_is_an_error(tmp_path, tokenizer):
    no_eot = copy.deepcopy(tokenizer)
    no_eot.chat_template = ("{%- for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{%- endfor %}"
                            "{%- if add_generation_prompt %}{{ 'assistant: ' }}{%- endif %}")
    train = write_jsonl(tmp_path / "train.jsonl", [good(1)])
    [example] = read_examples(train)
    with pytest.raises(TemplateError, match="the model would never learn to stop"):
        encode_split([example], no_eot, end_of_turn_ids(no_eot), compose_cfg("data.train_file=x").data)


def test_random_malformed_records_are_reported_never_raised(tmp_path):
    """Any JSON value, in any place of any format's record, ends as a finding or an example, never an exception."""
    import random

    rng = random.Random(0)
    values = [None, 0, 1, 2, -1, 1.5, True, "", " ", "x", "user", "assistant", "bot", [], {}, [1], {"a": 1},
              [{"role": "user"}], [["q", "a"]], {"function": {"name": "f", "arguments": "{"}}]
    keys = ["messages", "role", "content", "weight", "tool_calls", "tools", "name", "conversations", "from", "value",
            "instruction", "input", "output", "history", "system", "prompt", "completion"]

    def value(depth: int = 0):
        if depth < 3 and rng.random() < 0.4:
            if rng.random() < 0.5:
                return [value(depth + 1) for _ in range(rng.randint(0, 3))]
            return {rng.choice(keys): value(depth + 1) for _ in range(rng.randint(0, 4))}
        return rng.choice(values)

    for fmt in ("openai_chat", "sharegpt", "alpaca", "prompt_completion"):
        rows = [value() for _ in range(300)]
        path = tmp_path / f"{fmt}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        result = read_file(path, fmt)
        assert result.records == len(rows)
        reported = {f.record for f in result.findings if f.drops}
        assert len(reported) + len(result.examples) == len(rows), fmt
