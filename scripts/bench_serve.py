"""Load benchmark of lorakit.serve: N concurrent chat clients against one server, vs the same requests sent one at a
time (what a server without batching does), on the embedded SmolLM2-135M by default.

Usage:
    .venv/bin/python scripts/bench_serve.py                     # 16 clients x 2 requests, 64 new tokens max
    .venv/bin/python scripts/bench_serve.py --clients 16 --per-client 4 --max-tokens 128 --model smollm2-135m
    .venv/bin/python scripts/bench_serve.py --engine vllm       # vLLM decoding behind lorakit.serve

Prints requests/s and completion tokens/s of both, their ratio (target >= 3x), p50/p95 latency, the server's
rows per decoding batch, and whether every request was answered (and answered the same in both phases: greedy).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers import serving  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def requests(n: int) -> list[list[dict]]:
    """n different chat requests: tool_picker test conversations without their answers, then varied questions."""
    rows = [json.loads(line) for line in (ROOT / "data" / "tool_picker" / "test.jsonl").read_text().splitlines()]
    return [[m for m in rows[i % len(rows)]["messages"] if m["role"] != "assistant"] for i in range(n)]


def one(client, model: str, messages: list[dict], max_tokens: int) -> tuple[float, str, int]:
    start = time.perf_counter()
    reply = client.chat.completions.create(model=model, messages=messages, max_tokens=max_tokens, temperature=0)
    return time.perf_counter() - start, reply.choices[0].message.content, reply.usage.completion_tokens


def sequential(client, model, asks, max_tokens):
    start = time.perf_counter()
    results = [one(client, model, m, max_tokens) for m in asks]
    return time.perf_counter() - start, results


def concurrent(client, model, asks, max_tokens, clients: int):
    results: list = [None] * len(asks)

    def worker(c: int) -> None:
        for i in range(c, len(asks), clients):  # each client sends its requests one after another
            results[i] = one(client, model, asks[i], max_tokens)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, results


def summary(name: str, wall: float, results: list) -> dict:
    latencies = sorted(r[0] for r in results)
    tokens = sum(r[2] for r in results)
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    out = {"name": name, "wall_s": round(wall, 2), "requests_per_s": round(len(results) / wall, 3),
           "tokens_per_s": round(tokens / wall, 1), "p50_s": round(statistics.median(latencies), 2),
           "p95_s": round(p95, 2), "completion_tokens": tokens}
    print(f"{name:>12}: {out['wall_s']:7.1f} s, {out['requests_per_s']:.2f} req/s, {out['tokens_per_s']:.1f} tok/s, "
          f"latency p50 {out['p50_s']:.2f} s p95 {out['p95_s']:.2f} s", flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--per-client", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--batch-window-ms", type=float, default=None, help="the server's --batch-window-ms (its default)")
    p.add_argument("--engine", default="lorakit", choices=["lorakit", "vllm"], help="the server's --engine")
    args = p.parse_args()
    extra = ["--batch-window-ms", str(args.batch_window_ms)] if args.batch_window_ms is not None else []
    extra += ["--engine", args.engine]
    asks = requests(args.clients * args.per_client)
    with tempfile.TemporaryDirectory() as tmp, serving.running(Path(tmp) / "data", "--model", args.model, *extra,
                                                                    timeout=900) as server:
        client = server.client(key="bench")
        one(client, args.model, asks[0], 8)  # warm-up
        wall, alone = sequential(client, args.model, asks, args.max_tokens)
        seq = summary("one at a time", wall, alone)
        before = server.health()["decoding"]
        wall, together = concurrent(client, args.model, asks, args.max_tokens, args.clients)
        after = server.health()["decoding"]
        con = summary(f"{args.clients} clients", wall, together)
    answered = all(r is not None and r[1] is not None for r in together)
    same = sum(a[1] == b[1] for a, b in zip(alone, together, strict=True))
    batches = after["batches"] - before["batches"]  # lorakit's engine's; vLLM batches on its own
    rows = f"{(after['rows'] - before['rows']) / batches:.1f} rows per decoding batch" if batches else "vLLM batching"
    print(f"engine {args.engine}; ratio: {con['requests_per_s'] / seq['requests_per_s']:.2f}x requests/s, "
          f"{con['tokens_per_s'] / seq['tokens_per_s']:.2f}x tokens/s (target >= 3x); {rows}; "
          f"all {len(together)} answered: {answered}; same answer as alone: {same}/{len(together)}")


if __name__ == "__main__":
    main()
