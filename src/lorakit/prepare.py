"""Prepare stage: chat data (OpenAI JSONL, ShareGPT, Alpaca, prompt/completion, CSV) -> tokenized, loss-masked
train/validation sets and a held-out test set.

Usage:
    python -m train +experiment=quickstart stages=[prepare]      # check and summarise data, no training

Each example is rendered with the model's own chat template. Loss is computed on assistant tokens only
(each reply and its end-of-turn token, except replies with weight 0); system and user tokens, and template
text between turns, are masked with -100. Writes to run_dir/data/: train/ and validation/ (datasets),
test.jsonl, and data_summary.json.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lorakit import formats

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant", "tool")
IGNORE = -100  # label value that the loss skips
MAX_ERRORS_SHOWN = 30


class DataError(ValueError):
    """Input data is malformed; the message lists `file:line: problem` for every bad line."""


class TemplateError(ValueError):
    """The model's chat template cannot be used to locate assistant tokens."""


@dataclass
class Example:
    """One conversation from an input file; `line` is 1-based."""

    file: str
    line: int
    messages: list[dict[str, str]]


def _check_messages(messages: list[dict]) -> str | None:
    """Return what is wrong with one converted conversation, or None when it can be trained on."""
    for i, msg in enumerate(messages, 1):
        role = msg["role"]
        if role not in ROLES:
            return f"message {i} has role {role!r}; expected one of {', '.join(ROLES)}"
        if not isinstance(msg["content"], str):
            return f"message {i} ({role}) has no string \"content\""
        if role == "assistant" and not msg["content"].strip():
            return f"message {i} (assistant) has empty content; there is nothing to learn from it"
        if "weight" in msg and (role != "assistant" or msg["weight"] not in (0, 1) or isinstance(msg["weight"], bool)):
            return (f"message {i} ({role}) has weight {msg['weight']!r}; weight is 0 or 1, on assistant messages only "
                    "(0 = keep the turn as context, do not train on it)")
    if not any(m["role"] == "assistant" for m in messages):
        return "no assistant message; every example needs at least one reply to train on"
    if not any(m["role"] == "assistant" and m.get("weight", 1) for m in messages):
        return "every assistant message has weight 0; nothing would be trained; set weight 1 on at least one"
    return None


def read_examples(path: str | Path, fmt: str = "auto", csv_columns: dict | None = None) -> list[Example]:
    """Read a data file in any supported format (lorakit.formats), checking every record.

    Raises:
        DataError: listing every malformed record as `file:line: problem` (blank lines are skipped).
    """
    path = Path(path)
    examples, errors = [], []
    for number, obj in formats.records(path, fmt):
        if isinstance(obj, formats.Problem):
            errors.append(f"{path}:{number}: {obj}")
            continue
        if fmt == "auto":
            fmt = formats.detect(obj, path)
            if isinstance(fmt, formats.Problem):
                raise DataError(f"{path}:{number}: {fmt}")
            log.info("%s: %s format", path, fmt)
        messages = formats.to_messages(obj, fmt, csv_columns)
        problem = messages if isinstance(messages, formats.Problem) else _check_messages(messages)
        if problem:
            errors.append(f"{path}:{number}: {problem}")
            continue
        examples.append(Example(str(path), number, messages))
    if errors:
        shown = "\n".join(errors[:MAX_ERRORS_SHOWN])
        more = f"\n... and {len(errors) - MAX_ERRORS_SHOWN} more" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise DataError(f"{len(errors)} malformed record(s) in {path}:\n{shown}{more}")
    if not examples:
        raise DataError(f"{path}: no examples; the file is empty")
    return examples


def end_of_turn_ids(tokenizer, generation_config=None) -> set[int]:
    """Token ids that end an assistant turn: the tokenizer's EOS plus the model's generation EOS ids."""
    ids = {tokenizer.eos_token_id}
    eos = getattr(generation_config, "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos])
    return {i for i in ids if i is not None}


def _render(tokenizer, messages: list[dict], **kwargs) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, **kwargs)


def assistant_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """Render a conversation and return it with the character span of every assistant turn.

    A turn's span runs from the end of the generation prompt before it to the end of the rendering that
    includes it, so it holds the reply and the template's end-of-turn text.

    Raises:
        TemplateError: when rendering a prefix of the conversation does not give a prefix of the whole.
    """
    full = _render(tokenizer, messages)
    spans = []
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant" or msg.get("weight", 1) == 0:  # weight 0: context only, not trained
            continue
        prompt = _render(tokenizer, messages[:i], add_generation_prompt=True) if i else ""
        upto = _render(tokenizer, messages[: i + 1])
        if not full.startswith(prompt) or not full.startswith(upto):
            raise TemplateError(
                "the chat template renders the start of a conversation differently from the whole conversation "
                "(e.g. it rewrites earlier turns), so assistant tokens cannot be located; use a model whose template "
                "is prefix-stable, or train on single-turn examples"
            )
        spans.append((len(prompt), len(upto)))
    return full, spans


def tokenize_with_labels(tokenizer, conversations: list[list[dict]], eot_ids: set[int]) -> list[dict[str, list[int]]]:
    """Tokenize conversations (batched) and label assistant tokens; everything else gets -100.

    Within each assistant span, tokens after the last end-of-turn token (e.g. a newline the template adds
    between turns) stay masked: the model should learn to stop, not to write template filler.
    """
    if not conversations:
        return []
    rendered = [assistant_spans(tokenizer, msgs) for msgs in conversations]
    enc = tokenizer([text for text, _ in rendered], add_special_tokens=False, return_offsets_mapping=True)
    out = []
    for (_, spans), ids, offsets in zip(rendered, enc["input_ids"], enc["offset_mapping"], strict=True):
        labels = [IGNORE] * len(ids)
        for start, end in spans:
            inside = [t for t, (s, _) in enumerate(offsets) if start <= s < end]
            eots = [t for t in inside if ids[t] in eot_ids]
            if eots:
                inside = [t for t in inside if t <= eots[-1]]
            for t in inside:
                labels[t] = ids[t]
        out.append({"input_ids": list(ids), "labels": labels})
    return out


