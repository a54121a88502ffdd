"""The supervised-then-DPO recipe end to end on the embedded model, on a generated task (not a shipped example).

Usage:
    python scripts/dpo_recipe.py                       # writes outputs/dpo_recipe/ and prints the figures
    python scripts/dpo_recipe.py --sft-examples 20 --pool 300 --test 200

The task: travel requests that name two cities (origin and destination, in either order, 12 sentence shapes); the
reply is the destination only, in capital letters. Steps, each a real lorakit command:
  1. python -m train on --sft-examples chat examples (supervised, the defaults)
  2. python -m lorakit.pairs <sft run> data.train_file=pool.jsonl  (the SFT adapter's mistakes on --pool prompts)
  3. python -m train method=dpo data.train_file=<pairs> init_from=<sft run> data.test_file=test_pairs.jsonl
The DPO run's evaluate stage compares its starting point (the SFT adapter) with the DPO adapter on the held-out
test set (exact match with a paired test) and reports the reward accuracy on held-out pairs (the test prompts, with
the SFT adapter's wrong answers as the non-preferred side, or a wrong city where it was right).
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITIES = ["Berlin", "Lyon", "Madrid", "Oslo", "Prague", "Vienna", "Lisbon", "Dublin", "Warsaw", "Athens", "Zurich",
          "Milan", "Porto", "Krakow", "Seville", "Bergen", "Munich", "Naples", "Ghent", "Tallinn", "Riga", "Vilnius",
          "Turin", "Bilbao", "Salzburg", "Bruges", "Geneva", "Valencia", "Hamburg", "Florence", "Cork", "Malaga",
          "Nantes", "Leipzig", "Bologna", "Utrecht", "Graz", "Aarhus", "Gdansk", "Split"]
SHAPES = ["Book me a train from {o} to {d} on Friday.", "I'm flying {o} to {d} next week, any tips?",
          "Find a bus to {d}; I'll be leaving from {o}.", "I need to be in {d} by Monday, starting from {o}.",
          "Cheapest way to get to {d} from {o}?", "Heading out of {o} tomorrow, destination {d}.",
          "We drive from {o} and arrive in {d} at noon.", "Is there a night train to {d}? I'm in {o}.",
          "Going to {d} for a conference, departing {o}.", "Leaving {o} in the morning to reach {d}.",
          "My trip: {o} -> {d}, two adults.", "Can you plan a route ending in {d}, starting in {o}?"]
SYSTEM = "Reply with the destination city of the trip only, in capital letters."


def rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        origin, destination = rng.sample(CITIES, 2)
        shape = rng.choice(SHAPES)
        out.append({"messages": [{"role": "system", "content": SYSTEM},
                                 {"role": "user", "content": shape.format(o=origin, d=destination)},
                                 {"role": "assistant", "content": destination.upper()}]})
    return out


def write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def lorakit(*args: str, cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=cwd, check=True)
    return time.perf_counter() - start


def test_pairs(test: list[dict], sft_pairs: Path, seed: int) -> list[dict]:
    """Every test prompt as a pair: the SFT adapter's own wrong answer as the non-preferred side where it erred,
    else another city of the sentence (the origin) in capitals."""
    wrong = {json.dumps(p["input"]["messages"]): p["non_preferred_output"] for p in map(json.loads, sft_pairs.open())}
    out = []
    for r in test:
        prompt, reference = r["messages"][:-1], r["messages"][-1]["content"]
        other = next(c.upper() for c in CITIES if c in prompt[-1]["content"] and c.upper() != reference)
        out.append({"input": {"messages": prompt}, "preferred_output": [r["messages"][-1]],
                    "non_preferred_output": wrong.get(json.dumps(prompt), [{"role": "assistant", "content": other}])})
    return out


def reward_split(out: Path) -> dict[str, dict[str, float]]:
    """The DPO run's held-out reward metrics on its two kinds of test pairs: the SFT adapter's own mistakes, and the
    prompts it answered right (the origin city as the non-preferred side)."""
    from omegaconf import OmegaConf

    from lorakit.core.runs import RunFolder, find_adapter, read_jsonl
    from lorakit.evaluation.preference import reward_metrics
    from lorakit.models.loading import load_base

    cfg = OmegaConf.load(out / "dpo" / "config.yaml")
    folder = RunFolder(out / "dpo")
    mistakes = {p["input"]["messages"][-1]["content"] for p in map(json.loads, (out / "test_mistakes.jsonl").open())}
    rows = read_jsonl(folder.split("test"))
    base = load_base(cfg.model, tokenizer_from=folder.adapter)
    kinds = {"sft_mistakes": [r for r in rows if r["messages"][-2]["content"] in mistakes],
             "origin_city": [r for r in rows if r["messages"][-2]["content"] not in mistakes]}
    return {kind: {"pairs": len(subset), **reward_metrics(cfg, base, folder.adapter, find_adapter(cfg.init_from),
                                                          subset, cuda=False)} for kind, subset in kinds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sft-examples", type=int, default=20)
    parser.add_argument("--pool", type=int, default=300)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "dpo_recipe")
    parser.add_argument("--dpo", nargs="*", default=[], help="extra overrides for the DPO run")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    write(out / "sft.jsonl", rows(args.sft_examples, 1))
    write(out / "pool.jsonl", rows(args.pool, 2))
    test = rows(args.test, 3)
    write(out / "test.jsonl", test)
    times = {"sft": lorakit("-m", "train", "data.train_file=sft.jsonl", "data.test_file=test.jsonl",
                            f"hydra.run.dir={out / 'sft'}", cwd=out)}
    times["pairs"] = lorakit("-m", "lorakit.pairs", str(out / "sft"), f"data.train_file={out / 'pool.jsonl'}",
                             "--out", str(out / "pairs.jsonl"), cwd=out)
    lorakit("-m", "lorakit.pairs", str(out / "sft"), f"data.train_file={out / 'test.jsonl'}", "--out",
            str(out / "test_mistakes.jsonl"), cwd=out)
    write(out / "test_pairs.jsonl", test_pairs(test, out / "test_mistakes.jsonl", 4))
    times["dpo"] = lorakit("-m", "train", "method=dpo", "data.train_file=pairs.jsonl", "data.test_file=test_pairs.jsonl",
                           f"init_from={out / 'sft'}", f"hydra.run.dir={out / 'dpo'}", *args.dpo, cwd=out)
    sft, dpo = (json.loads((out / name / "metrics.json").read_text()) for name in ("sft", "dpo"))
    compare = json.loads((out / "dpo" / "compare.json").read_text())
    pairs = sum(1 for _ in (out / "pairs.jsonl").open())
    print(json.dumps({"sft_examples": args.sft_examples, "pool": args.pool, "pairs": pairs, "test": args.test,
                      "exact_match": {"base": sft["base"]["exact_match"], "sft": sft["tuned"]["exact_match"],
                                      "dpo_start": dpo["base"]["exact_match"], "dpo": dpo["tuned"]["exact_match"]},
                      "reward_accuracy": dpo["tuned"].get("reward_accuracy"),
                      "reward_margin": dpo["tuned"].get("reward_margin"),
                      "reward_by_kind": reward_split(out),
                      "paired_test": next(t for t in compare["tests"] if t["metric"] == "exact_match"),
                      "seconds": {k: round(v) for k, v in times.items()}}, indent=2))


if __name__ == "__main__":
    main()
