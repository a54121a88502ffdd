"""Per-row decoding rules on the tiny model, in one batch: logit_bias moves the greedy choice, penalties are
OpenAI's formula, a JSON-schema grammar gives answers that validate even from random weights, and the reported
log-probabilities are those of a plain forward pass."""

from __future__ import annotations

import json

import pytest
import torch

from lorakit.inference.decode import DecodeLoop, Row, run
from lorakit.inference.grammar import Constraint, GrammarError, json_grammar
from lorakit.inference.rules import RowDecoder, RowRules
from lorakit.inference.streaming import TextStream


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    from helpers import compose_cfg
    from lorakit.models.loading import load_base, load_model

    base = load_base(compose_cfg("model=tiny-llama").model)
    return load_model(base, {}, cuda=False).eval(), base.tokenizer, base.eot_ids


def _decode(tiny, prompts, rules, steps=6, echo=None):
    """Decode the prompts in one batch, each row with its rules; (prompt ids, each row's tokens, the rows)."""
    model, tokenizer, eot = tiny
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    rows = [Row(i, TextStream(tokenizer, eot_ids=eot, max_tokens=steps), RowDecoder(
        r, constraint=Constraint(r.grammar, tokenizer, eot) if r.grammar else None), echo_top=echo)
        for i, r in zip(ids, rules, strict=True)]
    run(DecodeLoop(model, pad_id=tokenizer.pad_token_id, mixed=False), rows, max_rows=len(rows))
    return ids, [r.tokens for r in rows], rows


def test_logit_bias_and_penalties_apply_to_their_own_row_only(tiny):
    prompts = ["hello there", "hello there", "hello there"]
    _, plain, _ = _decode(tiny, prompts, [RowRules(), RowRules(), RowRules()])
    banned = plain[0][0]
    _, out, _ = _decode(tiny, prompts, [RowRules(), RowRules(logit_bias={banned: -100.0, 7: 100.0}),
                                        RowRules(frequency_penalty=2.0, presence_penalty=2.0)])
    assert out[0] == plain[0]  # the rows without rules decode as without any
    assert out[1][0] == 7 and banned not in out[1]
    assert len(set(plain[2])) < len(plain[2]) and out[2] != plain[2]  # the random model repeats: penalties change it


def test_a_penalised_step_is_openais_formula_over_the_tokens_so_far(tiny):
    decoder = RowDecoder(RowRules(frequency_penalty=0.5, presence_penalty=0.25))
    scores = torch.zeros(40)
    scores[9] = 1.0
    assert decoder.choose(scores) == 9  # the first step: nothing generated yet
    assert decoder.choose(scores) == 9  # 1 - 0.75 still leads
    after = decoder.scores(scores)
    assert after[9] == pytest.approx(1 - (0.5 * 2 + 0.25)) and after[8] == 0


def test_a_seeded_row_draws_the_same_whatever_shares_its_batch(tiny):
    model, tokenizer, eot = tiny

    def sampled(prompts, seeds):
        ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        rows = [Row(i, TextStream(tokenizer, eot_ids=eot, max_tokens=8), RowDecoder(temperature=1.0, top_p=0.9,
                                                                                   seed=s))
                for i, s in zip(ids, seeds, strict=True)]
        run(DecodeLoop(model, pad_id=tokenizer.pad_token_id, mixed=False), rows, max_rows=len(rows))
        return [r.tokens for r in rows]

    alone = sampled(["hello there"], [7])[0]
    assert sampled(["a much longer prompt than that", "hello there", "x"], [None, 7, 3])[1] == alone
    assert sampled(["hello there"], [8])[0] != alone


def test_a_json_schema_grammar_gives_valid_json_from_random_weights(tiny):
    model, tokenizer, eot = tiny
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}, "size": {"enum": ["S", "M", "L"]}},
              "required": ["ok", "size"], "additionalProperties": False}
    grammar = json_grammar(schema, tokenizer, eot)
    ids, out, _ = _decode(tiny, ["a", "the weather"], [RowRules(grammar=grammar), RowRules(grammar=grammar)], 40)
    for row in out:
        text = tokenizer.decode([t for t in row if t not in eot and t != tokenizer.pad_token_id])
        value = json.loads(text)
        assert set(value) == {"ok", "size"} and isinstance(value["ok"], bool) and value["size"] in "SML"
    with pytest.raises(GrammarError):
        json_grammar({"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}}, tokenizer, eot)


def test_logprobs_of_chosen_and_prompt_tokens_are_those_of_a_forward_pass(tiny):
    model, tokenizer, eot = tiny
    ids, out, rows = _decode(tiny, ["hello there", "a much longer prompt than that"],
                             [RowRules(top_logprobs=3), RowRules(top_logprobs=0)], 4, echo=2)
    for row in range(2):
        full = torch.tensor([ids[row] + out[row][:3]])
        with torch.no_grad():
            dist = torch.log_softmax(model(full).logits[0].float(), -1)
        for step, got in enumerate(rows[row].decoder.logprobs[:3]):
            expected = dist[len(ids[row]) - 1 + step]
            assert got.token == out[row][step]
            assert got.logprob == pytest.approx(float(expected[got.token]), abs=1e-4)
            assert [t for t, _ in got.top] == (torch.topk(expected, 3).indices.tolist() if row == 0 else [])
    scored = [r.prompt_logprobs for r in rows]  # left-padded with each other, as alone
    for row, prompt in enumerate(ids):
        with torch.no_grad():
            dist = torch.log_softmax(model(torch.tensor([prompt])).logits[0].float(), -1)
        assert scored[row][0].logprob is None and [t.token for t in scored[row]] == prompt
        for t in range(1, len(prompt)):
            assert scored[row][t].logprob == pytest.approx(float(dist[t - 1, prompt[t]]), abs=1e-4)
