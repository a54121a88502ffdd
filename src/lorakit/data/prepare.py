"""Prepare stage: data files in any common format -> checked, tokenized, loss-masked train/validation sets, a
held-out test set, and a report that accounts for every input record.

Usage:
    python -m train +experiment=quickstart stages=[prepare]                       # lint the data, no training
    python -m train stages=[prepare] data.train_file=my.jsonl data.strict=true    # any finding -> exit 2

Steps: read every file (lorakit.data.formats) -> check every example (lorakit.data.checks) -> drop duplicates -> split
off test and validation -> drop training examples that leak test prompts -> render with the chat template
(lorakit.data.template) and tokenize (lorakit.data.encoding) -> apply the too-long policy -> write run_dir/data/ (train/ and
validation/ datasets, train.jsonl, validation.jsonl and test.jsonl in OpenAI chat format) and
run_dir/data_report.{json,md} (lorakit.data.data_report). Every record read ends in exactly one of train, validation,
test or dropped-with-a-reason.
"""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from lorakit.data import data_report, formats, task_match
from lorakit.data.checks import Finding, SpecialTokens, check_messages, conversation_key, differing_system_prompts, prompt_key
from lorakit.data.encoding import IGNORE, encode
from lorakit.data.template import TemplateError, end_of_turn_ids, prompt_and_reference, rejection
from lorakit.runs import RunFolder, write_jsonl
from lorakit.training.plan import Decision, validation_fraction

__all__ = ["IGNORE", "DataError", "TemplateError", "end_of_turn_ids", "read_examples", "run", "select"]

log = logging.getLogger(__name__)

MAX_SHOWN = 100  # findings listed in an error message; every one is in data_report.json
SPLITS = ("train", "validation", "test")
REJECTIONS = ("role_order", "template_error")  # the categories of a conversation the chat template cannot render


class DataError(ValueError):
    """Input data cannot be used; the message lists `file:line: category: problem` for every finding."""


@dataclass
class Example:
    """One conversation from an input file; `line` is 1-based (where the record starts)."""

    file: str
    line: int
    messages: list[dict]
    tools: list | None = None
    record: int = -1  # position in the file (0-based), for the accounting


@dataclass
class FileRead:
    """What reading one file gave: its examples, every finding, and how many records it held."""

    path: str
    records: int = 0
    examples: list[Example] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)


def read_file(path: str | Path, fmt: str = "auto", csv_columns: dict | None = None,
              special: SpecialTokens | None = None) -> FileRead:
    """Read and check every record of a data file; examples with a dropping finding are left out (and reported).

    Raises:
        DataError: when no record of the file matches a known format (with data.format=auto).
    """
    path = Path(path)
    special = special or SpecialTokens()
    out = FileRead(str(path))
    pending = []  # records seen before the format is known
    for number, obj in formats.records(path, fmt):
        out.records += 1
        if isinstance(obj, formats.Problem):
            out.findings.append(Finding(str(path), number, obj.category, str(obj), True, out.records - 1))
            continue
        if fmt == "auto":
            detected = formats.detect(obj, path)
            if isinstance(detected, formats.Problem):
                pending.append((number, obj, out.records - 1))
                if len(pending) < 3:  # a few unreadable records first is bad rows, not the wrong format
                    continue
                raise DataError(f"{path}:{pending[0][0]}: {detected}")
            fmt = detected
            log.info("%s: %s format", path, fmt)
            for n, o, r in pending:
                _add(out, n, r, o, fmt, csv_columns, special)
            pending = []
        _add(out, number, out.records - 1, obj, fmt, csv_columns, special)
    if pending:
        raise DataError(f"{path}:{pending[0][0]}: {formats.detect(pending[0][1], path)}")
    return out


def _add(out: FileRead, number: int, record: int, obj, fmt: str, csv_columns: dict | None,
         special: SpecialTokens) -> None:
    messages = formats.to_messages(obj, fmt, csv_columns)
    if isinstance(messages, formats.Problem):
        out.findings.append(Finding(out.path, number, messages.category, str(messages), True, record))
        return
    keys = formats.unknown_keys(obj, fmt)
    found = [Finding(out.path, number, "unknown_key", f"unknown key(s) {', '.join(keys)} for format {fmt}, ignored; "
                     f"fix the spelling or remove them (known: {', '.join(sorted(formats.RECORD_KEYS[fmt]))})", False,
                     record)] if keys else []
    found += [Finding(out.path, number, c, m, d, record) for c, m, d in check_messages(messages, special)]
    out.findings += found
    if not any(f.drops for f in found):
        out.examples.append(Example(out.path, number, messages, formats.tools(obj, fmt), record))


