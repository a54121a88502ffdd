"""Metrics for generated answers against references: per-example scores, and the corpus-level ones.

Every metric returns one score per example where it is defined per example (exact match, JSON equality, ROUGE,
answer length, ...): averages, intervals and paired tests are computed from those scores (lorakit.evaluation.stats).
Corpus-level metrics (BLEU, chrF, macro-F1) are a function of the whole set; their intervals come from resampling.
sacrebleu and rouge-score are used directly: they need no downloads (evaluate.load fetches from the hub).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lorakit.core.answers import INVALID, label_of, parse_json, task_kind
from lorakit.evaluation.graders.text import SIMILARITY, words


@dataclass(frozen=True)
class Metric:
    """per_example(predictions, references) -> scores, or corpus(predictions, references) -> one value."""

    name: str
    per_example: Callable[[Sequence[str], Sequence[str]], list[float]] | None = None
    corpus: Callable[[Sequence[str], Sequence[str]], float] | None = None
    binary: bool = False  # scores are 0/1 (McNemar's test applies)
    bounded: bool = True  # scores lie in [0, 1] (intervals are clipped to it)

    def value(self, predictions: Sequence[str], references: Sequence[str]) -> float:
        if self.corpus:
            return self.corpus(predictions, references) if predictions else 0.0
        scores = self.per_example(predictions, references)
        return sum(scores) / len(scores) if scores else 0.0


def exact_match(predictions, references) -> list[float]:
    """1 when the prediction equals its reference after stripping surrounding whitespace."""
    return [float(p.strip() == r.strip()) for p, r in zip(predictions, references, strict=True)]


def json_valid(predictions, references) -> list[float]:
    """1 when the prediction parses as JSON (the references are not consulted)."""
    return [float(parse_json(p) is not INVALID) for p in predictions]


def json_equal(predictions, references) -> list[float]:
    """1 when prediction and reference parse to the same JSON value (key order and spacing ignored)."""
    return [float((a := parse_json(p)) is not INVALID and a == parse_json(r)) for p, r in zip(predictions, references,
                                                                                         strict=True)]


def field_accuracy(predictions, references) -> list[float]:
    """Share of the reference object's top-level fields that the prediction has with an equal value."""
    scores = []
    for p, r in zip(predictions, references, strict=True):
        ref, pred = parse_json(r), parse_json(p)
        if not isinstance(ref, dict) or not ref:
            scores.append(float(pred == ref))
            continue
        pred = pred if isinstance(pred, dict) else {}
        scores.append(sum(k in pred and pred[k] == v for k, v in ref.items()) / len(ref))
    return scores


def accuracy(predictions, references) -> list[float]:
    """Label tasks: 1 when the predicted label (the stripped answer) is the reference label."""
    return [float(label_of(p) == label_of(r)) for p, r in zip(predictions, references, strict=True)]


def confusion(predictions, references) -> tuple[list[str], list[list[int]]]:
    """(labels, counts[reference][prediction]); an answer outside the reference labels counts as "(other)"."""
    labels = sorted({label_of(r) for r in references})
    index = {label: i for i, label in enumerate(labels)}
    other = len(labels)
    counts = [[0] * (other + 1) for _ in labels]
    for p, r in zip(predictions, references, strict=True):
        counts[index[label_of(r)]][index.get(label_of(p), other)] += 1
    return labels + ["(other)"], counts


def macro_f1(predictions, references) -> float:
    """F1 averaged over the reference labels (each label weighs the same, however rare)."""
    labels, counts = confusion(predictions, references)
    f1s = []
    for i, _ in enumerate(labels[:-1]):
        tp = counts[i][i]
        predicted = sum(row[i] for row in counts)
        actual = sum(counts[i])
        f1s.append(2 * tp / (predicted + actual) if predicted + actual else 0.0)
    return sum(f1s) / len(f1s) if f1s else 0.0


def bleu(predictions, references) -> float:
    """Corpus BLEU (sacrebleu, 13a tokenization) scaled to [0, 1]."""
    import sacrebleu

    return sacrebleu.corpus_bleu(list(predictions), [list(references)]).score / 100.0


def chrf(predictions, references) -> float:
    """Corpus chrF (sacrebleu, character 6-grams, beta 2) scaled to [0, 1]."""
    import sacrebleu

    return sacrebleu.corpus_chrf(list(predictions), [list(references)]).score / 100.0


def length(predictions, references) -> list[float]:
    """Answer length in words (descriptive: compare it with the references' own)."""
    return [float(len(words(p))) for p in predictions]


METRICS: dict[str, Metric] = {m.name: m for m in [
    Metric("exact_match", exact_match, binary=True),
    Metric("json_valid", json_valid, binary=True),
    Metric("json_equal", json_equal, binary=True),
    Metric("field_accuracy", field_accuracy),
    Metric("accuracy", accuracy, binary=True),
    Metric("macro_f1", corpus=macro_f1),
    Metric("bleu", corpus=bleu),
    Metric("chrf", corpus=chrf),
    Metric("rouge_1", SIMILARITY["rouge_1"]),  # ROUGE F1 per example, the text_similarity graders' own
    Metric("rouge_2", SIMILARITY["rouge_2"]),
    Metric("rouge_l", SIMILARITY["rouge_l"]),
    Metric("length", length, bounded=False),
]}
def default_metrics(references: Sequence[str]) -> list[str]:
    """The metrics that fit the references' task kind (eval.metrics=null)."""
    kind = task_kind(references)
    chosen = ["exact_match"]
    if kind == "json":
        chosen += ["json_valid", "json_equal", "field_accuracy"]
    if kind == "label":
        chosen += ["accuracy", "macro_f1"]
    if kind != "label":
        chosen += ["bleu", "chrf", "rouge_1", "rouge_2", "rouge_l"]
    return chosen + ["length"]


def check_names(names: Sequence[str]) -> list[str]:
    """Problems with configured metric names (for the config check before any model is loaded)."""
    return [f"eval.metrics: unknown metric {n!r}; choose from {', '.join(METRICS)}" for n in names if n not in METRICS]


def compute(names: Sequence[str], predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """The named metrics' values; returns {name: value}."""
    return {name: METRICS[name].value(predictions, references) for name in names}
