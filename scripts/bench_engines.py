"""Benchmark of the inference engines: `python -m lorakit.compare "candidates=[base,good,bad]"` with
eval.engine=lorakit and with eval.engine=vllm, side by side on the same test prompts.

Usage:
    .venv/bin/python scripts/bench_engines.py --test 40                      # tool_picker, embedded SmolLM2
    .venv/bin/python scripts/bench_engines.py --out /tmp/bench-compare       # reuse bench_compare.py's adapters

The two adapters are bench_compare.py's ("good": the quickstart on the task, "bad": the same file with the
answers shuffled), trained once into --out. Each compare is a fresh process with its own empty answer cache.
Prints per engine the wall clock and answers/s (vLLM's start and the model loads included), the ratio, how many
greedy answers are identical, and both rankings with their 95% intervals (the same ranking is the point: vLLM's
speed is for GPUs, the answers must agree).
Needs vLLM (`bash scripts/setup_vllm.sh`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compare import ROOT, print_ranking, shuffled, timed  # noqa: E402 - the sibling script's helpers


def _adapters(out: Path, data: str, env: dict) -> None:
    rows = [json.loads(line) for line in (ROOT / "data" / data / "train.jsonl").read_text().splitlines()]
    (out / "train.jsonl").write_text((ROOT / "data" / data / "train.jsonl").read_text())
    (out / "shuffled.jsonl").write_text("".join(json.dumps(r) + "\n" for r in shuffled(rows, 0)))
    for name, file in (("good", "train.jsonl"), ("bad", "shuffled.jsonl")):
        if not (out / name / "adapter").is_dir():
            timed(["train", "+experiment=quickstart", f"data={data}", "data.test_file=test.jsonl",
                   f"data.train_file={file}", "stages=[prepare,train]", f"hydra.run.dir={name}"], env, out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="tool_picker", help="a task in data/")
    p.add_argument("--test", type=int, default=40, help="test examples")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    out = a.out or Path(tempfile.mkdtemp(prefix="lorakit-bench-engines-"))
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    test = (ROOT / "data" / a.data / "test.jsonl").read_text().splitlines()[: a.test]
    (out / "test.jsonl").write_text("\n".join(test) + "\n")
    _adapters(out, a.data, env)
    reports, answers, wall = {}, {}, {}
    for engine in ("lorakit", "vllm"):
        run_env = {**env, "LORAKIT_GENERATIONS": str(out / f"cache-{engine}")}
        wall[engine] = timed(["lorakit.compare", "candidates=[base,good,bad]", "data.test_file=test.jsonl",
                              f"data={a.data}", f"eval.engine={engine}", f"out_dir=compare-{engine}"], run_env, out)
        reports[engine] = json.loads((out / f"compare-{engine}" / "compare.json").read_text())
        answers[engine] = [json.loads(line)["answers"] for line in
                           (out / f"compare-{engine}" / "examples.jsonl").read_text().splitlines()]
    n = sum(reports["lorakit"]["generated"].values())
    print(f"data: {a.data}, {len(test)} test examples x 3 candidates (base, good, bad) = {n} answers; "
          f"embedded SmolLM2-135M-Instruct; runs in {out}")
    rates = {}
    for engine, report in reports.items():
        rates[engine] = n / wall[engine]
        print(f"  {engine:<8} compare wall clock {wall[engine]:.1f} s -> {rates[engine]:.2f} answers/s "
              f"(generated {sum(report['generated'].values())})")
    print(f"vllm / lorakit throughput (wall clock, model start included): {rates['vllm'] / rates['lorakit']:.2f}x")
    same = sum(x[c] == y[c] for x, y in zip(answers["lorakit"], answers["vllm"], strict=True) for c in x)
    print(f"identical greedy answers: {same}/{n} ({same / n:.1%})")
    for engine, report in reports.items():
        print(f"\nranking, {engine} (value [95% interval]):")
        print_ranking(report)


if __name__ == "__main__":
    main()
