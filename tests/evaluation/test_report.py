"""compare.html and its figures on hand-made results (real answers differ; the tiny test model's do not)."""

from __future__ import annotations

import re

from lorakit.evaluation import plots
from lorakit.evaluation.html_report import write_html
from lorakit.evaluation.report import disagreement_order


def _stat(value, low, high):
    return {"value": value, "ci_low": low, "ci_high": high}


def test_metric_bars_accept_a_bootstrap_interval_that_misses_its_value():
    png = plots.metric_bars({"a": {"bleu": _stat(0.03, 0.031, 0.05)}, "b": {"bleu": _stat(0.5, 0.4, 0.6)}}, ["bleu"])
    assert png.startswith(b"\x89PNG")


def test_html_report_for_a_label_task_with_a_judge(tmp_path):
    refs = ["positive", "negative", "neutral", "positive"] * 3
    outputs = {"base": ["neutral"] * 12, "tuned": list(refs[:-1]) + ["negative"]}
    per_example = {n: {"accuracy": [float(o == r) for o, r in zip(out, refs, strict=True)]} for n, out in outputs.items()}
    result = {
        "candidates": {"base": {"accuracy": _stat(0.25, 0.09, 0.53)}, "tuned": {"accuracy": _stat(0.92, 0.65, 0.99)}},
        "tests": [{"metric": "accuracy", "a": "base", "b": "tuned", "difference": 0.67, "ci_low": 0.4, "ci_high": 0.9,
                   "test": "McNemar exact", "statistic": 0.0, "p_value": 0.002}],
        "judge": {"model": "judge", "calls": 48, "rubric": "same label <b>", "scale": 5, "mode": "both",
                  "pointwise": {"base": {"score": _stat(2.0, 1.5, 2.5), "n_scored": 11, "unparseable": 1},
                                "tuned": {"score": _stat(4.5, 4.1, 4.9), "n_scored": 12, "unparseable": 0}},
                  "pointwise_scores": {"base": [2] * 11 + [None], "tuned": [5] * 12},
                  "pairwise": [{"a": "base", "b": "tuned", "win": 8, "tie": 2, "loss": 1, "unparseable": 1,
                                "identical": 2, "position_consistency": 0.8, "win_rate": _stat(0.8, 0.6, 0.95),
                                "p_value": 0.04, "outcomes": ["win"] * 12}]},
        "n_examples": 12, "metrics": ["accuracy"], "reference": "base", "max_new_tokens": 8,
        "outputs": outputs, "references": refs, "per_example": per_example,
        "train_logs": {},
    }
    rows = [{"file": "test.jsonl", "line": i + 1, "messages": [{"role": "user", "content": f"review <{i}>"},
                                                             {"role": "assistant", "content": r}]}
            for i, r in enumerate(refs)]
    path = tmp_path / "compare.html"
    write_html(path, result, rows, disagreement_order(result))
    html = path.read_text()
    assert len(re.findall(r'src="data:image/png;base64,', html)) == 3  # metrics, judge outcomes, confusion matrices
    assert "Confusion matrices" in html and "Pairwise, both orders" in html and ">80%<" in html
    assert "review &lt;0&gt;" in html and "same label &lt;b&gt;" in html  # text is escaped, never markup
    assert html.index("test.jsonl:4</h3>") < html.index("test.jsonl:3</h3>")  # where the candidates differ first
    assert "judge unparseable" in html
