"""Throughput of lorakit.serve's fine-tuning jobs: N small jobs with one at a time (--max-jobs 1) vs two at a time
(--max-jobs 2), on the same machine in one run.

Usage:
    .venv/bin/python scripts/bench_jobs.py                          # 4 jobs of 24 examples x 1 epoch, SmolLM2
    .venv/bin/python scripts/bench_jobs.py --jobs 6 --model tiny-llama --epochs 2

Each phase starts its own server, uploads the file, creates every job at once and waits for the last one to end.
Prints each phase's wall time (first job created -> last job done), jobs per minute, and the ratio. A job's time
is mostly its own process starting (Python, torch, the model) and training; two at a time overlap one's start-up
with the other's training, and split the cores between two trainers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import local_server
from openai import OpenAI

ROOT = Path(__file__).resolve().parents[1]


def phase(tmp: Path, args, max_jobs: int, train: Path) -> dict:
    proc, url = local_server.start(tmp / f"data-{max_jobs}", "--model", args.model, "--max-jobs", str(max_jobs),
                                   "--log-level", "warning", log=tmp / f"server-{max_jobs}.log")
    try:
        client = OpenAI(base_url=f"{url}/v1", api_key="local", max_retries=0)
        upload = client.files.create(file=open(train, "rb"), purpose="fine-tune")
        start = time.perf_counter()
        ids = [client.fine_tuning.jobs.create(training_file=upload.id, model=client.models.list().data[0].id,
                                              hyperparameters={"n_epochs": args.epochs}, seed=n).id
               for n in range(args.jobs)]
        while True:
            jobs = [client.fine_tuning.jobs.retrieve(i) for i in ids]
            if all(j.status in {"succeeded", "failed", "cancelled"} for j in jobs):
                break
            time.sleep(0.5)
        wall = time.perf_counter() - start
        return {"max_jobs": max_jobs, "wall_s": round(wall, 1), "jobs_per_min": round(60 * args.jobs / wall, 2),
                "succeeded": sum(j.status == "succeeded" for j in jobs)}
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("--rows", type=int, default=24)
    p.add_argument("--epochs", type=int, default=1)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        train = Path(tmp) / "train.jsonl"
        train.write_text("\n".join((ROOT / "data/tool_picker/train.jsonl").read_text().splitlines()[:args.rows]) + "\n")
        one, two = phase(Path(tmp), args, 1, train), phase(Path(tmp), args, 2, train)
    print(json.dumps({"one_at_a_time": one, "two_at_a_time": two}, indent=1))
    print(f"{args.jobs} jobs of {args.rows} examples x {args.epochs} epoch(s) on {args.model}: one at a time "
          f"{one['wall_s']} s, two at a time {two['wall_s']} s: {one['wall_s'] / two['wall_s']:.2f}x the throughput")


if __name__ == "__main__":
    main()
