"""Supervised then reinforcement fine-tuning end to end on the embedded model, on a generated task (not a shipped
example): a weak supervised adapter, then method=reinforcement with a string_check grader from that adapter.

Usage:
    python scripts/rft_recipe.py                       # writes outputs/rft_recipe/ and prints the figures
    python scripts/rft_recipe.py --sft-examples 20 --tasks 64 --test 200 --rft train.num_train_epochs=1

The task is dpo_recipe.py's: travel requests that name two cities (origin and destination, in either order, 12
sentence shapes); the reply is the destination only, in capital letters. Steps, each a real lorakit command:
  1. python -m train on --sft-examples chat examples (supervised, the defaults)
  2. python -m train method=reinforcement method.grader=grader.yaml data.train_file=tasks.jsonl init_from=<sft run>
     on --tasks other prompts as OpenAI reinforcement tasks ({"messages" up to the user turn, "destination"})
The reinforcement run's evaluate stage grades its starting point (the SFT adapter) and the tuned adapter on the
--test held-out tasks with the same grader, with a paired test.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from dpo_recipe import ROOT, lorakit, rows, write

GRADER = """\
type: string_check
name: destination
input: "{{ sample.output_text }}"
reference: "{{ item.destination }}"
operation: eq
"""


def tasks(n: int, seed: int) -> list[dict]:
    """The task's conversations as reinforcement tasks: the prompt, and the answer as the grader's field."""
    return [{"messages": r["messages"][:-1], "destination": r["messages"][-1]["content"]} for r in rows(n, seed)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sft-examples", type=int, default=20)
    parser.add_argument("--tasks", type=int, default=64)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "rft_recipe")
    parser.add_argument("--rft", nargs="*", default=[], help="extra overrides for the reinforcement run")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    write(out / "sft.jsonl", rows(args.sft_examples, 1))
    write(out / "tasks.jsonl", tasks(args.tasks, 2))
    write(out / "test.jsonl", rows(args.test, 3))
    write(out / "test_tasks.jsonl", tasks(args.test, 3))
    (out / "grader.yaml").write_text(GRADER)
    times = {}
    if not (out / "sft" / "metrics.json").is_file():
        times["sft"] = lorakit("-m", "train", "data.train_file=sft.jsonl", "data.test_file=test.jsonl",
                               f"hydra.run.dir={out / 'sft'}", cwd=out)
    times["rft"] = lorakit("-m", "train", "method=reinforcement", "method.grader=grader.yaml",
                           "data.train_file=tasks.jsonl", "data.test_file=test_tasks.jsonl", f"init_from={out / 'sft'}",
                           f"hydra.run.dir={out / 'rft'}", "resume=never", *args.rft, cwd=out)
    sft, rft = (json.loads((out / name / "metrics.json").read_text()) for name in ("sft", "rft"))
    compare = json.loads((out / "rft" / "compare.json").read_text())
    history = [h for h in json.loads((out / "rft" / "train_log.json").read_text()) if "reward" in h]
    tenth = max(len(history) // 10, 1)
    print(json.dumps({"sft_examples": args.sft_examples, "tasks": args.tasks, "test": args.test,
                      "overrides": args.rft, "steps": history[-1]["step"] if history else 0,
                      "exact_match": {"base": sft["base"]["exact_match"], "sft": sft["tuned"]["exact_match"]},
                      "grader": {"rft_start": rft["base"]["destination"], "rft": rft["tuned"]["destination"]},
                      "mean_reward": {"first_tenth": sum(h["reward"] for h in history[:tenth]) / tenth,
                                      "last_tenth": sum(h["reward"] for h in history[-tenth:]) / tenth},
                      "paired_test": next(t for t in compare["tests"] if t["metric"] == "destination"),
                      "seconds": {k: round(v) for k, v in times.items()}}, indent=2))


if __name__ == "__main__":
    main()
