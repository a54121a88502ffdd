"""Intervals and paired tests over per-example scores, with examples of one conversation kept together.

- A per-example metric's value is the mean score; its 95% interval is the normal (CLT) one with a cluster-robust
  standard error: examples of one conversation (a cluster) are not counted as independent; clipped to the
  metric's range. A 0/1 metric on independent examples gets the Wilson score interval instead.
- A corpus-level metric (BLEU, chrF, macro-F1) gets a percentile bootstrap interval, resampling whole clusters.
- Two candidates on the same examples are compared by the paired difference (b - a) with its interval and a
  paired test: McNemar's exact test for 0/1 scores, the Wilcoxon signed-rank test for other per-example scores,
  a paired permutation test (approximate randomization) for corpus metrics, and a cluster permutation test (sign
  flips per conversation) whenever a conversation holds more than one example.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

Z95 = 1.959963984540054
N_RESAMPLES = 1000


def _clusters(n: int, clusters: Sequence | None) -> list[np.ndarray]:
    """Example indices grouped by cluster id, in first-seen order (one example per cluster when None)."""
    if clusters is None:
        return [np.array([i]) for i in range(n)]
    groups: dict = {}
    for i, c in enumerate(clusters):
        groups.setdefault(c, []).append(i)
    return [np.array(g) for g in groups.values()]


def mean_ci(scores: Sequence[float], clusters: Sequence | None = None) -> tuple[float, float, float]:
    """(mean, low, high): 95% normal interval with the cluster-robust (CR1) standard error of the mean."""
    x = np.asarray(scores, dtype=float)
    n = len(x)
    if n == 0:
        return 0.0, 0.0, 0.0
    mean = float(x.mean())
    groups = _clusters(n, clusters)
    g = len(groups)
    if g < 2:
        return mean, mean, mean
    resid = np.array([(x[idx] - mean).sum() for idx in groups])
    se = math.sqrt(g / (g - 1) * float((resid**2).sum())) / n
    return mean, mean - Z95 * se, mean + Z95 * se


def wilson_ci(scores: Sequence[float]) -> tuple[float, float, float]:
    """(proportion, low, high): the 95% Wilson score interval of 0/1 scores (independent examples). Unlike the
    normal interval it stays inside [0, 1] and is not zero-width at 0 or 1 (0 of 100 -> [0, 0.037])."""
    n = len(scores)
    if n == 0:
        return 0.0, 0.0, 0.0
    p = float(np.mean(scores))
    z2 = Z95**2
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def at_bound_ci(value: float, n: int) -> tuple[float, float, float]:
    """A [0, 1] metric at 0 (or 1) on all of n examples: a normal or bootstrap interval has zero width there, as if
    n examples proved it; the Wilson interval of n examples all at that bound says how little they show."""
    return wilson_ci([value] * n)


def bootstrap_ci(statistic: Callable[[np.ndarray], float], n: int, clusters: Sequence | None = None, *,
                 resamples: int = N_RESAMPLES, seed: int = 0) -> tuple[float, float, float]:
    """(value, low, high): statistic(all indices) and the 2.5/97.5 percentiles over cluster resamples."""
    groups = _clusters(n, clusters)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, len(groups), len(groups))
        values.append(statistic(np.concatenate([groups[i] for i in pick])))
    low, high = np.percentile(values, [2.5, 97.5])
    return statistic(np.arange(n)), float(low), float(high)


def mcnemar_exact(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(statistic, two-sided p): the discordant pairs' binomial test; the statistic is the count b won."""
    from scipy.stats import binomtest

    b_only = sum(1 for x, y in zip(a, b, strict=True) if y > x)
    a_only = sum(1 for x, y in zip(a, b, strict=True) if x > y)
    if a_only + b_only == 0:
        return 0.0, 1.0
    return float(b_only), float(binomtest(b_only, a_only + b_only, 0.5).pvalue)


def wilcoxon(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(statistic, two-sided p) of the Wilcoxon signed-rank test on b - a (zero differences split)."""
    from scipy.stats import wilcoxon as scipy_wilcoxon

    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if not np.any(d):
        return 0.0, 1.0
    result = scipy_wilcoxon(d, zero_method="zsplit")
    return float(result.statistic), float(result.pvalue)


def permutation_test(statistic: Callable[[np.ndarray], float], n: int, clusters: Sequence | None = None, *,
                     resamples: int = N_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """(observed, two-sided p) for a paired difference statistic(swap) where swap[i] exchanges a and b on example i.

    Whole clusters are swapped together. p counts the observed draw: (1 + #{|d*| >= |d|}) / (1 + resamples).
    """
    groups = _clusters(n, clusters)
    observed = statistic(np.zeros(n, dtype=bool))
    rng = np.random.default_rng(seed)
    extreme = 0
    for _ in range(resamples):
        swap = np.zeros(n, dtype=bool)
        for idx, flip in zip(groups, rng.random(len(groups)) < 0.5, strict=True):
            swap[idx] = flip
        extreme += abs(statistic(swap)) >= abs(observed) - 1e-12
    return observed, (1 + extreme) / (1 + resamples)


def has_shared_clusters(n: int, clusters: Sequence | None) -> bool:
    return clusters is not None and len(set(clusters)) < n
