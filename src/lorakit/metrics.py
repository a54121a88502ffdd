"""Text metrics for generated answers against references, each in [0, 1].

Computed with sacrebleu and rouge-score directly: they need no downloads (evaluate.load fetches from the hub,
nltk's punkt data is absent offline).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to their reference after stripping surrounding whitespace."""
    return _mean([p.strip() == r.strip() for p, r in zip(predictions, references, strict=True)])


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return False
    return True


def json_valid(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions that parse as JSON (the references are not consulted)."""
    return _mean([_is_json(p.strip()) for p in predictions])


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu, 13a tokenization) scaled to [0, 1]."""
    import sacrebleu

    if not predictions:
        return 0.0
    return sacrebleu.corpus_bleu(list(predictions), [list(references)]).score / 100.0


class _WordTokenizer:
    """Lower-cased letter/digit runs in any script (rouge-score's default drops every non-ASCII character)."""

    def tokenize(self, text: str) -> list[str]:
        return re.findall(r"[^\W_]+", text.lower())


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F1 over examples (rouge-score), on words of any script."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_WordTokenizer())
    return _mean([scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(predictions, references, strict=True)])


def _mean(values: Sequence[float | bool]) -> float:
    return float(sum(values)) / len(values) if values else 0.0


METRICS: dict[str, Callable[[Sequence[str], Sequence[str]], float]] = {
    "exact_match": exact_match,
    "json_valid": json_valid,
    "bleu": bleu,
    "rouge_l": rouge_l,
}


def compute(names: Sequence[str], predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Compute the named metrics; returns {name: value}."""
    return {name: METRICS[name](predictions, references) for name in names}
