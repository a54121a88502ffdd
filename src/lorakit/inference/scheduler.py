"""The server's requests, scheduled per decoding step: one worker thread owns lorakit's engine and runs one
decoding loop (lorakit.inference.decode); a request that arrives joins the running batch at the next step, each
row through its own adapter and with its own decoding settings (temperature, top_p, seed, stops, grammar, bias,
penalties, log-probabilities).

Fair share: the batch holds at most `max_batch` rows, and while requests wait, each request with rows decoding
or waiting is due an equal share of them. A request below its share takes its next row from the one furthest
above its share: that row leaves the batch and keeps what it has decoded, and joins again (its prompt and tokens
so far prefilled again) when there is room. So one request of n=32 and 2,000 tokens holds the whole batch only
while nobody else asks, and a short request's latency does not grow with a long one's length.

Rows that join while a batch runs are prefilled together: each prefill is a forward pass of its own, so while
others decode, newcomers join when JOIN_TOGETHER of them can, or JOIN_WAIT_STEPS steps after the last join.

A grammar (a JSON schema) is compiled off the decoding thread, before its request joins.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from lorakit.inference.decode import BASE, DecodeLoop, Row
from lorakit.inference.grammar import Constraint
from lorakit.inference.rules import RowDecoder, RowRules, TokenLogprob
from lorakit.inference.streaming import TextStream

log = logging.getLogger("lorakit.server")
JOIN_TOGETHER = 4  # newcomers prefilled together while a batch runs ...
JOIN_WAIT_STEPS = 4  # ... or fewer, this many decoding steps after the last join


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


@dataclass(eq=False)
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
    abandoned: bool = False  # its client left: its rows stop decoding, and it is not started if still queued
    rows: list[Row] = field(default_factory=list)
    constraints: list[Constraint | None] = field(default_factory=list)


def _choice(row: Row) -> Choice:
    stream, logprobs = row.stream, row.decoder.logprobs
    end = (logprobs[len(stream.tokens)] if stream.end_token is not None and logprobs
           and len(logprobs) > len(stream.tokens) else None)
    return Choice(stream.text, stream.finish_reason, len(stream.tokens), list(stream.tokens),
                  None if logprobs is None else logprobs[: len(stream.tokens)], row.prompt_logprobs,
                  stream.end_token, end)


class Scheduler:
    def __init__(self, engine, *, max_batch: int = 32):
        """engine: lorakit's Engine (lorakit.inference.engine); max_batch: rows decoded together at most."""
        self.engine, self.tokenizer, self.eot_ids = engine, engine.tokenizer, engine.eot_ids
        self.max_batch = max_batch
        self.queue: queue.Queue[Pending | None] = queue.Queue()
        self.waiting: list[Row] = []
        self.loop: DecodeLoop | None = None
        self.tokens = 0  # tokens decoded for the rows (each row's own, up to where it ended)
        self.abandoned = 0  # requests whose client left before the answer ended (their decoding stopped there)
        self.preempted = 0  # rows that left the batch to make room for a request below its share
        self._joined = 0  # the decoding step rows last joined at
        self._grammars = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lorakit-grammar")
        self._thread = threading.Thread(target=self._run, name="lorakit-decoding", daemon=True)

    @property
    def batches(self) -> int:
        """Decoding steps run (each over every row of the batch at that step)."""
        return self.loop.steps if self.loop is not None else 0

    @property
    def rows(self) -> int:
        """Rows decoded, added up over the steps (rows / batches: the batch's mean size)."""
        return self.loop.row_steps if self.loop is not None else 0

    def start(self, *, preload: bool = True) -> None:
        """Start decoding; preload: load the model now (else on the first request: with vLLM decoding the
        chat routes, only a model grader asks lorakit's engine)."""
        if preload:
            self.engine.load()
        self._thread.start()

    def stop(self) -> None:
        self.queue.put(None)
        self._thread.join(timeout=30)
        self._grammars.shutdown(wait=False, cancel_futures=True)

    def abandon(self, pending: Pending) -> None:
        """The client is gone: its rows leave the batch at the next step (or never start)."""
        if not pending.abandoned and not pending.future.done():
            pending.abandoned = True
            for row in pending.rows:
                row.abandoned = True
            self.abandoned += 1

    def submit(self, pending: Pending) -> Future:
        if pending.rules.grammar is None:
            self.queue.put(pending)
        else:  # compiling a large schema takes seconds: not on the decoding thread
            self._grammars.submit(self._compile, pending)
        return pending.future

    def _compile(self, pending: Pending) -> None:
        try:
            pending.constraints = [Constraint(pending.rules.grammar, self.tokenizer, self.eot_ids)
                                   for _ in range(pending.n)]
        except Exception as err:  # noqa: BLE001 - the request gets the error
            pending.future.set_exception(err)
            return
        self.queue.put(pending)

    def _rows(self, p: Pending) -> list[Row]:
        rows = []
        for i in range(p.n):
            seed = None if p.seed is None else (p.seed + 7919 * i) % 2**63  # each choice its own draw, in range
            stream = TextStream(self.tokenizer, eot_ids=self.eot_ids, max_tokens=p.max_tokens, stop=p.stop)
            if not p.max_tokens:  # echo only: nothing of this row is decoded
                stream.finish_reason = "length"
            decoder = RowDecoder(p.rules, temperature=p.temperature, top_p=p.top_p, seed=seed,
                                 constraint=p.constraints[i] if p.constraints else None)
            on_text = (lambda text, i=i: p.on_delta(i, text)) if p.on_delta is not None else None
            rows.append(Row(list(p.prompt_ids), stream, decoder, p.adapter[0] if p.adapter else BASE,
                            p.echo_top, on_text, owner=p, index=i))
        return rows

    def _take(self, block: bool) -> bool:
        """Move what the queue holds into `waiting` (waiting for the first request when idle); False: stop."""
        while True:
            try:
                item = self.queue.get(block=block)
            except queue.Empty:
                return True
            if item is None:
                return False
            block = False
            if item.abandoned:  # queued, and nobody waits for it any more
                item.future.cancel()
                continue
            item.rows = self._rows(item)
            self.waiting += item.rows

    def _run(self) -> None:
        while self._take(block=not self.waiting and not (self.loop and self.loop.rows)):
            try:
                self._admit()
                ended = self.loop.step() if self.loop is not None else []
            except Exception as err:  # noqa: BLE001 - the requests in the batch get the error; serving goes on
                log.exception("decoding failed")
                self._fail(err)
                continue
            for row in ended:
                self._ended(row)

    def _ended(self, row: Row) -> None:
        self.tokens += len(row.stream.tokens)
        p = row.owner
        if all(r.done for r in p.rows) and not p.future.done():
            for r in p.rows:
                if r.stream.finish_reason is None:
                    r.finish()
            p.future.set_result([_choice(r) for r in p.rows])

    def _fail(self, err: Exception) -> None:
        """A decoding step failed: every request in the batch gets the error, and a new batch starts. With no
        batch yet (the model itself failed to load), the waiting requests get it: they would wait for ever."""
        failed = self.loop.rows if self.loop is not None and self.loop.rows else self.waiting
        self._refuse({id(r.owner): r.owner for r in failed}.values(), err)
        if self.loop is not None:
            self.loop.clear()

    def _refuse(self, requests, err: Exception) -> None:
        """These requests get the error; their rows still waiting are dropped."""
        failed = set()
        for p in requests:
            failed.add(id(p))
            if not p.future.done():
                p.future.set_exception(err)
        self.waiting = [r for r in self.waiting if id(r.owner) not in failed]
        if self.engine.cuda:
            torch.cuda.empty_cache()

    def _model(self) -> DecodeLoop:
        model = self.engine.load()
        if self.loop is None:
            self.loop = DecodeLoop(model, pad_id=self.tokenizer.pad_token_id, mixed=bool(self.engine.adapters))
        self.loop.model, self.loop.mixed = model, bool(self.engine.adapters)  # an adapter may have been added
        return self.loop

    def _admit(self) -> None:
        """Rows join the batch as room and fair shares allow (the module's docstring)."""
        for row in [r for r in self.waiting if r.abandoned]:
            self.waiting.remove(row)
            self._ended(row)
        if not self.waiting:
            return
        for p in {id(r.owner): r.owner for r in self.waiting}.values():
            if p.adapter is not None and p.adapter[0] not in self.engine.adapters:
                try:
                    self.engine.add_adapter(p.adapter[0], p.adapter[1])
                except Exception as err:  # noqa: BLE001 - this request gets the error
                    self._refuse([p], err)
        loop = self._model()
        joining, leaving = plan(loop.rows, self.waiting, self.max_batch)
        if loop.rows and not leaving and len(joining) < JOIN_TOGETHER and loop.steps - self._joined < JOIN_WAIT_STEPS:
            return  # the batch decodes on; the newcomers join together in a step or two
        self._joined = loop.steps
        if leaving:
            loop.evict(leaving)
            self.preempted += len(leaving)
        self.waiting = leaving + [r for r in self.waiting if all(r is not j for j in joining)]
        if joining:
            try:
                loop.admit(joining)  # the running batch is left as it was when a prefill fails
            except Exception as err:  # noqa: BLE001 - the joining requests get the error; the batch decodes on
                log.exception("prefill failed")
                self._refuse({id(r.owner): r.owner for r in joining}.values(), err)
                return
            for row in joining:
                if all(row is not r for r in loop.rows):  # ended at its prefill (echo only)
                    row.finish()
                    self._ended(row)


