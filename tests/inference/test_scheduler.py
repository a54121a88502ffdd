"""Decoding scheduled per step, on the tiny model: rows that join a running batch, or leave it and join again,
answer exactly as alone; a short request is answered while a long one that fills the batch still decodes; the
fair-share plan."""

from __future__ import annotations

import contextlib
import time

import pytest

from lorakit.inference.decode import DecodeLoop, Row
from lorakit.inference.rules import RowDecoder, RowRules
from lorakit.inference.scheduler import Pending, plan
from lorakit.inference.streaming import TextStream


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    from helpers import compose_cfg
    from lorakit.models.loading import load_base, load_model

    base = load_base(compose_cfg("model=tiny-llama").model)
    return base, load_model(base, {}, cuda=False).eval()


@contextlib.contextmanager
def _scheduler(base, max_batch: int):
    from lorakit.inference.engine import Engine
    from lorakit.inference.scheduler import Scheduler

    scheduler = Scheduler(Engine(base, cuda=False), max_batch=max_batch)
    scheduler.start()
    try:
        yield scheduler
    finally:
        scheduler.stop()


def _row(base, prompt: str, tokens: int) -> Row:
    ids = base.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    no_end = RowRules(logit_bias={t: -100.0 for t in base.eot_ids})  # every row runs its whole length
    return Row(ids, TextStream(base.tokenizer, eot_ids=base.eot_ids, max_tokens=tokens), RowDecoder(no_end))


def test_rows_joining_and_leaving_mid_way_answer_as_alone(tiny):
    base, model = tiny
    prompts = ["hello there", "a much longer prompt than the first one", "x", "what is the weather like"]

    def alone(prompt):
        loop, row = DecodeLoop(model, pad_id=base.tokenizer.pad_token_id, mixed=False), _row(base, prompt, 12)
        loop.admit([row])
        while loop.rows:
            loop.step()
        return row.tokens

    expected = [alone(p) for p in prompts]
    loop = DecodeLoop(model, pad_id=base.tokenizer.pad_token_id, mixed=False)
    rows = [_row(base, p, 12) for p in prompts]
    loop.admit(rows[:1])
    for _ in range(3):
        loop.step()
    loop.admit(rows[1:3])  # join a batch 3 steps in, with longer and shorter prompts
    loop.step()
    loop.evict([rows[0]])  # leaves with 4 tokens decoded ...
    loop.step()
    loop.step()
    loop.admit([rows[0], rows[3]])  # ... and joins again: its prompt and tokens prefilled anew
    while loop.rows:
        loop.step()
    assert [r.tokens for r in rows] == expected
    assert all(r.stream.finish_reason == "length" for r in rows)


def test_a_short_request_is_answered_while_a_long_one_fills_the_batch(tiny):
    base, _ = tiny
    with _scheduler(base, max_batch=4) as scheduler:
        ids = base.tokenizer("tell me a long story", add_special_tokens=False)["input_ids"]
        no_end = RowRules(logit_bias={t: -100.0 for t in base.eot_ids})
        long = scheduler.submit(Pending(None, ids, max_tokens=400, temperature=1.0, n=4, rules=no_end))
        while scheduler.batches < 5:  # the long request decodes, its 4 rows filling the batch
            time.sleep(0.01)
        short_ids = base.tokenizer("hi", add_special_tokens=False)["input_ids"]
        alone_before = scheduler.batches
        short = scheduler.submit(Pending(None, short_ids, max_tokens=3))
        choices = short.result(timeout=60)
        assert not long.done(), "the short request waited for the long one"
        assert len(choices) == 1 and choices[0].tokens <= 3
        assert scheduler.preempted >= 1 and scheduler.batches - alone_before < 50
        longs = long.result(timeout=300)
        assert [c.tokens for c in longs] == [400] * 4 and all(c.finish_reason == "length" for c in longs)


def _rows(owner, n, tokens=0):
    rows = [Row([1], TextStream(None, eot_ids=set(), max_tokens=10), owner=owner, index=i) for i in range(n)]
    for r in rows:
        r.tokens = list(range(tokens))
    return rows


def test_the_plan_gives_each_request_its_share():
    long, short, other = object(), object(), object()
    running = _rows(long, 8, tokens=50)
    newest = running[-1]
    newest.tokens = [0]  # the cheapest to prefill again
    joining, leaving = plan(running, _rows(short, 1), max_batch=8)
    assert len(joining) == 1 and joining[0].owner is short and leaving == [newest]
    # room left: it goes to the request with the fewest rows decoding, the earliest first
    joining, leaving = plan(_rows(long, 2), _rows(long, 4) + _rows(short, 2) + _rows(other, 2), max_batch=6)
    assert [r.owner for r in joining] == [short, other, short, other] and not leaving
    # at its share, a request waits for room: nobody is preempted
    joining, leaving = plan(_rows(long, 4) + _rows(short, 4), _rows(short, 1), max_batch=8)
    assert not joining and not leaving


def test_seeded_choices_at_the_ends_of_the_seed_range_decode(tiny):
    """OpenAI's whole seed range decodes with n > 1, and a seed gives the same choices again (each its own)."""
    base, _ = tiny
    with _scheduler(base, max_batch=8) as scheduler:
        ids = base.tokenizer("hello", add_special_tokens=False)["input_ids"]
        asked = [scheduler.submit(Pending(None, ids, max_tokens=4, temperature=1.0, n=3, seed=seed))
                 for seed in (2**63 - 1, -(2**63), 5, 5)]
        answers = [[c.token_ids for c in f.result(timeout=60)] for f in asked]
        assert answers[2] == answers[3] and len({tuple(a) for a in answers[2]}) > 1  # repeatable, choices differ


def test_a_request_whose_prefill_fails_gets_the_error_and_the_batch_decodes_on(tiny):
    base, _ = tiny
    with _scheduler(base, max_batch=8) as scheduler:
        ids = base.tokenizer("tell me a story", add_special_tokens=False)["input_ids"]
        no_end = RowRules(logit_bias={t: -100.0 for t in base.eot_ids})
        running = scheduler.submit(Pending(None, ids, max_tokens=60, rules=no_end))
        while scheduler.batches < 3:
            time.sleep(0.01)
        broken = scheduler.submit(Pending(None, [len(base.tokenizer) + 10**6], max_tokens=4))  # no such token
        with pytest.raises(IndexError):
            broken.result(timeout=60)
        assert [c.tokens for c in running.result(timeout=60)] == [60]  # not failed with it


def test_requests_waiting_when_the_model_fails_to_load_get_the_error(tiny, tmp_path):
    import dataclasses

    from lorakit.inference.engine import Engine
    from lorakit.inference.scheduler import Scheduler

    base, _ = tiny
    scheduler = Scheduler(Engine(dataclasses.replace(base, path=str(tmp_path / "gone")), cuda=False))
    scheduler.start(preload=False)  # as the server with vLLM decoding: loaded on the first request
    try:
        ids = base.tokenizer("hello", add_special_tokens=False)["input_ids"]
        with pytest.raises(OSError):
            scheduler.submit(Pending(None, ids, max_tokens=4)).result(timeout=60)
    finally:
        scheduler.stop()
