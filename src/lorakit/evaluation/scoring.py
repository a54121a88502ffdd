"""Score candidates' answers: every metric's value with its 95% interval, and paired tests against a reference.

The candidates are a list (no "base" or "tuned" here); the first is the reference unless another is named.
Returns the "candidates" and "tests" parts of compare.json.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from lorakit.evaluation import stats
from lorakit.evaluation.metrics import METRICS, Metric


def _sacrebleu_metric(name: str):
    from sacrebleu.metrics import BLEU, CHRF

    return {"bleu": BLEU, "chrf": CHRF}[name]()


def corpus_statistic(metric: Metric, predictions: Sequence[str], references: Sequence[str]) -> Callable[[np.ndarray], float]:
    """value(indices) of a corpus metric on a subset, fast enough to resample a thousand times.

    BLEU and chrF are sums of per-sentence statistics (sacrebleu's own paired tests resample them the same way).
    """
    if metric.name in {"bleu", "chrf"}:
        scorer = _sacrebleu_metric(metric.name)
        sentence = np.asarray(scorer._extract_corpus_statistics(list(predictions), [list(references)]), dtype=float)
        return lambda idx: scorer._compute_score_from_stats(list(sentence[idx].sum(0))).score / 100.0 if len(idx) else 0.0
    return lambda idx: metric.corpus([predictions[i] for i in idx], [references[i] for i in idx])


def candidate_scores(names: Sequence[str], predictions: Sequence[str], references: Sequence[str],
                     clusters: Sequence | None, seed: int,
                     table: Mapping[str, Metric] = METRICS) -> tuple[dict[str, dict], dict[str, list[float]]]:
    """({metric: {value, ci_low, ci_high}}, {metric: per-example scores}) for one candidate; table: the metrics
    by name (the built-in ones, and graders as metrics)."""
    summary, per_example = {}, {}
    n = len(references)
    for name in names:
        metric = table[name]
        if metric.corpus:
            value, low, high = stats.bootstrap_ci(corpus_statistic(metric, predictions, references), n, clusters,
                                                  seed=seed)
        else:
            per_example[name] = metric.per_example(predictions, references)
            if metric.binary and not stats.has_shared_clusters(n, clusters):
                value, low, high = stats.wilson_ci(per_example[name])
            else:
                value, low, high = stats.mean_ci(per_example[name], clusters)
                low, high = (max(low, 0.0), min(high, 1.0)) if metric.bounded else (low, high)
        if metric.bounded and low == high and value in (0.0, 1.0) and n:
            value, low, high = stats.at_bound_ci(value, len(set(clusters)) if clusters is not None else n)
        summary[name] = {"value": value, "ci_low": low, "ci_high": high}
    return summary, per_example


def paired_test(name: str, a_pred: Sequence[str], b_pred: Sequence[str], references: Sequence[str],
                a_scores: list[float] | None, b_scores: list[float] | None, clusters: Sequence | None,
                seed: int, table: Mapping[str, Metric] = METRICS) -> dict:
    """The difference b - a on one metric, its 95% interval, the test's name, statistic and p-value."""
    metric = table[name]
    n = len(references)
    shared = stats.has_shared_clusters(n, clusters)
    if metric.corpus:
        fa, fb = corpus_statistic(metric, a_pred, references), corpus_statistic(metric, b_pred, references)
        difference, low, high = stats.bootstrap_ci(lambda idx: fb(idx) - fa(idx), n, clusters, seed=seed)
        both = [*a_pred, *b_pred]
        pooled = corpus_statistic(metric, both, [*references, *references])

        def swapped(swap: np.ndarray) -> float:  # example i's answers exchanged between a and b where swap[i]
            a_idx = np.where(swap, np.arange(n) + n, np.arange(n))
            b_idx = np.where(swap, np.arange(n), np.arange(n) + n)
            return pooled(b_idx) - pooled(a_idx)

        statistic, p = stats.permutation_test(swapped, n, clusters, seed=seed)
        test = "paired permutation (approximate randomization)" + (", by conversation" if shared else "")
    else:
        difference, low, high, test, statistic, p = per_example_test(a_scores, b_scores, clusters,
                                                                     binary=metric.binary, seed=seed)
        low, high = (max(low, -1.0), min(high, 1.0)) if metric.bounded else (low, high)
    return {"metric": name, "difference": float(difference), "ci_low": float(low), "ci_high": float(high),
            "test": test, "statistic": float(statistic), "p_value": float(p)}


def per_example_test(a_scores: Sequence[float], b_scores: Sequence[float], clusters: Sequence | None, *,
                     binary: bool, seed: int = 0) -> tuple[float, float, float, str, float, float]:
    """(b - a, interval low, high, test name, statistic, p) for paired per-example scores: a cluster permutation
    test when conversations hold several examples, else McNemar's exact test (0/1 scores) or Wilcoxon's."""
    n = len(a_scores)
    d = np.asarray(b_scores, dtype=float) - np.asarray(a_scores, dtype=float)
    difference, low, high = stats.mean_ci(d, clusters)
    if stats.has_shared_clusters(n, clusters):
        statistic, p = stats.permutation_test(lambda swap: float(np.where(swap, -d, d).mean()), n, clusters, seed=seed)
        test = "paired permutation (sign flips by conversation)"
    elif binary:
        statistic, p = stats.mcnemar_exact(a_scores, b_scores)
        test = "McNemar exact"
    else:
        statistic, p = stats.wilcoxon(a_scores, b_scores)
        test = "Wilcoxon signed-rank"
    return difference, low, high, test, statistic, p


def score(names: Sequence[str], outputs: dict[str, list[str]], references: Sequence[str],
          clusters: Sequence | None = None, reference: str | None = None, seed: int = 0,
          table: Mapping[str, Metric] = METRICS) -> dict:
    """{"candidates": {name: {metric: {value, ci_low, ci_high}}}, "tests": [...], "per_example": {...}}.

    Tests compare every other candidate (b) with the reference candidate (a: the first unless named).
    """
    candidates, per_example = {}, {}
    for cand, predictions in outputs.items():
        candidates[cand], per_example[cand] = candidate_scores(names, predictions, references, clusters, seed, table)
    a = reference or next(iter(outputs))
    tests = []
    for b in outputs:
        if b == a:
            continue
        for name in names:
            test = paired_test(name, outputs[a], outputs[b], references, per_example[a].get(name),
                               per_example[b].get(name), clusters, seed, table)
            tests.append({"metric": name, "a": a, "b": b, **{k: v for k, v in test.items() if k != "metric"}})
    return {"candidates": candidates, "tests": tests, "per_example": per_example}


NO_DIRECTION = {"length"}  # metrics where neither more nor less is better: no non-inferiority verdict


def non_inferiority(tests: list[dict], margin: float | None) -> list[dict] | None:
    """Per candidate and metric: is the candidate (b) not worse than the reference (a) by more than `margin`? The
    lower end of the paired difference's 95% interval is the one-sided 97.5% bound, as non-inferiority trials read
    it: above -margin "non-inferior", the whole interval below -margin "inferior", else "inconclusive". None when
    no margin is set."""
    if margin is None:
        return None
    margin, out = float(margin), []
    for t in tests:
        if t["metric"] in NO_DIRECTION:
            continue
        if t["ci_low"] > -margin:
            verdict = "non-inferior"
        elif t["ci_high"] < -margin:
            verdict = "inferior"
        else:
            verdict = "inconclusive"
        out.append({"metric": t["metric"], "a": t["a"], "b": t["b"], "margin": margin, "difference": t["difference"],
                    "lower_bound": t["ci_low"], "verdict": verdict})
    return out
