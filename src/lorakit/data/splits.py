"""Splits: exact duplicates dropped, test and validation held out deterministically, training examples that leak a
test prompt dropped; the validation fraction decided from the data's size where data.val_fraction is null (10%
held out from MIN_VALIDATION_POOL examples on, none below)."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field

from lorakit.core.fields import Decision
from lorakit.data.checks import Finding, SpecialTokens, conversation_key, differing_system_prompts, prompt_key
from lorakit.data.reading import Example, FileRead, read_file
from lorakit.data.tasks import read_tasks

log = logging.getLogger(__name__)


SPLITS = ("train", "validation", "test")
VALIDATION_FRACTION = 0.1  # data.val_fraction=null: held out for the validation loss ...
MIN_VALIDATION_POOL = 100  # ... from this many training examples on (10 validation examples); below, all train


def validation_fraction(data, pool: int, *, needed: bool = False) -> tuple[float, Decision | None]:
    """data.val_fraction, or (null) the decided fraction with its reason; `needed`: the run is ranked by its
    validation loss (optimized_metric=validation_loss), so it gets a split whatever its size."""
    if data.val_fraction is not None:
        return float(data.val_fraction), None
    if needed:
        return VALIDATION_FRACTION, Decision("data.val_fraction", VALIDATION_FRACTION, f"{pool} training examples; "
                                             "optimized_metric=validation_loss ranks runs by it, so "
                                             f"{VALIDATION_FRACTION:.0%} is held out whatever the size")
    if pool >= MIN_VALIDATION_POOL:
        return VALIDATION_FRACTION, Decision("data.val_fraction", VALIDATION_FRACTION, f"{pool} training examples: "
                                             f"{VALIDATION_FRACTION:.0%} held out for the validation loss")
    return 0.0, Decision("data.val_fraction", 0, f"{pool} training examples, under {MIN_VALIDATION_POOL}: all of them "
                         "train (a validation loss on a handful of examples tells little and costs a share of the "
                         "data); set data.val_fraction=0.1 or data.validation_file to validate anyway")


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
        key = conversation_key(ex.messages + ([ex.rejected] if ex.rejected else []), ex.tools)  # not a row's own fields
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
    formats: dict[str, str | None] = field(default_factory=dict)  # per file: as read (lorakit.data.formats)


def select(data, seed: int, tokenizer=None, *, ranks_by_validation: bool = False,
           task_fields: set[str] | None = None) -> Selection:
    """Read and check the configured files, drop duplicates and leaking examples, and split train/validation/test.

    The test set is data.test_file, or data.test_fraction of train_file (seeded); validation is
    data.validation_file, or data.val_fraction of the rest (seed + 1; null: decided from the size, always a split
    when the run is ranked by its validation loss). task_fields: the files are reinforcement tasks
    (lorakit.data.tasks) and each must have these fields (the grader's item fields).
    """
    special = SpecialTokens(tokenizer)
    read, pool, findings = _read_unique(data.train_file, data, special, task_fields)
    reads, decisions = [read], []
    if data.test_file:
        read, test, found = _read_unique(data.test_file, data, special, task_fields)
        reads.append(read)
        findings += found
    else:
        keep, held = split_indices(len(pool), data.test_fraction, seed)
        pool, test = [pool[i] for i in keep], [pool[i] for i in held]
    pool, found = _without_leakage(pool, test)
    findings += found + differing_system_prompts(pool + test)
    if data.get("validation_file"):
        read, validation, found = _read_unique(data.validation_file, data, special, task_fields)
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
                     {r.path: r.records for r in reads}, decisions, {r.path: r.format for r in reads})


def _read_unique(path, data, special: SpecialTokens,
                 task_fields: set[str] | None = None) -> tuple[FileRead, list[Example], list[Finding]]:
    """read_file (read_tasks with task_fields), then exact duplicates dropped (or flagged) per data.duplicates: (the
    read, examples, findings)."""
    read = (read_file(path, data.format, data.get("csv_columns"), special) if task_fields is None
            else read_tasks(path, task_fields, special))
    examples, found = _deduplicate(read.examples, data.duplicates == "drop")
    return read, examples, read.findings + found


def held_out_examples(data, seed: int, tokenizer=None, task_fields: set[str] | None = None) -> list[Example]:
    """The test examples that the prepare stage would hold out (for evaluate-only runs; train_file is read only
    when the test set is split off it)."""
    if data.test_file:
        _, test, findings = _read_unique(data.test_file, data, SpecialTokens(tokenizer), task_fields)
        for finding in findings:
            log.warning("%s", finding)
        return test
    return select(data, seed, tokenizer, task_fields=task_fields).splits["test"]
