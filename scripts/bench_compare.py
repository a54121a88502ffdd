"""Benchmark and ranking check of `python -m lorakit.compare` on the embedded model.

Usage:
    .venv/bin/python scripts/bench_compare.py                       # tool_picker, all 200 test examples
    .venv/bin/python scripts/bench_compare.py --data contacts --test 60
    .venv/bin/python scripts/bench_compare.py --out /tmp/bench-compare   # keep the runs and reports there

Trains two adapters of SmolLM2-135M-Instruct with the quickstart's settings: "good" on the task's training file,
"bad" on the same file with the assistant answers shuffled across conversations (fluent, well-formed, wrong).
Then, timed as a user runs them (each a fresh process, wall clock):
  separate  the evaluate stage alone for each adapter (`python -m train stages=[evaluate] adapter_dir=...`,
            eval.cache=false): what comparing base, good and bad took before `lorakit.compare`; the base model is
            loaded and answers the test set once per run
  compare   `python -m lorakit.compare "candidates=[base,good,bad]"` with an empty answer cache
  warm      the same command again (every answer from the cache)
Prints compare / separate and warm / compare, and the ranking with 95% intervals and paired tests.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(args: list[str], env: dict, cwd: Path) -> float:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if out.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return seconds


def shuffled(rows: list[dict], seed: int) -> list[dict]:
    """Each conversation's last assistant answer replaced by another conversation's."""
    answers = [r["messages"][-1]["content"] for r in rows]
    random.Random(seed).shuffle(answers)
    return [{**r, "messages": r["messages"][:-1] + [{"role": "assistant", "content": a}]}
            for r, a in zip(rows, answers, strict=True)]


def print_ranking(report: dict) -> None:
    """compare.json's candidates per metric, each value with its 95% interval."""
    for metric in report["metrics"]:
        cells = [f"{n} {s[metric]['value']:.3f} [{s[metric]['ci_low']:.3f}, {s[metric]['ci_high']:.3f}]"
                 for n, s in report["candidates"].items()]
        print(f"  {metric:<15} " + " | ".join(cells))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="tool_picker", help="a task in data/")
    p.add_argument("--test", type=int, default=None, help="test examples (default: all)")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    out = a.out or Path(tempfile.mkdtemp(prefix="lorakit-bench-compare-"))
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "LORAKIT_GENERATIONS": str(out / "cache")}
    rows = [json.loads(line) for line in (ROOT / "data" / a.data / "train.jsonl").read_text().splitlines()]
    assert all(r["messages"][-1]["role"] == "assistant" for r in rows)
    test = (ROOT / "data" / a.data / "test.jsonl").read_text().splitlines()[: a.test]
    (out / "train.jsonl").write_text((ROOT / "data" / a.data / "train.jsonl").read_text())
    (out / "shuffled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in shuffled(rows, 0)))
    (out / "test.jsonl").write_text("\n".join(test) + "\n")

    common = ["+experiment=quickstart", f"data={a.data}", "data.test_file=test.jsonl"]
    train_s = {}
    for name, file in (("good", "train.jsonl"), ("bad", "shuffled.jsonl")):
        if not (out / name / "adapter").is_dir():
            train_s[name] = timed(["train", *common, f"data.train_file={file}", "stages=[prepare,train]",
                                   f"hydra.run.dir={name}"], env, out)
    separate = {name: timed(["train", *common, "data.train_file=train.jsonl", "stages=[evaluate]",
                             f"adapter_dir={name}/adapter", "eval.cache=false", f"hydra.run.dir=eval-{name}"], env, out)
                for name in ("good", "bad")}
    compare_args = ["lorakit.compare", "candidates=[base,good,bad]", "data.test_file=test.jsonl", f"data={a.data}"]
    cold = timed([*compare_args, "out_dir=compare"], env, out)
    warm = timed([*compare_args, "out_dir=compare-warm"], env, out)

    report = json.loads((out / "compare" / "compare.json").read_text())
    warm_report = json.loads((out / "compare-warm" / "compare.json").read_text())
    print(f"data: {a.data}, {len(test)} test examples; embedded SmolLM2-135M-Instruct on "
          f"{'CUDA' if os.environ.get('CUDA_VISIBLE_DEVICES') else 'this machine'}; runs in {out}")
    if train_s:
        print("training: " + ", ".join(f"{k} {v:.0f} s" for k, v in train_s.items()))
    total = sum(separate.values())
    print(f"separate evaluate-only runs: {' + '.join(f'{v:.1f}' for v in separate.values())} = {total:.1f} s")
    print(f"one compare of base, good, bad: {cold:.1f} s  -> {cold / total:.2f}x the separate runs")
    print(f"the same compare again (warm cache, generated {sum(warm_report['generated'].values())} answers): "
          f"{warm:.1f} s  -> {warm / cold:.2f}x the first")
    print("\nranking (value [95% interval]):")
    print_ranking(report)
    print("\npaired tests against base:")
    for t in report["tests"]:
        print(f"  {t['metric']:<15} {t['b']:<5} {t['difference']:+.3f} [{t['ci_low']:+.3f}, {t['ci_high']:+.3f}] "
              f"{t['test']} p={t['p_value']:.3g}")


if __name__ == "__main__":
    main()
