"""Tool calls on tiny models of the three families lorakit ships configs for (Llama 3.1, Mistral v0.3, Qwen2.5),
with their real chat templates: what each template renders as an assistant's tool call is parsed back into the
same calls; over real HTTP with the official SDK, the tools reach the prompt, a forced call (tool_choice
"required" or a named function) comes back as tool_calls with arguments that fit the function's schema, and the
conversation with the call and its result renders for the next turn."""

from __future__ import annotations

import json

import pytest

from helpers import serving
from lorakit.data.template import render
from lorakit.server import tools as tool_syntax

FAMILIES = ("llama-3.1", "mistral-v0.3", "qwen2.5")
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"enum": ["Paris", "Oslo"]}, "days": {"enum": [1, 2, 3]}},
                   "required": ["city", "days"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"zone": {"enum": ["UTC", "CET"]}}, "required": ["zone"],
    "additionalProperties": False}}}
ASK = [{"role": "user", "content": "Weather in Paris for 2 days?"}]


def _assistant_text(tokenizer, calls: list[dict]) -> str:
    """What the family's template writes for an assistant turn that makes these calls (special tokens kept)."""
    call_ids = ["abcDEF123", "ghiJKL456"]
    turn = {"role": "assistant", "content": "", "tool_calls": [
        {"id": call_ids[i], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
        for i, c in enumerate(calls)]}
    before = render(tokenizer, ASK, [WEATHER, TIME], add_generation_prompt=True)
    after = render(tokenizer, [*ASK, turn], [WEATHER, TIME], add_generation_prompt=False)
    assert after.startswith(before), "the template renders the turn after the generation prompt"
    text = after[len(before):]
    for end in ("<|eot_id|>", "<|eom_id|>", "</s>", "<|im_end|>"):
        text = text.split(end)[0]
    return text


@pytest.mark.parametrize("family", FAMILIES)
def test_the_tool_calls_each_template_writes_are_parsed_back(families, family):
    _, tokenizer, _ = families[family]
    calls = [{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}]
    if family != "llama-3.1":  # Llama 3.1's template writes one call per turn
        calls.append({"name": "get_time", "arguments": {"zone": "CET"}})
    text = _assistant_text(tokenizer, calls)
    assert tool_syntax.parse(text, {"get_weather", "get_time"}) == calls, text
    assert tool_syntax.parse(text, {"get_time"}) is None  # a function that was not offered is no call
    assert tool_syntax.parse("It is sunny in Paris.", {"get_weather"}) is None


@pytest.fixture(scope="module", params=FAMILIES)
def family_server(request, families, tmp_path_factory):
    folder, _, _ = families[request.param]
    with serving.running(tmp_path_factory.mktemp(request.param) / "data", "--model", folder, "--max-tokens", "64") as srv:
        yield request.param, srv


def test_forced_tool_calls_come_back_as_tool_calls_and_the_conversation_goes_on(family_server):
    family, server = family_server
    client = server.client(key="local")
    model = client.models.list().data[0].id
    named = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER, TIME], temperature=0,
                                           tool_choice={"type": "function", "function": {"name": "get_weather"}})
    [call] = named.choices[0].message.tool_calls
    assert call.function.name == "get_weather" and named.choices[0].message.content is None
    arguments = json.loads(call.function.arguments)
    assert arguments["city"] in ("Paris", "Oslo") and arguments["days"] in (1, 2, 3)
    assert len(call.id) == 9 if family == "mistral-v0.3" else call.id.startswith("call_")
    required = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER, TIME], temperature=0,
                                              tool_choice="required", parallel_tool_calls=False)
    assert required.choices[0].finish_reason == "tool_calls"
    [forced] = required.choices[0].message.tool_calls
    assert forced.function.name in ("get_weather", "get_time") and json.loads(forced.function.arguments)
    follow = [*ASK, named.choices[0].message.model_dump(exclude_none=True),
              {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "clear"}'}]
    answer = client.chat.completions.create(model=model, messages=follow, tools=[WEATHER, TIME], max_tokens=4)
    assert answer.usage.prompt_tokens > named.usage.prompt_tokens
    with_tools = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], max_tokens=1)
    without = client.chat.completions.create(model=model, messages=ASK, max_tokens=1)
    assert with_tools.usage.prompt_tokens > without.usage.prompt_tokens + 20  # the tools reach the prompt
    stream = client.chat.completions.create(model=model, messages=ASK, tools=[WEATHER], tool_choice="required",
                                            parallel_tool_calls=False,
                                            temperature=0, stream=True)
    deltas = [c.choices[0].delta for c in stream if c.choices]
    streamed = [d.tool_calls[0] for d in deltas if d.tool_calls]
    assert streamed and streamed[0].function.name == "get_weather"
