"""The judge's strict parsing and its both-orders bookkeeping, on hand-written replies."""

from __future__ import annotations

import pytest

from lorakit.evaluation import judge


@pytest.mark.parametrize("reply, score", [
    ("4", 4), ("Score: 4", 4), ("**Score:** 5", 5), ("score=2.", 2), ("3/5", 3), ("  1 ", 1),
    ("6", None), ("0", None), ("I would give it a 4", None), ("Score: 4 because it is close", None), ("", None),
    ("4 or 5", None),
])
def test_scores_parse_strictly(reply, score):
    assert judge.parse_score(reply, 5) == score


@pytest.mark.parametrize("reply, verdict", [
    ("A", "A"), ("b", "B"), ("[[A]]", "A"), ("Tie", "tie"), ("Verdict: B", "B"), ("(A).", "A"),
    ("A is better", None), ("Both are fine", None), ("", None), ("A or B", None),
])
def test_verdicts_parse_strictly(reply, verdict):
    assert judge.parse_verdict(reply) == verdict


def test_a_verdict_that_flips_with_the_order_is_a_tie():
    # first order shows (a, b) as (A, B); second shows (b, a)
    assert judge.outcome("B", "A") == ("win", True)      # b preferred in both orders
    assert judge.outcome("A", "B") == ("loss", True)
    assert judge.outcome("tie", "tie") == ("tie", True)
    assert judge.outcome("A", "A") == ("tie", False)     # always the first answer: position bias, not a preference
    assert judge.outcome("B", "tie") == ("tie", False)
    assert judge.outcome(None, "A") == ("unparseable", None)


def test_pairwise_summary_counts_consistency_win_rate_and_sign_test():
    outcomes = [("win", True)] * 6 + [("loss", True)] + [("tie", False)] * 2 + [("unparseable", None)] + [("tie", True)]
    identical = [False] * 10 + [True]  # the last example's answers were identical: a tie without a judge call
    s = judge.pairwise_summary(outcomes, identical, None)
    assert (s["win"], s["tie"], s["loss"], s["unparseable"], s["identical"]) == (6, 3, 1, 1, 1)
    assert s["position_consistency"] == pytest.approx(7 / 9)  # 9 judged in both orders and parsed, 7 agreed
    assert s["win_rate"]["value"] == pytest.approx((6 + 0.5 * 3) / 10)
    assert s["p_value"] == pytest.approx(2 * (7 + 1) / 128)  # exact two-sided binomial: P(>= 6 of 7) doubled


def test_pointwise_counts_unparseable_and_never_scores_it():
    s = judge.pointwise_summary([5, None, 3, None, 4], None, 5)
    assert s["n_scored"] == 3 and s["unparseable"] == 2
    assert s["score"]["value"] == pytest.approx(4.0)
    assert s["distribution"] == {"1": 0, "2": 0, "3": 1, "4": 1, "5": 1}
    t = judge.pointwise_test([5, None, 3, 2], [4, 4, None, 4], None)
    assert t["n"] == 2 and t["difference"] == pytest.approx((-1 + 2) / 2)
