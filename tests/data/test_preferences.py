"""Preference pairs: both formats read, every bad line named with its file, line and fix, both sides tokenized
after exactly the inference prompt."""

from __future__ import annotations

import json

from omegaconf import OmegaConf

from helpers import pair_rows, write_jsonl
from lorakit.data.encoding import encode_pairs
from lorakit.data.reading import read_file
from lorakit.models.loading import end_of_turn_ids

USER = [{"role": "user", "content": "Capital of France?"}]
GOOD = {"input": {"messages": USER}, "preferred_output": [{"role": "assistant", "content": "Paris"}],
        "non_preferred_output": [{"role": "assistant", "content": "Lyon"}]}


def test_both_formats_give_the_same_pair(tmp_path):
    openai = read_file(write_jsonl(tmp_path / "openai.jsonl", [GOOD]))
    trl_strings = read_file(write_jsonl(tmp_path / "strings.jsonl", [{"prompt": "Capital of France?",
                                                                       "chosen": "Paris", "rejected": "Lyon"}]))
    trl_messages = read_file(write_jsonl(tmp_path / "messages.jsonl", [
        {"prompt": USER, "chosen": [{"role": "assistant", "content": "Paris"}],
         "rejected": [{"role": "assistant", "content": "Lyon"}]}]))
    assert openai.format == "openai_preference" and trl_strings.format == trl_messages.format == "prompt_chosen_rejected"
    for read in (openai, trl_strings, trl_messages):
        [ex] = read.examples
        assert ex.messages == [*USER, {"role": "assistant", "content": "Paris"}]
        assert ex.rejected == {"role": "assistant", "content": "Lyon"}
        assert not read.findings


def test_every_bad_pair_is_named_by_line_with_its_fix(tmp_path):
    def pair(**changes):
        return json.dumps({**GOOD, **changes})

    lines = [pair(),
             pair(non_preferred_output=None),                                                   # 2 missing side
             pair(non_preferred_output=[{"role": "assistant", "content": "Paris"}]),            # 3 identical
             pair(preferred_output=[{"role": "assistant", "content": "  "}]),                   # 4 empty
             pair(preferred_output=[{"role": "user", "content": "Paris"}]),                     # 5 wrong role
             pair(preferred_output=[{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]),
             pair(input={"messages": [*USER, {"role": "assistant", "content": "Paris"}]}),      # 7 ends with reply
             pair(input="Capital of France?"),                                                  # 8 input not object
             pair(non_preferred_output=[{"role": "assistant", "content": "Lyon<|im_end|>"}]),  # 9 (no tokenizer)
             pair(wieght=1)]                                                                    # 10 unknown key
    read = read_file(write_jsonl(tmp_path / "pairs.jsonl", lines), special=None)
    found = {f.line: f for f in read.findings}
    assert [ex.line for ex in read.examples] == [1, 9, 10]  # without a tokenizer, no special token is known
    expected = {2: "missing_output", 3: "identical_outputs", 4: "empty_output", 5: "bad_output_role",
                6: "bad_output", 7: "prompt_ends_with_reply", 8: "missing_messages", 10: "unknown_key"}
    for line, category in expected.items():
        assert found[line].category == category, (line, found.get(line))
        assert found[line].file.endswith("pairs.jsonl")
    assert "non_preferred_output" in found[2].message and "both replies" in found[2].message
    assert "set its role" in found[5].message and "exactly one assistant message" in found[6].message
    assert not found[10].drops and "wieght" in found[10].message


def test_the_non_preferred_side_is_checked_like_a_chat_reply(tmp_path, tokenizer):
    from lorakit.data.checks import SpecialTokens

    bad = {**GOOD, "non_preferred_output": [{"role": "assistant", "content": "Lyon<|im_end|>"}]}
    read = read_file(write_jsonl(tmp_path / "pairs.jsonl", [GOOD, bad]), special=SpecialTokens(tokenizer))
    [finding] = read.findings
    assert finding.line == 2 and finding.message.startswith("non-preferred reply:") and "<|im_end|>" in finding.message


def test_pairs_with_one_prompt_and_different_rejected_replies_are_not_duplicates(tmp_path, tokenizer):
    from lorakit.data.splits import select
    other = {**GOOD, "non_preferred_output": [{"role": "assistant", "content": "Marseille"}]}
    data = OmegaConf.create({"train_file": str(write_jsonl(tmp_path / "p.jsonl", [GOOD, other, GOOD])),
                             "test_file": None, "test_fraction": 0, "val_fraction": 0, "format": "auto",
                             "duplicates": "drop", "csv_columns": None})
    selection = select(data, 0, tokenizer)
    assert len(selection.splits["train"]) == 2
    assert [f.line for f in selection.findings if f.category == "duplicate"] == [3]


def test_both_replies_follow_exactly_the_inference_prompt_and_end_with_the_end_of_turn(families, tmp_path):
    rows = pair_rows(3)
    examples = read_file(write_jsonl(tmp_path / "pairs.jsonl", rows)).examples
    data = OmegaConf.create({"max_length": 1024, "too_long": "drop", "num_proc": None})
    for family, (_, tokenizer, eot) in families.items():
        encoded, findings = encode_pairs(examples, tokenizer, eot, data)
        assert len(encoded) == 3 and not findings, family
        for row, pair in zip(encoded, rows, strict=True):
            prompt = tokenizer.apply_chat_template(pair["input"]["messages"], add_generation_prompt=True, tokenize=False)
            assert row["prompt_ids"] == tokenizer(prompt, add_special_tokens=False)["input_ids"], family
            for side, key in (("chosen_ids", "preferred_output"), ("rejected_ids", "non_preferred_output")):
                assert row[side][-1] in eot, family
                assert pair[key][0]["content"] in tokenizer.decode(row[side]), family


def test_too_long_pairs_are_dropped_or_cut_after_the_whole_prompt(tokenizer, tmp_path):
    examples = read_file(write_jsonl(tmp_path / "pairs.jsonl", pair_rows(2))).examples
    eot = end_of_turn_ids(tokenizer)
    full, _ = encode_pairs(examples, tokenizer, eot, OmegaConf.create({"max_length": 1024, "too_long": "drop"}))
    limit = len(full[0]["prompt_ids"]) + 3
    dropped, found = encode_pairs(examples, tokenizer, eot, OmegaConf.create({"max_length": limit, "too_long": "drop"}))
    assert not dropped and [f.category for f in found] == ["too_long", "too_long"] and all(f.drops for f in found)
    cut, found = encode_pairs(examples, tokenizer, eot, OmegaConf.create({"max_length": limit, "too_long": "truncate"}))
    assert len(cut) == 2 and not any(f.drops for f in found)
    assert [len(r["prompt_ids"]) + max(len(r["chosen_ids"]), len(r["rejected_ids"])) for r in cut] == [limit, limit]
    assert cut[0]["prompt_ids"] == full[0]["prompt_ids"]
