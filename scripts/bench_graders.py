"""Grading speed: 1,000 answers through lorakit's graders (string_check + text_similarity, then a python grader),
beside the same scores computed by a plain loop over the libraries (the floor any grader pays).

Usage:
    python scripts/bench_graders.py              # 1,000 tool_picker references, each answered with a changed copy
    python scripts/bench_graders.py --n 5000

Prints seconds per grader, the python grader's per-example overhead (its time minus the plain loop's, over n),
and checks that lorakit's scores equal the plain loop's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

OUT, REF = "{{ sample.output_text }}", "{{ item.reference }}"
PYTHON = "def grade(sample, item):\n    return float(sample['output_text'].strip() == item['reference'].strip())\n"


def data(n: int) -> tuple[list[dict], list[str]]:
    lines = (ROOT / "data" / "tool_picker" / "train.jsonl").read_text().splitlines()
    refs = [json.loads(lines[i % len(lines)])["messages"][-1]["content"] for i in range(n)]
    answers = [r if i % 3 else r.replace('"', "'", 2) for i, r in enumerate(refs)]  # a third of them changed
    return [{"reference": r} for r in refs], answers


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    from rapidfuzz import fuzz

    from lorakit.evaluation.graders import spec
    from lorakit.evaluation.graders.run import grade

    items, answers = data(args.n)
    refs = [i["reference"] for i in items]
    graders = spec.load({
        "exact": {"type": "string_check", "input": OUT, "reference": REF, "operation": "eq"},
        "fuzzy": {"type": "text_similarity", "input": OUT, "reference": REF, "evaluation_metric": "fuzzy_match"},
        "rouge": {"type": "text_similarity", "input": OUT, "reference": REF, "evaluation_metric": "rouge_l"},
        "bleu": {"type": "text_similarity", "input": OUT, "reference": REF, "evaluation_metric": "bleu"},
        "python": {"type": "python", "source": PYTHON}})
    grade(graders["rouge"], items[:2], answers[:2])  # library imports out of the timings
    grade(graders["bleu"], items[:2], answers[:2])
    total = 0.0
    for name, grader in graders.items():
        grades, seconds = timed(lambda g=grader: grade(g, items, answers))
        assert not any(g.error for g in grades), name
        total += seconds if name != "python" else 0.0
        print(f"{name:7s} {seconds:6.3f} s for {args.n} answers ({1e6 * seconds / args.n:7.1f} us each)")
        if name == "fuzzy":
            plain, base = timed(lambda: [fuzz.ratio(a, r) / 100 for a, r in zip(answers, refs, strict=True)])
            assert [g.score for g in grades] == plain
            print(f"        plain rapidfuzz loop {base:.3f} s (the same scores)")
        if name == "python":
            plain, base = timed(lambda: [float(a.strip() == r.strip()) for a, r in zip(answers, refs, strict=True)])
            assert [g.score for g in grades] == plain
            print(f"        per-example overhead of the separate process: {1e6 * (seconds - base) / args.n:.0f} us "
                  f"(process start included)")
    print(f"string_check + 3 text_similarity graders: {total:.3f} s for {args.n} answers (target <= 2 s)")


if __name__ == "__main__":
    main()
