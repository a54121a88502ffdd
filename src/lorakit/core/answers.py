"""What an answer looks like: a JSON object, a label from a small set, or free text. Shared by the metrics
(which ones apply), the judge (its default rubric) and the data checks (does the test set hold the training task)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

INVALID = object()  # parse_json's result for text that is not JSON


def parse_json(text: str):
    try:
        return json.loads(text.strip())
    except (json.JSONDecodeError, RecursionError):
        return INVALID



def label_of(text: str) -> str:
    return text.strip()


MAX_LABELS = 20  # references with at most this many distinct short values form a label set


def task_kind(references: Sequence[str]) -> str:
    """"json" when every reference is a JSON object, "label" when they form a small label set, else "text"."""
    if references and all(isinstance(parse_json(r), dict) for r in references):
        return "json"
    distinct = Counter(label_of(r) for r in references)
    short = all(len(label.split()) <= 4 for label in distinct)
    if 1 < len(distinct) <= MAX_LABELS and short and len(references) >= 2 * len(distinct):
        return "label"
    return "text"
