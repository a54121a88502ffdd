"""Defaults on small data: held-out exact match after training on the first 10, 20, 50, 100 or all examples of
several tasks of different shapes, with lorakit's defaults and with the fixed ones they replaced (3 epochs, 10%
held out for validation, a checkpoint every 10% of the steps), side by side.

Usage:
    python scripts/bench_small_data.py --out outputs/bench-small                       # every task and size
    python scripts/bench_small_data.py --tasks intents --sizes 20 --test 50 --out /tmp/b

Tasks (data/, made by scripts/make_tool_picker.py and scripts/make_extra_tasks.py): intents (7 labels),
tool_picker (JSON tool call), contacts (JSON extraction), dates (free text), orders (two turns, JSON). A size of 0
means the whole training file. Where both settings come to the same run (from about 100 examples on), it is run
once and shown in both columns. Each run is `python -m train` on the embedded SmolLM2 with one seed; the test set
is the first --test examples of the task's test file, the same for every run; the base model's answers come from
lorakit's answer cache after the first run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OLD = ["train.num_train_epochs=3", "data.val_fraction=0.1", "train.save_steps=0.1"]  # the fixed defaults before


def subset(task: str, split: str, n: int, out: Path) -> Path:
    """n examples (0: all) of a task's file, copied beside the other subsets. A label task (under 20 distinct
    answers) gets its labels in turn, as a user would collect a few examples per class (20 of 7 intents: 3 each);
    any other task its first n examples."""
    lines = (ROOT / "data" / task / f"{split}.jsonl").read_text().splitlines()
    by_answer: dict[str, list[str]] = {}
    for line in lines:
        by_answer.setdefault(json.loads(line)["messages"][-1]["content"], []).append(line)
    if split == "train" and n and len(by_answer) < 20:
        groups = list(by_answer.values())
        lines = [g[i] for i in range(max(map(len, groups))) for g in groups if i < len(g)]
    path = out / "data" / f"{task}-{split}-{n or 'all'}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines[:n] if n else lines) + "\n")
    return path


def run(task: str, n: int, settings: str, out: Path, test: int) -> dict:
    run_dir = out / f"{task}-{n or 'all'}-{settings}"
    metrics = run_dir / "metrics.json"
    if not metrics.is_file():
        command = [sys.executable, "-m", "train", "model=smollm2-135m", f"data.train_file={subset(task, 'train', n, out)}",
                   f"data.test_file={subset(task, 'test', test, out)}",
                   f"hydra.run.dir={run_dir}", "logger=none", *(OLD if settings == "old" else [])]
        start = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (run_dir / "bench_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    scores = json.loads(metrics.read_text())
    history = json.loads((run_dir / "train_log.json").read_text())
    steps = max((h.get("step", 0) for h in history), default=0)
    return {"base": scores["base"]["exact_match"], "tuned": scores["tuned"]["exact_match"], "steps": steps}


def same_settings(n: int, task: str) -> bool:
    """Whether the new defaults decide what the old ones fixed: 10% validation and 3 epochs of >= 60 steps."""
    from lorakit.data.splits import MIN_VALIDATION_POOL
    from lorakit.training.plan import MIN_STEPS

    total = n or len((ROOT / "data" / task / "train.jsonl").read_text().splitlines())
    return total >= MIN_VALIDATION_POOL and 3 * ((total - round(0.1 * total) + 3) // 4) >= MIN_STEPS


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default="intents,tool_picker,contacts,dates,orders")
    ap.add_argument("--sizes", default="10,20,50,100,0")
    ap.add_argument("--test", type=int, default=50)
    ap.add_argument("--out", type=Path, default=ROOT / "outputs" / "bench-small")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    rows = ["| task | examples | base | old defaults (steps) | new defaults (steps) |", "|---|---:|---:|---:|---:|"]
    for task in args.tasks.split(","):
        for n in [int(s) for s in args.sizes.split(",")]:
            new = run(task, n, "new", args.out, args.test)
            old = new if same_settings(n, task) else run(task, n, "old", args.out, args.test)
            rows.append(f"| {task} | {n or 'all'} | {new['base']:.2f} | {old['tuned']:.2f} ({old['steps']}) | "
                        f"{new['tuned']:.2f} ({new['steps']}) |")
            print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
