"""Reading: every input file, in any supported format (lorakit.data.formats), into chat examples with their file
and line, every unreadable record a finding; the user's data errors (DataError)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from lorakit.core.errors import UserError
from lorakit.data import formats, preferences
from lorakit.data.checks import Finding, SpecialTokens, check_messages

log = logging.getLogger(__name__)

MAX_SHOWN = 100  # findings listed in an error message; every one is in data_report.json


class DataError(UserError, ValueError):
    """Input data cannot be used; the message lists `file:line: category: problem` for every finding."""


@dataclass
class Example:
    """One conversation from an input file; `line` is 1-based (where the record starts)."""

    file: str
    line: int
    messages: list[dict]
    tools: list | None = None
    record: int = -1  # position in the file (0-based), for the accounting
    rejected: dict | None = None  # a preference pair's non-preferred reply (messages[-1] is the preferred one)
    item: dict | None = None  # a reinforcement task's whole line, the item namespace of its grader (data.tasks)


@dataclass
class FileRead:
    """What reading one file gave: its examples, every finding, and how many records it held."""

    path: str
    records: int = 0
    examples: list[Example] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    format: str | None = None  # as detected (data.format=auto) or set


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
    out.format = None if fmt == "auto" else fmt
    return out


def _convert(obj, fmt: str, csv_columns: dict | None) -> tuple[list[dict], list | None, dict | None] | formats.Problem:
    """(messages, tools, the non-preferred reply of a pair or None)."""
    if fmt in preferences.PAIR_FORMATS:
        pair = preferences.to_pair(obj, fmt)
        return pair if isinstance(pair, formats.Problem) else (pair[0], pair[2], pair[1])
    messages = formats.to_messages(obj, fmt, csv_columns)
    return messages if isinstance(messages, formats.Problem) else (messages, formats.tools(obj, fmt), None)


def _checks(messages: list[dict], rejected: dict | None, special: SpecialTokens) -> list[tuple[str, str, bool]]:
    """The chat checks of the conversation, and of a pair's other side (its own findings only, named as such)."""
    found = check_messages(messages, special)
    if rejected is not None:
        found += [(c, f"non-preferred reply: {m}", d) for c, m, d in check_messages([*messages[:-1], rejected], special)
                  if (c, m, d) not in found]
    return found


def _add(out: FileRead, number: int, record: int, obj, fmt: str, csv_columns: dict | None,
         special: SpecialTokens) -> None:
    converted = _convert(obj, fmt, csv_columns)
    if isinstance(converted, formats.Problem):
        out.findings.append(Finding(out.path, number, converted.category, str(converted), True, record))
        return
    messages, tools, rejected = converted
    keys = formats.unknown_keys(obj, fmt)
    found = [Finding(out.path, number, "unknown_key", f"unknown key(s) {', '.join(keys)} for format {fmt}, not "
                     "trained on (a grader reads a record's own fields as item.<key>); fix the spelling or remove them "
                     f"(known: {', '.join(sorted(formats.RECORD_KEYS[fmt]))})", False, record)] if keys else []
    found += [Finding(out.path, number, c, m, d, record) for c, m, d in _checks(messages, rejected, special)]
    out.findings += found
    if not any(f.drops for f in found):
        # a record with fields of its own keeps them, for graders ({{ item.<field> }}, lorakit.evaluation.grading)
        extra = isinstance(obj, dict) and any(k not in formats.RECORD_KEYS.get(fmt, obj) for k in obj)
        out.examples.append(Example(out.path, number, messages, tools, record, rejected, obj if extra else None))


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