def listing(findings: list[Finding], limit: int = MAX_SHOWN) -> str:
    """Findings one per line, at most `limit`, with a count of the rest."""
    lines = [str(f) for f in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"... and {len(findings) - limit} more (all in data_report.json)")
    return "\n".join(lines)


def read_examples(path: str | Path, fmt: str = "auto", csv_columns: dict | None = None,
                  special: SpecialTokens | None = None) -> list[Example]:
    """Read a data file, failing on any record that would be dropped.

    Raises:
        DataError: listing every dropped record as `file:line: category: problem`.
    """
    result = read_file(path, fmt, csv_columns, special)
    errors = [f for f in result.findings if f.drops]
    if errors:
        raise DataError(f"{len({f.record for f in errors})} unusable record(s) in {path}:\n{listing(errors)}")
    if not result.examples:
        raise DataError(f"{path}: no examples; the file is empty")
    return result.examples


def split_indices(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Deterministically split range(n) into (rest, held_out) with round(n * fraction) held out."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = round(n * fraction)
    if fraction > 0 and k == 0 and n >= 2:
        k = 1
    return sorted(order[k:]), sorted(order[:k])


def _deduplicate(examples: list[Example], drop: bool) -> tuple[list[Example], list[Finding]]:
    first: dict[str, Example] = {}
    kept, found = [], []
    for ex in examples:
        key = conversation_key(ex.messages, ex.tools)
        if key in first:
            seen = first[key]
            found.append(Finding(ex.file, ex.line, "duplicate", f"the same conversation as {seen.file}:{seen.line}; "
                                 + ("dropped (data.duplicates=keep trains on every copy)" if drop else
                                    "kept because data.duplicates=keep; remove copies you did not mean"), drop, ex.record))
            if drop:
                continue
        else:
            first[key] = ex
        kept.append(ex)
    return kept, found


def _without_leakage(pool: list[Example], test: list[Example]) -> tuple[list[Example], list[Finding]]:
    prompts = {prompt_key(ex.messages): ex for ex in test}
    kept, found = [], []
    for ex in pool:
        twin = prompts.get(prompt_key(ex.messages))
        if twin is None:
            kept.append(ex)
        else:
            found.append(Finding(ex.file, ex.line, "leakage", f"the same prompt as test example {twin.file}:{twin.line}"
                                 "; dropped from training so the test measures unseen prompts (remove it from one of "
                                 "the files)", True, ex.record))
    return kept, found


@dataclass
class Selection:
    """The examples of each split, every finding so far, and the records read per file."""

    splits: dict[str, list[Example]]
    findings: list[Finding]
    records: dict[str, int]
    decisions: list[Decision] = field(default_factory=list)


def select(data, seed: int, tokenizer=None, *, ranks_by_validation: bool = False) -> Selection:
    """Read and check the configured files, drop duplicates and leaking examples, and split train/validation/test.

    The test set is data.test_file, or data.test_fraction of train_file (seeded); validation is
    data.validation_file, or data.val_fraction of the rest (seed + 1; null: decided from the size, always a split
    when the run is ranked by its validation loss).
    """
    special = SpecialTokens(tokenizer)
    read, pool, findings = _read_unique(data.train_file, data, special)
    reads, decisions = [read], []
    if data.test_file:
        read, test, found = _read_unique(data.test_file, data, special)
        reads.append(read)
        findings += found
    else:
        keep, held = split_indices(len(pool), data.test_fraction, seed)
        pool, test = [pool[i] for i in keep], [pool[i] for i in held]
    pool, found = _without_leakage(pool, test)
    findings += found + differing_system_prompts(pool + test)
    if data.get("validation_file"):
        read, validation, found = _read_unique(data.validation_file, data, special)
        reads.append(read)
        findings += found
        train = pool
    else:
        fraction, decision = validation_fraction(data, len(pool), needed=ranks_by_validation)
        decisions += [decision] if decision else []
        keep, held = split_indices(len(pool), fraction, seed + 1)
        train, validation = [pool[i] for i in keep], [pool[i] for i in held]
    for r in reads:
        log.info("read %d records from %s: %d examples", r.records, r.path, len(r.examples))
    return Selection({"train": train, "validation": validation, "test": test}, findings,
                     {r.path: r.records for r in reads}, decisions)


def _read_unique(path, data, special: SpecialTokens) -> tuple[FileRead, list[Example], list[Finding]]:
    """read_file, then exact duplicates dropped (or flagged) per data.duplicates: (the read, examples, findings)."""
    read = read_file(path, data.format, data.get("csv_columns"), special)
    examples, found = _deduplicate(read.examples, data.duplicates == "drop")
    return read, examples, read.findings + found


def held_out_examples(data, seed: int, tokenizer=None) -> list[Example]:
    """The test examples that the prepare stage would hold out (for evaluate-only runs; train_file is read only
    when the test set is split off it)."""
    if data.test_file:
        _, test, findings = _read_unique(data.test_file, data, SpecialTokens(tokenizer))
        for finding in findings:
            log.warning("%s", finding)
        return test
    return select(data, seed, tokenizer).splits["test"]


def num_proc(data, n: int) -> int | None:
    """Tokenizer processes: data.num_proc, or (null) one per core up to 8 for 20,000+ examples (BENCHMARKS.md)."""
    if data.get("num_proc"):
        return int(data.num_proc) if data.num_proc > 1 else None  # datasets forks a worker even for num_proc=1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cores, 8) if n >= 20_000 and cores > 1 else None


def encode_split(examples: list[Example], tokenizer, eot_ids: set[int], data) -> tuple[list[dict], list[Finding]]:
    """Tokenize one split; apply the too-long policy; return (kept rows, findings).

    A row is one training sequence: one per example, or one per trained turn where the chat template needs it
    (lorakit.data.template); each row keeps its example and the rendering used (its mode).

    Raises:
        TemplateError: when trained turns lack an end-of-turn token (the template or tokenizer is misconfigured).
    """
    if not examples:
        return [], []
    table = encode(tokenizer, [(ex.messages, ex.tools) for ex in examples], eot_ids, num_proc(data, len(examples)))
    rows, found, missing_eot = [], [], 0
    limit, policy = data.max_length, data.too_long
    columns = table.to_dict()  # one conversion from Arrow, not one per row
    for i, ex in enumerate(examples):
        if columns["error"][i]:
            category, message = json.loads(columns["error"][i])
            found.append(Finding(ex.file, ex.line, category, message, True, ex.record))
            continue
        sequences = list(zip(columns["input_ids"][i], columns["labels"][i], strict=True))
        n = max(len(ids) for ids, _ in sequences)
        if n > limit:
            trainable = [(ids[:limit], labels[:limit]) for ids, labels in sequences
                         if any(x != IGNORE for x in labels[:limit])]
            if policy == "truncate" and trainable:
                left_out = len(sequences) - len(trainable)  # turn by turn: a later turn's prompt can exceed the limit
                found.append(Finding(ex.file, ex.line, "too_long", f"{n} tokens > data.max_length={limit}; truncated "
                                     f"to its first {limit} tokens (data.too_long=truncate); the cut reply has no end "
                                     "of turn" + (f"; {left_out} of its {len(sequences)} turns start after the limit "
                                                  "and are not trained" if left_out else ""), False, ex.record))
                sequences = trainable
            else:
                found.append(Finding(ex.file, ex.line, "too_long", f"{n} tokens > data.max_length={limit}" + (
                    "; nothing to train is left in the first max_length tokens" if policy == "truncate" else "") +
                    f" (data.too_long={policy}); raise data.max_length, shorten the example, or set "
                    "data.too_long=truncate", True, ex.record))
                continue
        else:
            missing_eot += columns["missing_eot"][i]
        rows += [{"input_ids": ids, "labels": labels, "length": len(ids), "line": ex.line, "example": ex,
                  "mode": columns["mode"][i]} for ids, labels in sequences]
    if missing_eot:
        raise TemplateError(
            f"{missing_eot} trained assistant turn(s) contain none of the end-of-turn tokens {sorted(eot_ids)} "
            f"({tokenizer.convert_ids_to_tokens(sorted(eot_ids))}): the model would never learn to stop. Set the "
            "tokenizer's eos_token (or generation_config.json's eos_token_id) to the token the chat template ends "
            "assistant turns with")
    return rows, found


def test_rows(test: list[Example], tokenizer, max_length: int) -> tuple[list[Example], list[Finding]]:
    """The test examples whose prompt the template renders within max_length, and findings for the others."""
    rendered, found = [], []
    for ex in test:
        try:
            rendered.append((ex, prompt_and_reference(tokenizer, ex.messages, ex.tools)[0]))
        except Exception as err:  # noqa: BLE001 - the template's own exception rejects the conversation
            found.append(Finding(ex.file, ex.line, *rejection(err), True, ex.record))
    prompts = tokenizer([p for _, p in rendered], add_special_tokens=False)["input_ids"] if rendered else []
    rows = []
    for (ex, _), ids in zip(rendered, prompts, strict=True):  # one batched tokenizer call, not one per example
        n_prompt = len(ids)
        if n_prompt > max_length:
            found.append(Finding(ex.file, ex.line, "too_long", f"test prompt of {n_prompt} tokens > data.max_length="
                                 f"{max_length}; not evaluated; raise data.max_length or shorten the prompt", True, ex.record))
        else:
            rows.append(ex)
    return rows, found


def _check_some_rendered(selection: Selection, findings: list[Finding]) -> None:
    """A template that rejects one conversation drops it; one that rejects every conversation is a run error.

    Raises:
        TemplateError: listing the first rejections.
    """
    n = sum(len(examples) for examples in selection.splits.values())
    rejected = [f for f in findings if f.category in REJECTIONS]
    if n and len({(f.file, f.record) for f in rejected}) == n:
        raise TemplateError(f"the model's chat template renders none of the {n} examples; each one is rejected, "
                            f"e.g.:\n{listing(rejected, 5)}")


def _write_jsonl(path: Path, examples: list[Example]) -> None:
    """The examples as read and converted (chat messages), each with the file and line it came from."""
    write_jsonl(path, ({"file": ex.file, "line": ex.line, "record": ex.record, "messages": ex.messages,
                        "tools": ex.tools} for ex in examples))


def run(cfg, tokenizer, eot_ids: set[int], run_dir: Path) -> dict:
    """Read, check, split, tokenize and save the data; write and return the data report.

    Raises:
        DataError: data.strict=true and there are findings, data.too_long=error and an example is too long, or no
            training example is left.
            Also: data.test_file holds another task than data.train_file (lorakit.data.task_match).
        TemplateError: the chat template renders no example at all, or trained turns have no end-of-turn token.
    """
    from datasets import Dataset, disable_progress_bars, enable_progress_bars

    data = cfg.data
    selection = select(data, cfg.seed, tokenizer, ranks_by_validation=cfg.get("optimized_metric") == "validation_loss")
    if data.test_file and data.get("check_task_match", True):
        reasons = task_match.mismatches([ex.messages for ex in selection.splits["train"] + selection.splits["validation"]],
                                        [ex.messages for ex in selection.splits["test"]])
        if reasons:
            raise DataError(f"the test set {data.test_file} does not look like the task of {data.train_file}:\n- "
                            + "\n- ".join(reasons) + "\nEvaluating on it would measure another task. Set "
                            "data.test_file=<your held-out file for this task>, or data.test_file=null to hold out "
                            "data.test_fraction of the training file (or data.check_task_match=false if this is intended)")
    findings = list(selection.findings)
    kept: dict[str, list[dict]] = {}
    for name in ("train", "validation"):
        kept[name], found = encode_split(selection.splits[name], tokenizer, eot_ids, data)
        findings += found
    test, found = test_rows(selection.splits["test"], tokenizer, data.max_length)
    findings += found
    _check_some_rendered(selection, findings)
    order = {path: i for i, path in enumerate(selection.records)}  # report in file and line order
    findings.sort(key=lambda f: (order.get(f.file, len(order)), f.record, f.line))
    # a row is one training sequence; an example trained turn by turn has several
    used = {name: list({id(r["example"]): r["example"] for r in kept[name]}.values()) for name in ("train", "validation")}
    used["test"] = test

    report = data_report.build(cfg, tokenizer, selection.records, used, findings, kept["train"], selection.decisions)
    data_report.write(run_dir, report)
    data_report.log_summary(report)

    too_long = [f for f in findings if f.category == "too_long"]
    if data.too_long == "error" and too_long:
        raise DataError(f"{len(too_long)} example(s) longer than data.max_length={data.max_length} "
                        f"(data.too_long=error):\n{listing(too_long)}")
    if data.strict and findings:
        raise DataError(f"data.strict=true and the data has {len(findings)} finding(s); fix them (or set "
                        f"data.strict=false to train on what is usable):\n{listing(findings)}")
    if not kept["train"]:
        raise DataError(f"{data.train_file}: no training example is left after the checks; see "
                        f"{run_dir / 'data_report.md'}:\n{listing([f for f in findings if f.drops])}")

    out_dir = RunFolder(run_dir).data
    out_dir.mkdir(parents=True, exist_ok=True)
    disable_progress_bars()  # one bar per saved split would only add noise to the log
    for name in ("train", "validation"):
        if kept[name]:
            Dataset.from_list([{k: r[k] for k in ("input_ids", "labels", "length", "line")}
                               for r in kept[name]]).save_to_disk(str(out_dir / name))
    enable_progress_bars()
    for name in SPLITS:
        _write_jsonl(out_dir / f"{name}.jsonl", used[name])
    return report
