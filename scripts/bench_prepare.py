"""Benchmark: lorakit's prepare stage vs a straightforward per-row Python loop, same tokenizer, same data.

Usage:
    .venv/bin/python scripts/bench_prepare.py                   # 100,000 generated examples, SmolLM2's tokenizer
    .venv/bin/python scripts/bench_prepare.py --n 5000 --num-proc 1 2

The data: generated chat examples in OpenAI JSONL (one system prompt, 80% single-turn, 20% with 2-3 turns, replies
of 5-120 words). The peer reads the file line by line and, per row, renders every assistant turn's prefixes with
the chat template, tokenizes them and masks everything but the assistant tokens: what a hand-written script does.
lorakit runs its whole prepare stage on the same file: reading, every check (lorakit.data.checks), duplicates, leakage,
batched tokenization and labelling, the length policy, the report and the saved datasets. Both produce input_ids
and labels; the script checks they agree and prints examples/second and the ratio.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from lorakit.models.loading import end_of_turn_ids

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

WORDS = ("time year people way day man thing woman life child world school state family student group country "
         "problem hand part place case week company system program question work government number night point "
         "home water room mother area money story fact month lot right study book eye job word business issue "
         "side kind head house service friend father power hour game line end member law car city community name "
         "the a of to and in is it you that he was for on are with as I his they be at one have this from").split()
SYSTEM = "You are a helpful assistant that answers briefly and precisely."


def generate(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))).capitalize() + "."

    rows = []
    for i in range(n):
        messages = [{"role": "system", "content": SYSTEM}]
        for _ in range(1 if rng.random() < 0.8 else rng.randint(2, 3)):
            messages += [{"role": "user", "content": f"#{i} " + text(5, 40)},
                         {"role": "assistant", "content": text(5, 120)}]
        rows.append({"messages": messages})
    return rows


def per_row_loop(path: Path, tokenizer, eot_ids: set[int]) -> list[dict]:
    """The peer: one row at a time, prefix renders tokenized one by one to find the assistant tokens."""
    out = []
    with path.open() as f:
        for line in f:
            messages = json.loads(line)["messages"]
            full = tokenizer.apply_chat_template(messages, tokenize=False)
            ids = tokenizer(full, add_special_tokens=False)["input_ids"]
            labels = [-100] * len(ids)
            for i, m in enumerate(messages):
                if m["role"] != "assistant":
                    continue
                prompt = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
                upto = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
                start = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
                end = len(tokenizer(upto, add_special_tokens=False)["input_ids"])
                while end > start and ids[end - 1] not in eot_ids:  # stop at the end-of-turn token
                    end -= 1
                labels[start:end] = ids[start:end]
            out.append({"input_ids": ids, "labels": labels})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="examples to generate")
    parser.add_argument("--num-proc", type=int, nargs="*", default=[0, 1],
                        help="lorakit runs: data.num_proc values (0 = lorakit's automatic choice)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from datasets import load_from_disk

    from lorakit.config.compose import compose
    from lorakit.models.loading import load_tokenizer, resolve
    from lorakit.stages import prepare

    tokenizer = load_tokenizer(resolve(compose("run_dir=/tmp/unused").model))
    eot = end_of_turn_ids(tokenizer)
    work = Path(tempfile.mkdtemp(prefix="bench_prepare_"))
    data = work / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in generate(args.n)))
    print(f"{args.n:,} examples in {data} ({data.stat().st_size / 1e6:.0f} MB); {os.cpu_count()} CPU cores")

    start = time.perf_counter()
    peer = per_row_loop(data, tokenizer, eot)
    peer_s = time.perf_counter() - start
    results = {"n": args.n, "cores": os.cpu_count(), "peer_s": round(peer_s, 2), "lorakit": []}
    print(f"per-row loop: {peer_s:7.1f} s  {args.n / peer_s:8,.0f} examples/s")

    for num_proc in args.num_proc:
        run_dir = work / f"run_{num_proc}"
        cfg = compose(f"data.train_file={data}", "data.test_file=null", "data.test_fraction=0", "data.val_fraction=0",
                      "data.max_length=4096", f"data.num_proc={num_proc or 'null'}", f"run_dir={run_dir}")
        start = time.perf_counter()
        report = prepare.run(cfg, tokenizer, eot, run_dir)
        seconds = time.perf_counter() - start
        rows = load_from_disk(str(run_dir / "data" / "train"))
        by_line = {line: i for i, line in enumerate(rows["line"])}
        same = sum(rows[by_line[n]]["input_ids"] == p["input_ids"] and rows[by_line[n]]["labels"] == p["labels"]
                   for n, p in enumerate(peer, 1) if n in by_line)
        used = report["accounting"]["used"]["train"]
        label = f"num_proc={num_proc or 'auto (' + str(num_proc(cfg.data, args.n)) + ')'}"
        print(f"lorakit {label}: {seconds:7.1f} s  {args.n / seconds:8,.0f} examples/s  {peer_s / seconds:.2f}x the "
              f"per-row loop; {used:,} used, identical ids and labels: {same:,}/{len(peer):,}")
        results["lorakit"].append({"num_proc": num_proc or None, "seconds": round(seconds, 2), "used": used,
                                   "identical": same, "ratio": round(peer_s / seconds, 2)})
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
