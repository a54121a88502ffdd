"""Metrics and statistics on inputs whose values are known by hand."""

import math

import pytest

from lorakit.evaluation import metrics as M
from lorakit.evaluation import scoring, stats


def test_exact_match_ignores_surrounding_whitespace_only():
    assert M.exact_match([' {"a": 1}\n', '{"a": 2}', "x"], ['{"a": 1}', '{"a": 1}', "X"]) == [1.0, 0.0, 0.0]


def test_json_valid_counts_parseable_outputs():
    assert M.json_valid(['{"tool": "x"}', "[1, 2]", "{'single': quotes}", "not json", ""], [""] * 5) == [1, 1, 0, 0, 0]


def test_json_equality_ignores_key_order_and_spacing_and_field_accuracy_counts_fields():
    assert M.json_equal(['{"b": 2,   "a": 1}', '{"a": 1}', "nope"], ['{"a":1,"b":2}'] * 3) == [1.0, 0.0, 0.0]
    assert M.field_accuracy(['{"a": 1, "b": 3}', '{"b": 2, "a": 1, "c": 0}', "[]"], ['{"a": 1, "b": 2}'] * 3) == [
        0.5, 1.0, 0.0]


def test_bleu_by_hand():
    # n-gram precisions 5/6, 3/5, 2/4, 1/3, equal lengths (no brevity penalty): geometric mean
    expected = (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert M.bleu(["the cat sat on the mat"], ["the cat sat on a mat"]) == pytest.approx(expected, abs=1e-6)
    assert M.bleu(["a b c d e"], ["v w x y z"]) == 0.0


def test_rouge_by_hand():
    rouge_1, rouge_2, rouge_l = (M.METRICS[n].per_example for n in ("rouge_1", "rouge_2", "rouge_l"))
    pred, ref = ["the cat sat"], ["the cat was here"]
    assert rouge_1(pred, ref) == [pytest.approx(4 / 7)]  # 2 shared words: P 2/3, R 2/4
    assert rouge_2(pred, ref) == [pytest.approx(0.4)]  # 1 shared bigram: P 1/2, R 1/3
    assert rouge_l(pred, ref) == [pytest.approx(4 / 7)]  # LCS of 2 words
    assert rouge_l(["привет мир"], ["привет мир"]) == [pytest.approx(1.0)]


def test_macro_f1_and_confusion_on_a_small_label_set():
    refs, preds = ["a", "a", "b", "b", "c"], ["a", "b", "b", "b", "maybe"]
    # F1: a = 2*1/(1+2), b = 2*2/(3+2), c = 0 (never predicted)
    assert M.macro_f1(preds, refs) == pytest.approx((2 / 3 + 4 / 5 + 0) / 3)
    labels, counts = M.confusion(preds, refs)
    assert labels == ["a", "b", "c", "(other)"]
    assert counts == [[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 1]]


def test_default_metrics_follow_the_references():
    assert "json_equal" in M.default_metrics(['{"a": 1}', '{"b": [2]}'])
    labels = M.default_metrics(["positive", "negative", "neutral", "positive", "negative", "neutral"])
    assert "macro_f1" in labels and "bleu" not in labels
    text = M.default_metrics(["A long free-text answer about cats.", "Another answer, entirely different."])
    assert "bleu" in text and "json_equal" not in text and "macro_f1" not in text
    assert M.check_names(["exact_match", "bleu4"]) == [
        f"eval.metrics: unknown metric 'bleu4'; choose from {', '.join(M.METRICS)}"]


def test_mean_interval_known_answer_and_clusters_widen_it():
    mean, low, high = stats.mean_ci([1, 1, 0, 0])
    se = math.sqrt(1 / 3) / 2  # sample standard deviation / sqrt(n)
    assert (mean, low, high) == pytest.approx((0.5, 0.5 - stats.Z95 * se, 0.5 + stats.Z95 * se))
    _, c_low, c_high = stats.mean_ci([1, 1, 0, 0], clusters=["x", "x", "y", "y"])
    assert c_high - c_low == pytest.approx(2 * stats.Z95 * 0.5)  # two clusters of sums +1, -1: se = 0.5


def test_mcnemar_exact_counts_discordant_pairs():
    a = [0] * 9 + [1]
    b = [1] * 8 + [0, 0]
    statistic, p = stats.mcnemar_exact(a, b)
    assert statistic == 8 and p == pytest.approx(2 * (1 + 9) / 2**9)  # 8 of 9 discordant pairs: 2 P(X >= 8)


def test_paired_tests_pick_the_right_test_and_see_a_real_gap():
    refs = [f"the answer to question number {i} is {i * 7} units" for i in range(40)]
    good = list(refs)
    bad = [r if i % 4 == 0 else "I do not know the answer to that" for i, r in enumerate(refs)]
    out = scoring.score(["exact_match", "rouge_l", "bleu"], {"bad": bad, "good": good}, refs)
    em = out["candidates"]["good"]["exact_match"]
    # Wilson at 40 of 40: low = n / (n + z^2), not a zero-width interval
    assert em["value"] == 1.0 and em["ci_high"] == 1.0 and em["ci_low"] == pytest.approx(40 / (40 + 1.959964**2))
    bad_em = out["candidates"]["bad"]["exact_match"]
    assert bad_em["value"] == 0.25 and bad_em["ci_high"] < 0.5
    tests = {t["metric"]: t for t in out["tests"]}
    assert tests["exact_match"]["test"] == "McNemar exact" and tests["exact_match"]["p_value"] < 1e-6
    assert tests["exact_match"]["difference"] == pytest.approx(0.75) and tests["exact_match"]["ci_low"] > 0.5
    assert tests["rouge_l"]["test"] == "Wilcoxon signed-rank" and tests["rouge_l"]["p_value"] < 1e-3
    assert tests["bleu"]["test"].startswith("paired permutation") and tests["bleu"]["p_value"] < 0.01
    assert tests["bleu"]["ci_low"] > 0
    same = scoring.score(["exact_match", "bleu"], {"a": good, "b": list(good)}, refs)["tests"]
    assert all(t["difference"] == 0 and t["p_value"] == 1.0 for t in same)


def test_clustered_examples_use_the_cluster_permutation_test():
    refs = ["x"] * 6
    out = scoring.score(["exact_match"], {"a": ["y"] * 6, "b": ["x"] * 6}, refs, clusters=[0, 0, 0, 1, 1, 1])
    test = out["tests"][0]
    assert test["test"] == "paired permutation (sign flips by conversation)"
    assert test["p_value"] > 0.2  # two conversations cannot make a gap significant, however many turns


def test_wilson_interval_matches_its_closed_form_and_stays_in_range():
    z2 = 1.959964**2
    assert stats.wilson_ci([0] * 100) == pytest.approx((0.0, 0.0, z2 / (100 + z2)))  # 0 of 100 -> [0, 0.037]
    p, low, high = stats.wilson_ci([1] * 3 + [0] * 7)  # 3 of 10, the textbook example: [0.108, 0.603]
    assert p == 0.3 and low == pytest.approx(0.1078, abs=1e-4) and high == pytest.approx(0.6032, abs=1e-4)


def test_a_fractional_metric_at_zero_everywhere_gets_the_interval_of_0_of_n():
    from lorakit.evaluation.scoring import candidate_scores

    references = ['{"a": 1, "b": 2}'] * 40
    summary, _ = candidate_scores(["field_accuracy", "macro_f1"], ['{"a": 0}'] * 40, references, None, seed=0)
    z2 = stats.Z95**2
    for name in ("field_accuracy", "macro_f1"):  # before: 0.000 [0.000, 0.000], as if 40 examples proved it
        assert summary[name]["value"] == 0 and summary[name]["ci_high"] == pytest.approx(z2 / (40 + z2))
