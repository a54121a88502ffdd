"""Metrics on inputs whose values are known by hand."""

import pytest

from lorakit import metrics as M


def test_exact_match_ignores_surrounding_whitespace_only():
    assert M.exact_match([' {"a": 1}\n', '{"a": 2}', "x"], ['{"a": 1}', '{"a": 1}', "X"]) == pytest.approx(1 / 3)


def test_json_valid_counts_parseable_outputs():
    assert M.json_valid(['{"tool": "x"}', "[1, 2]", "{'single': quotes}", "not json", ""], [""] * 5) == 0.4


def test_bleu_is_one_for_identical_and_zero_for_disjoint():
    assert M.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(1.0)
    assert M.bleu(["a b c d e"], ["v w x y z"]) == 0.0


def test_rouge_l_matches_hand_computed_lcs():
    # LCS("the cat sat", "the cat was here") = 2 words: P = 2/3, R = 2/4, F1 = 4/7
    assert M.rouge_l(["the cat sat"], ["the cat was here"]) == pytest.approx(4 / 7)


def test_rouge_l_scores_non_latin_text():
    assert M.rouge_l(["привет мир"], ["привет мир"]) == pytest.approx(1.0)


def test_compute_returns_requested_metrics():
    out = M.compute(["exact_match", "json_valid"], ['{"a": 1}'], ['{"a": 1}'])
    assert out == {"exact_match": 1.0, "json_valid": 1.0}