def plan(active: list[Row], waiting: list[Row], max_batch: int) -> tuple[list[Row], list[Row]]:
    """Which waiting rows join and which active rows leave to make room: each request (a row's owner) with rows
    active or waiting is due max_batch // requests rows; free room goes to the request with the fewest rows
    decoding (the earliest first), and a request below its share takes a row from the one furthest above it
    (its row with the fewest tokens: the cheapest to prefill again)."""
    owners: dict[int, int] = {}  # id(owner) -> rows decoding (after this plan)
    for r in active + waiting:
        owners.setdefault(id(r.owner), 0)
    for r in active:
        owners[id(r.owner)] += 1
    share = max(1, max_batch // max(1, len(owners)))
    queued = {}
    for r in waiting:
        queued.setdefault(id(r.owner), []).append(r)
    room, joining, leaving = max_batch - len(active), [], []
    staying = list(active)
    while queued:
        owner = min(queued, key=lambda o: owners[o])  # dicts keep arrival order: ties go to the earliest
        if room <= 0:
            if owners[owner] >= share:
                break
            over = max(owners, key=lambda o: owners[o])
            if owners[over] <= share:
                break
            victim = min((r for r in staying if id(r.owner) == over), key=lambda r: len(r.tokens))
            staying.remove(victim)
            leaving.append(victim)
            owners[over] -= 1
            room += 1
        joining.append(queued[owner].pop(0))
        owners[owner] += 1
        room -= 1
        if not queued[owner]:
            del queued[owner]
    return joining, leaving
