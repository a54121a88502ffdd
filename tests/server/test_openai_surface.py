"""The OpenAI surface real clients use, driven with the official SDK over real HTTP against lorakit.serve on the
tiny model: legacy completions whose logprobs (echo included) are a direct forward pass, chat logprobs,
structured output that validates (the SDK's .parse()), the Responses API plain and streamed, and every field
either honoured or refused naming it."""

from __future__ import annotations

import json
from typing import Literal

import httpx
import pytest
import torch
from pydantic import BaseModel

CHAT = {"model": "tiny-llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


class Weather(BaseModel):
    city: Literal["Paris", "Oslo"]
    rain: bool
    level: Literal[1, 2, 3]


@pytest.fixture(scope="module")
def tiny_model(tiny_dir):
    from helpers import compose_cfg
    from lorakit.models.loading import load_base, load_model

    base = load_base(compose_cfg("model=tiny-llama").model)
    return load_model(base, {}, cuda=False).eval(), base.tokenizer


def test_completions_logprobs_with_echo_are_those_of_a_direct_forward_pass(server, tiny_model):
    model, tokenizer = tiny_model
    client = server.client()
    prompts = [tokenizer("The capital of France is")["input_ids"], tokenizer("A b")["input_ids"]]
    answer = client.completions.create(model="tiny-llama", prompt=prompts, max_tokens=2, temperature=0, logprobs=2,
                                       echo=True)
    assert [c.index for c in answer.choices] == [0, 1]
    for ids, choice in zip(prompts, answer.choices, strict=True):
        values = choice.logprobs.token_logprobs
        assert values[0] is None and len(values) == len(ids) + 2
        generated = tokenizer(choice.text, add_special_tokens=False)["input_ids"][len(ids):]
        full = ids + generated[:2] if len(generated) >= 2 else ids
        with torch.no_grad():
            dist = torch.log_softmax(model(torch.tensor([full])).logits[0].float(), -1)
        for t in range(1, len(full)):
            assert values[t] == pytest.approx(float(dist[t - 1, full[t]]), abs=1e-3), t
        assert len(choice.logprobs.top_logprobs[1]) == 2
    only = client.completions.create(model="tiny-llama", prompt=prompts[0], max_tokens=0, echo=True, logprobs=0)
    assert len(only.choices[0].logprobs.token_logprobs) == len(prompts[0]) and only.usage.completion_tokens == 0
    plain = client.completions.create(model="tiny-llama", prompt="hello", max_tokens=3, temperature=0)
    assert plain.choices[0].logprobs is None and plain.usage.completion_tokens <= 3


def test_a_completion_that_ends_on_the_end_of_turn_returns_that_token_as_lm_eval_reads_it(server, tiny_model):
    """lm-eval's loglikelihood request (max_tokens 1, echo, logprobs 1) where the model's next token is its end of
    turn (made so with logit_bias, which leaves the reported log-probabilities the model's own): the answer holds
    prompt + 1 tokens, the last being the end of turn with its log-probability from a forward pass."""
    from helpers import compose_cfg
    from lorakit.models.loading import load_base

    model, tokenizer = tiny_model
    eot = min(load_base(compose_cfg("model=tiny-llama").model).eot_ids)
    ids = tokenizer("The capital of France is Paris.")["input_ids"]
    answer = httpx.post(f"{server.url}/v1/completions", headers={"authorization": f"Bearer {server.key}"}, json={
        "model": "tiny-llama", "prompt": [ids], "max_tokens": 1, "echo": True, "logprobs": 1, "temperature": 0,
        "logit_bias": {str(eot): 100}}, timeout=60).json()
    [choice] = answer["choices"]
    values = choice["logprobs"]["token_logprobs"]
    assert len(values) == len(ids) + 1 and answer["usage"]["completion_tokens"] == 1
    assert choice["finish_reason"] == "stop" and choice["text"] == tokenizer.decode(ids, skip_special_tokens=False)
    with torch.no_grad():
        dist = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
    assert values[-1] == pytest.approx(float(dist[-1, eot]), abs=1e-3)  # the model's own, before the bias
    assert values[-2] == pytest.approx(float(dist[-2, ids[-1]]), abs=1e-3)  # the answer's last token is kept
    assert choice["logprobs"]["tokens"][-1] == tokenizer.decode([eot], skip_special_tokens=False)


def test_chat_logprobs_and_structured_output_that_validates(server):
    client = server.client()
    answer = client.chat.completions.create(model="tiny-llama", messages=[{"role": "user", "content": "hi"}],
                                            max_tokens=4, temperature=0, logprobs=True, top_logprobs=3)
    content = answer.choices[0].logprobs.content
    assert len(content) == answer.usage.completion_tokens and all(len(t.top_logprobs) == 3 for t in content)
    assert all(t.logprob <= 0 and t.top_logprobs[0].logprob >= t.logprob for t in content)
    parsed = client.chat.completions.parse(model="tiny-llama", messages=[{"role": "user", "content": "weather?"}],
                                           max_tokens=60, temperature=1.0, seed=3, response_format=Weather)
    assert isinstance(parsed.choices[0].message.parsed, Weather)  # from random weights: the grammar holds it
    loose = client.chat.completions.create(model="tiny-llama", messages=[{"role": "user", "content": "json"}],
                                           max_tokens=40, temperature=0, response_format={"type": "json_object"})
    if loose.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(loose.choices[0].message.content), dict)


