"""Load benchmark of lorakit.serve: N concurrent chat clients against one server, vs the same requests sent one at a
time (what a server without batching does), on the embedded SmolLM2-135M by default.

Usage:
    .venv/bin/python scripts/bench_serve.py                     # 16 clients x 2 requests, 64 new tokens max
    .venv/bin/python scripts/bench_serve.py --clients 16 --per-client 4 --max-tokens 128 --model smollm2-135m
    .venv/bin/python scripts/bench_serve.py --engine vllm       # vLLM decoding behind lorakit.serve
    .venv/bin/python scripts/bench_serve.py --long-short        # short requests alone, then beside one long one
    .venv/bin/python scripts/bench_serve.py --big-schema        # short requests beside a 10,000-property schema

Prints requests/s and completion tokens/s of both, their ratio (target >= 3x), p50/p95 latency, the server's
rows per decoding batch, and whether every request was answered (and answered the same in both phases: greedy).

--long-short: short greedy requests (one client, one after another) first alone, then while one long sampled
request runs (`--long-n` choices of `--long-tokens` tokens each, its end of turn forbidden by logit_bias, so it
runs its whole length): their latency in both phases, and the long request's own time. With static batches the
short ones wait for the long one to end; scheduled per decoding step they join it at the next step.
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


def end_of_turn(model: str) -> list[int]:
    from lorakit.models.loading import load_base, model_spec

    return sorted(load_base(model_spec(model)).eot_ids)


def long_short(client, model: str, asks, args) -> None:
    """Short requests' latency alone and beside one long request (see the module's docstring)."""
    shorts = asks[: args.shorts]
    alone = [one(client, model, m, args.max_tokens) for m in shorts]
    long_body = {"model": model, "n": args.long_n, "max_tokens": args.long_tokens, "temperature": 1.0,
                 "messages": [{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
                 "logit_bias": {str(t): -100 for t in end_of_turn(model)}}
    done: dict = {}

    def run_long() -> None:
        start = done["start"] = time.perf_counter()
        reply = client.chat.completions.create(**long_body)
        done["s"], done["tokens"] = time.perf_counter() - start, reply.usage.completion_tokens

    thread = threading.Thread(target=run_long)
    thread.start()
    time.sleep(2.0)  # the long request is decoding
    beside = [one(client, model, m, args.max_tokens) for m in shorts]
    short_end = time.perf_counter()
    thread.join()
    same = sum(a[1] == b[1] for a, b in zip(alone, beside, strict=True))
    for name, results in (("alone", alone), ("beside long", beside)):
        lat = sorted(r[0] for r in results)
        print(f"short requests {name:>12}: p50 {statistics.median(lat):.2f} s, max {lat[-1]:.2f} s "
              f"({len(results)} requests, {args.max_tokens} tokens max)", flush=True)
    print(f"long request: {done['tokens']} tokens ({args.long_n} x {args.long_tokens}) in {done['s']:.1f} s; "
          f"the short ones were all answered {short_end - done['start']:.1f} s after it started"
          if "s" in done else "long request failed")
    print(f"short answers the same alone and beside the long one: {same}/{len(shorts)}")


def big_schema(client, model: str) -> None:
    """5 short greedy requests, one after another, while one request decodes 200 tokens under a JSON schema of
    10,000 properties (its grammar compiles for seconds and masks every step): their latency, and its own."""
    def ask():
        start = time.perf_counter()
        client.chat.completions.create(model=model, max_tokens=16, temperature=0,
                                       messages=[{"role": "user", "content": "Name a color."}])
        return time.perf_counter() - start

    alone = ask()
    schema = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(10_000)},
              "required": ["p0"]}
    done: dict = {}

    def big() -> None:
        start = time.perf_counter()
        reply = client.chat.completions.create(
            model=model, max_tokens=200, temperature=0, messages=[{"role": "user", "content": "Fill the form."}],
            response_format={"type": "json_schema", "json_schema": {"name": "form", "schema": schema}})
        done["s"], done["tokens"] = time.perf_counter() - start, reply.usage.completion_tokens

    thread = threading.Thread(target=big)
    thread.start()
    time.sleep(1.0)
    beside = [ask() for _ in range(5)]
    thread.join()
    print(f"short request alone {alone:.2f} s; beside the schema request: "
          f"{', '.join(f'{x:.2f}' for x in beside)} s; the schema request: {done.get('tokens')} tokens in "
          f"{done.get('s', float('nan')):.1f} s")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--per-client", type=int, default=2)
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--engine", default="lorakit", choices=["lorakit", "vllm"], help="the server's --engine")
    p.add_argument("--long-short", action="store_true", help="short requests alone, then beside one long one")
    p.add_argument("--big-schema", action="store_true", help="short requests beside a 10,000-property schema")
    p.add_argument("--shorts", type=int, default=8, help="--long-short: the short requests")
    p.add_argument("--long-n", type=int, default=4, help="--long-short: the long request's choices (n)")
    p.add_argument("--long-tokens", type=int, default=400, help="--long-short: the long request's max_tokens")
    args = p.parse_args()
    extra = ["--engine", args.engine]
    asks = requests(args.clients * args.per_client)
    with tempfile.TemporaryDirectory() as tmp, serving.running(Path(tmp) / "data", "--model", args.model, *extra,
                                                                    timeout=900) as server:
        client = server.client(key="bench")
        one(client, args.model, asks[0], 8)  # warm-up
        if args.long_short:
            long_short(client, args.model, asks, args)
            return
        if args.big_schema:
            big_schema(client, args.model)
            return
        wall, alone = sequential(client, args.model, asks, args.max_tokens)
        seq = summary("one at a time", wall, alone)
        before = server.health()["decoding"]
        wall, together = concurrent(client, args.model, asks, args.max_tokens, args.clients)
        after = server.health()["decoding"]
        con = summary(f"{args.clients} clients", wall, together)
    answered = all(r is not None and r[1] is not None for r in together)
    same = sum(a[1] == b[1] for a, b in zip(alone, together, strict=True))
    batches = after["batches"] - before["batches"]  # lorakit's engine's; vLLM batches on its own
    rows = f"{(after['rows'] - before['rows']) / batches:.1f} rows per decoding step" if batches else "vLLM batching"
    print(f"engine {args.engine}; ratio: {con['requests_per_s'] / seq['requests_per_s']:.2f}x requests/s, "
          f"{con['tokens_per_s'] / seq['tokens_per_s']:.2f}x tokens/s (target >= 3x); {rows}; "
          f"all {len(together)} answered: {answered}; same answer as alone: {same}/{len(together)}")


if __name__ == "__main__":
    main()
