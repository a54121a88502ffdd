"""Requests that arrive together are answered together: one worker thread owns the model and decodes every
waiting request of the same decoding settings in one batch, each row through its own adapter (PEFT's
mixed-adapter batches: the base and every adapter are loaded once).

Greedy requests share a batch whatever their token limits and stop strings (each row ends on its own); sampled
requests share one when temperature and top_p match; a request with a seed is decoded alone, so that the seed
gives the same answer every time.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import count

import torch

from lorakit.inference.engine import Engine, sample
from lorakit.inference.logprobs import prompt_logprobs
from lorakit.inference.rules import RowRules, Rules, TokenLogprob
from lorakit.inference.streaming import TextStream

log = logging.getLogger("lorakit.server")


@dataclass
class Choice:
    text: str
    finish_reason: str
    tokens: int
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[TokenLogprob] | None = None  # per generated token, when the request asked
    prompt_logprobs: list[TokenLogprob] | None = None  # per prompt token (echo), when asked
    end_token: int | None = None  # the end-of-turn token the answer ended on (generated; not in its text)
    end_logprob: TokenLogprob | None = None  # its log-probability, when the request asked for them


@dataclass
class Pending:
    adapter: tuple[str, object] | None  # (PEFT name, folder) or None for the base
    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    n: int = 1
    rules: RowRules = field(default_factory=RowRules)
    echo_top: int | None = None  # the prompt's log-probabilities with this many alternatives (None: not asked)
    on_delta: Callable[[int, str], None] | None = None  # (choice index, text) while decoding
    future: Future = field(default_factory=Future)  # -> list[Choice]
    number: int = 0
    abandoned: bool = False  # its client left: its rows stop decoding, and it is not started if still queued

    def group(self) -> tuple:
        if self.temperature == 0:
            return ("greedy",)
        return ("sampled", self.temperature, self.top_p) if self.seed is None else ("seeded", self.number)


class Batcher:
    def __init__(self, engine: Engine, tokenizer, eot_ids: set[int], *, max_batch: int = 32, window_s: float = 0.05):
        self.engine, self.tokenizer, self.eot_ids = engine, tokenizer, eot_ids
        self.max_batch, self.window_s = max_batch, window_s
        self.queue: queue.Queue[Pending | None] = queue.Queue()
        self.numbers = count()
        self.batches = 0  # decoding batches run (the load benchmark reports rows per batch)
        self.rows = 0
        self.tokens = 0  # tokens decoded for the rows (each row's own, up to where it ended)
        self.last_requests = 0  # requests in the last batch: more than one means clients are waiting together
        self.abandoned = 0  # requests whose client left before the answer ended (their decoding stopped there)
        self._thread = threading.Thread(target=self._loop, name="lorakit-batcher", daemon=True)

    def start(self, *, preload: bool = True) -> None:
        """Start decoding; preload: load the model now (else on the first request: with vLLM decoding the
        chat routes, only a model grader asks lorakit's engine)."""
        if preload:
            self.engine.load()
        self._thread.start()

    def stop(self) -> None:
        self.queue.put(None)
        self._thread.join(timeout=30)

    def abandon(self, pending: Pending) -> None:
        """The client is gone: stop decoding its rows at the next step (or never start them)."""
        if not pending.abandoned and not pending.future.done():
            pending.abandoned = True
            self.abandoned += 1

    def submit(self, pending: Pending) -> Future:
        pending.number = next(self.numbers)
        self.queue.put(pending)
        return pending.future

    def _loop(self) -> None:
        waiting: list[Pending] = []
        while True:
            if not waiting:
                first = self.queue.get()
                if first is None:
                    return
                waiting.append(first)
            # While several clients are active (the last batch held more than one request), wait a moment for the
            # follow-ups of clients it just answered: without it, clients settle into cohorts that take turns in
            # half-full batches. Otherwise collect requests as long as they keep coming (gaps under 5 ms): a burst
            # is batched whole and a lone client waits 5 ms at most.
            busy = self.last_requests > 1
            deadline = time.monotonic() + self.window_s
            while (left := deadline - time.monotonic()) > 0 or not self.queue.empty():
                try:
                    item = self.queue.get(timeout=max(0.0, left if busy else min(left, 0.005)))
                except queue.Empty:
                    break
                if item is None:
                    return
                waiting.append(item)
            for p in [p for p in waiting if p.abandoned]:  # queued, and nobody waits for it any more
                p.future.cancel()
            waiting = [p for p in waiting if not p.abandoned]
            if not waiting:
                continue
            key = waiting[0].group()
            batch, rows = [], 0
            for p in [p for p in waiting if p.group() == key]:
                if batch and rows + p.n > self.max_batch:
                    break
                batch.append(p)
                rows += p.n
            waiting = [p for p in waiting if all(p is not b for b in batch)]
            self.last_requests = len(batch)
            self._run(batch)

    def _run(self, batch: list[Pending]) -> None:
        try:
            results = self._decode(batch)
        except Exception as err:  # noqa: BLE001 - the requests get the error; the server keeps serving
            log.exception("decoding failed")
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(err)
            return
        for p, choices in zip(batch, results, strict=True):
            p.future.set_result(choices)

    def _decode(self, batch: list[Pending]) -> list[list[Choice]]:
        for p in batch:
            if p.adapter is not None and p.adapter[0] not in self.engine.adapters:
                self.engine.add_adapter(p.adapter[0], p.adapter[1])
        model = self.engine.load()
        rows = [(p, i) for p in batch for i in range(p.n)]
        names = [p.adapter[0] if p.adapter else "__base__" for p, _ in rows] if self.engine.adapters else None
        prompts = self._prompt_logprobs(model, batch)
        streams = [TextStream(self.tokenizer, eot_ids=self.eot_ids, max_tokens=p.max_tokens, stop=p.stop)
                   for p, _ in rows]
        for (p, _), stream in zip(rows, streams, strict=True):
            if not p.max_tokens:  # echo only: nothing of this row is decoded
                stream.finish_reason = "length"

        def on_step(tokens: list[int]) -> None:
            for (p, i), stream, token in zip(rows, streams, tokens, strict=True):
                if p.abandoned:  # this row has ended (finished() says so); the batch decodes on for the others
                    continue
                delta = stream.add(token)
                if delta and p.on_delta is not None:
                    p.on_delta(i, delta)

        first = batch[0]
        rules = None if all(p.rules.plain for p in batch) else Rules([p.rules for p, _ in rows], self.tokenizer,
                                                                          self.eot_ids)
        if any(p.max_tokens for p in batch):  # max_tokens 0: the prompt's log-probabilities only (echo)
            try:
                sample(model, [p.prompt_ids for p, _ in rows], pad_id=self.tokenizer.pad_token_id,
                       eot_ids=self.eot_ids, max_new_tokens=max(p.max_tokens for p, _ in rows),
                       temperature=first.temperature, top_p=first.top_p, seed=first.seed, adapter_names=names,
                       on_step=on_step, rules=rules,
                       finished=lambda: [s.done or p.abandoned for (p, _), s in zip(rows, streams, strict=True)])
            except torch.OutOfMemoryError:
                if self.engine.cuda:
                    torch.cuda.empty_cache()
                raise
        self.batches += 1
        self.rows += len(rows)
        out: dict[int, list[Choice]] = {id(p): [] for p in batch}
        for row, ((p, i), stream) in enumerate(zip(rows, streams, strict=True)):
            delta = stream.finish()
            if delta and p.on_delta is not None:
                p.on_delta(i, delta)
            logprobs = rules.logprobs[row] if rules is not None and rules.want[row] else None
            end = (logprobs[len(stream.tokens)] if stream.end_token is not None and logprobs
                   and len(logprobs) > len(stream.tokens) else None)
            out[id(p)].append(Choice(stream.text, stream.finish_reason, len(stream.tokens), list(stream.tokens),
                                     None if logprobs is None else logprobs[: len(stream.tokens)],
                                     prompts.get(id(p)), stream.end_token, end))
            self.tokens += len(stream.tokens)
        return [out[id(p)] for p in batch]

    def _prompt_logprobs(self, model, batch: list[Pending]) -> dict[int, list]:
        """The prompt log-probabilities of the requests that asked for them (echo), by request."""
        asked = [p for p in batch if p.echo_top is not None]
        if not asked:
            return {}
        names = [p.adapter[0] if p.adapter else "__base__" for p in asked] if self.engine.adapters else None
        found = prompt_logprobs(model, [p.prompt_ids for p in asked], pad_id=self.tokenizer.pad_token_id,
                                top=max(p.echo_top for p in asked), adapter_names=names)
        return {id(p): [TokenLogprob(t.token, t.logprob, t.top[: p.echo_top]) for t in rows]
                for p, rows in zip(asked, found, strict=True)}