def prompt_and_reference(tokenizer, messages: list[dict]) -> tuple[str, str]:
    """Split a test conversation at its last assistant turn: (rendered prompt, reference reply)."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return _render(tokenizer, messages[:last], add_generation_prompt=True), messages[last]["content"]


def split_indices(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministically split range(n) into (rest, held_out) with round(n * fraction) held out."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = round(n * fraction)
    if fraction > 0 and k == 0 and n >= 2:
        k = 1
    return sorted(order[k:]), sorted(order[:k])


def percentiles(lengths: list[int]) -> dict[str, int]:
    if not lengths:
        return {}
    arr = np.asarray(lengths)
    return {"p50": int(np.percentile(arr, 50)), "p90": int(np.percentile(arr, 90)),
            "p99": int(np.percentile(arr, 99)), "max": int(arr.max())}


def read_data_file(data, path) -> list[Example]:
    """read_examples with the data config's format and CSV columns."""
    examples = read_examples(path, data.format, data.get("csv_columns"))
    log.info("read %d examples from %s", len(examples), path)
    return examples


def load_examples(data, seed: int) -> tuple[list[Example], list[Example]]:
    """Read the configured files; return (training pool, test examples), splitting test off when no test_file."""
    pool = read_data_file(data, data.train_file)
    if data.test_file:
        return pool, read_data_file(data, data.test_file)
    keep, held = split_indices(len(pool), data.test_fraction, seed)
    log.info("held out %d examples as the test set (data.test_fraction=%s)", len(held), data.test_fraction)
    return [pool[i] for i in keep], [pool[i] for i in held]


def held_out_examples(data, seed: int) -> list[Example]:
    """The test examples alone: data.test_file, or the split load_examples holds out (train_file is read only then)."""
    return read_data_file(data, data.test_file) if data.test_file else load_examples(data, seed)[1]


def test_rows(test: list[Example], tokenizer, max_length: int) -> tuple[list[dict], list[dict]]:
    """Keep test examples whose prompt fits max_length; return (rows for test.jsonl, dropped records)."""
    rows, dropped = [], []
    for ex in test:
        prompt, _ = prompt_and_reference(tokenizer, ex.messages)
        n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if n_prompt > max_length:
            dropped.append({"file": ex.file, "line": ex.line, "split": "test",
                            "reason": f"too_long: prompt of {n_prompt} tokens > data.max_length={max_length}"})
        else:
            rows.append({"file": ex.file, "line": ex.line, "messages": ex.messages})
    return rows, dropped


def run(cfg, tokenizer, eot_ids: set[int], run_dir: Path) -> dict:
    """Read, check, split, tokenize and save the data; return the summary (also written to data_summary.json)."""
    from datasets import Dataset

    data = cfg.data
    pool, test = load_examples(data, cfg.seed)
    keep, held = split_indices(len(pool), data.val_fraction, cfg.seed + 1)
    splits = {"train": [pool[i] for i in keep], "validation": [pool[i] for i in held]}

    dropped: list[dict] = []
    out_dir = run_dir / "data"
    out_dir.mkdir(parents=True, exist_ok=True)
    stats: dict[str, Any] = {}
    for name, examples in splits.items():
        rows = tokenize_with_labels(tokenizer, [e.messages for e in examples], eot_ids)
        kept = []
        for ex, row in zip(examples, rows, strict=True):
            if len(row["input_ids"]) > data.max_length:
                dropped.append({"file": ex.file, "line": ex.line, "split": name,
                                "reason": f"too_long: {len(row['input_ids'])} tokens > data.max_length={data.max_length}"})
                continue
            kept.append({**row, "length": len(row["input_ids"]), "line": ex.line})
        if kept:
            Dataset.from_list(kept).save_to_disk(str(out_dir / name))
        stats[name] = kept

    rows_test, dropped_test = test_rows(test, tokenizer, data.max_length)
    dropped += dropped_test
    (out_dir / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows_test))

    train = stats["train"]
    if not train:
        raise DataError(f"{data.train_file}: no training examples left after the split and length checks")
    lengths = [r["length"] for r in train]
    summary = {
        "train_file": str(data.train_file),
        "test_file": str(data.test_file) if data.test_file else None,
        "examples": {"train": len(train), "validation": len(stats["validation"]), "test": len(rows_test),
                     "dropped": len(dropped)},
        "train_tokens": {"per_epoch": int(sum(lengths)), "assistant_trained": int(sum(
            sum(1 for x in r["labels"] if x != IGNORE) for r in train)), "length": percentiles(lengths)},
        "dropped": dropped,
    }
    (out_dir / "data_summary.json").write_text(json.dumps(summary, indent=2))
    ex, tok = summary["examples"], summary["train_tokens"]
    log.info("train %d, validation %d, test %d examples; %d dropped%s", ex["train"], ex["validation"], ex["test"],
             ex["dropped"], " (see data_summary.json)" if dropped else "")
    for d in dropped[:5]:
        log.warning("dropped %s:%d (%s): %s", d["file"], d["line"], d["split"], d["reason"])
    log.info("train has %s tokens per epoch, %s of them assistant tokens trained; length p50 %s, p99 %s, max %s",
             f"{tok['per_epoch']:,}", f"{tok['assistant_trained']:,}", tok["length"]["p50"], tok["length"]["p99"],
             tok["length"]["max"])
    return summary