def test_the_responses_api_answers_plain_and_streamed(server):
    client = server.client()
    plain = client.responses.create(model="tiny-llama", input="hello", instructions="Be brief.",
                                    max_output_tokens=3, temperature=0)
    assert plain.status == "incomplete" and plain.incomplete_details.reason == "max_output_tokens"
    assert plain.output_text and plain.usage.output_tokens == 3
    schema = {"type": "json_schema", "name": "w", "schema": Weather.model_json_schema(), "strict": True}
    with client.responses.stream(model="tiny-llama", input=[{"role": "user", "content": "weather?"}],
                                 max_output_tokens=60, temperature=0, text={"format": schema}) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"] and kinds[-1] == "response.completed"
    assert "response.output_text.delta" in kinds
    Weather.model_validate_json(final.output_text)
    again = client.responses.create(model="tiny-llama", input="weather?", max_output_tokens=60, temperature=0,
                                    text={"format": schema})
    assert again.output_text == final.output_text  # streamed and plain: the same greedy answer


def test_responses_include_honoured_ignored_or_refused_and_a_cut_reply_is_incomplete_throughout(server):
    """inspect-ai's default provider sends include ["reasoning.encrypted_content"] with store false: answered (no
    reasoning to include); output text log-probabilities are honoured; an unknown value is refused. A reply cut at
    max_output_tokens is incomplete, its message item too, and its stream ends with response.incomplete (what
    OpenAI sends at the limit)."""
    client = server.client()
    asked = {"model": "tiny-llama", "input": "hello", "max_output_tokens": 3, "temperature": 0, "store": False}
    plain = client.responses.create(**asked, include=["reasoning.encrypted_content"])
    assert plain.status == "incomplete" and plain.output[0].status == "incomplete" and plain.output_text
    assert plain.output[0].content[0].logprobs == []
    scored = client.responses.create(**asked, include=["message.output_text.logprobs"], top_logprobs=2)
    [text] = scored.output[0].content
    assert text.text == plain.output_text and len(text.logprobs) == scored.usage.output_tokens == 3
    assert all(len(t.top_logprobs) == 2 and t.top_logprobs[0].logprob >= t.logprob for t in text.logprobs)
    chat = client.chat.completions.create(model="tiny-llama", messages=[{"role": "user", "content": "hello"}],
                                          max_tokens=3, temperature=0, logprobs=True)
    assert [t.logprob for t in text.logprobs] == pytest.approx([t.logprob for t in chat.choices[0].logprobs.content])
    refused = httpx.post(f"{server.url}/v1/responses", headers={"authorization": f"Bearer {server.key}"},
                         json={**asked, "include": ["reasoning.plaintext"]}, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "include[0]"
    with client.responses.stream(**asked, include=["message.output_text.logprobs"]) as stream:
        events = list(stream)
    assert events[-1].type == "response.incomplete" and events[-1].response.output[0].status == "incomplete"
    item_done = next(e for e in events if e.type == "response.output_item.done")
    assert item_done.item.status == "incomplete"
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert "".join(e.delta for e in deltas) == plain.output_text and sum(len(e.logprobs) for e in deltas) == 3


@pytest.mark.parametrize(("extra", "param"), [
    ({"frequency_penalty": 99}, "frequency_penalty"), ({"presence_penalty": -3}, "presence_penalty"),
    ({"logit_bias": {"99999999": 1}}, "logit_bias.99999999"), ({"logit_bias": {"5": 101}}, "logit_bias.5"),
    ({"made_up": 1}, "made_up"), ({"store": True}, "store"), ({"reasoning_effort": "low"}, "reasoning_effort"),
    ({"top_logprobs": 2}, "top_logprobs"), ({"response_format": {"type": "xml"}}, "response_format"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "a b"}}}, "response_format.json_schema.name"),
])
def test_a_field_that_is_not_honoured_is_refused_naming_it(server, extra, param):
    response = httpx.post(f"{server.url}/v1/chat/completions", json={**CHAT, **extra},
                          headers={"authorization": f"Bearer {server.key}"}, timeout=60)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param, response.text


def test_other_routes_refuse_unknown_fields_and_a_missing_route_says_what_is_served(server):
    headers = {"authorization": f"Bearer {server.key}"}
    for route, body, param in (("/v1/completions", {"model": "tiny-llama", "prompt": "a", "suffix": "b"}, "suffix"),
                               ("/v1/completions", {"model": "tiny-llama", "prompt": "a", "bogus": 1}, "bogus"),
                               ("/v1/responses", {"model": "tiny-llama", "input": "a", "previous_response_id": "r"},
                                "previous_response_id"),
                               ("/v1/responses", {"model": "tiny-llama", "input": "a", "tools": [{}]}, "tools")):
        response = httpx.post(f"{server.url}{route}", json=body, headers=headers, timeout=60)
        assert response.status_code == 400 and response.json()["error"]["param"] == param, response.text
    missing = httpx.get(f"{server.url}/v1/embeddings", headers=headers, timeout=60)
    error = missing.json()["error"]
    assert missing.status_code in (404, 405) and "/v1/responses" in error["message"] and error["type"]
    honoured = httpx.post(f"{server.url}/v1/chat/completions", headers=headers, timeout=60, json={
        **CHAT, "user": "u", "metadata": {"k": "v"}, "service_tier": "auto", "store": False, "frequency_penalty": 1})
    assert honoured.status_code == 200, honoured.text
