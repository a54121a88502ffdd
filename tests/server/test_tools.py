"""Tool calls on tiny models of the three families lorakit ships configs for (Llama 3.1, Mistral v0.3, Qwen2.5),
with their real chat templates: what each template renders as an assistant's tool call is parsed back into the
same calls; over real HTTP with the official SDK, the tools reach the prompt, a forced call (tool_choice
"required" or a named function) comes back as tool_calls with arguments that fit the function's schema, and the
conversation with the call and its result renders for the next turn."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
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
# as the SDK's plain dict or LangChain's @tool send it: not strict, nothing said of other properties
LOOSE = {"type": "function", "function": {"name": "get_weather", "description": "The weather in a city", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}


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
        yield request.param, srv, folder


def test_forced_tool_calls_come_back_as_tool_calls_and_the_conversation_goes_on(family_server):
    family, server, folder = family_server
    client = server.client(key="local")
    model = client.models.list().data[0].id
    assert model == Path(folder).name  # a model served from a folder goes by the folder's name, its path an alias
    assert client.models.retrieve(folder).id == model
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


def test_a_forced_schema_takes_only_declared_properties_and_a_bounded_list():
    schema = tool_syntax.forced_schema([LOOSE, TIME], "required", parallel=True)
    call = {"name": "get_weather", "parameters": {"city": "Paris"}}
    jsonschema.validate([call, {"name": "get_time", "parameters": {"zone": "UTC"}}], schema)
    for wrong in ([{**call, "parameters": {"city": "Paris", "country": "FR"}}],  # a property LOOSE never declares
                  [call] * (tool_syntax.MAX_PARALLEL_CALLS + 1), []):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([call, call], tool_syntax.forced_schema([LOOSE], "required", parallel=False))
    open_ended = {**LOOSE, "function": {**LOOSE["function"], "parameters": {
        **LOOSE["function"]["parameters"], "additionalProperties": True}}}  # the schema allows more: still allowed
    jsonschema.validate({"city": "Paris", "country": "FR"},
                        tool_syntax.forced_schema([open_ended], {"type": "function", "function": {"name": "get_weather"}},
                                                  parallel=True))


def test_a_forced_reply_cut_by_the_token_limit_keeps_its_whole_calls():
    cut = '[{"name":"get_weather","parameters":{"city":"Paris"}},{"name":"get_weather","parameters":{"city":"Pa'
    calls, whole = tool_syntax.forced_calls(cut, [LOOSE], "required")
    assert not whole and calls == [{"name": "get_weather", "arguments": {"city": "Paris"}},
                                   {"name": "get_weather", "arguments": '{"city":"Pa'}]
    assert tool_syntax.forced_calls(cut[: cut.index("},{") + 2] + "]", [LOOSE], "required") == ([calls[0]], True)
    assert tool_syntax.forced_calls('[{"na', [LOOSE], "required") == ([], False)
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert tool_syntax.forced_calls('{"city":"Os', [LOOSE], named) == ([{"name": "get_weather",
                                                                        "arguments": '{"city":"Os'}], False)
    [as_sent] = tool_syntax.openai_calls([calls[1]], "")
    assert as_sent["function"]["arguments"] == '{"city":"Pa'  # as OpenAI returns a call cut at the limit


@pytest.mark.parametrize("tools", [[WEATHER, TIME], [LOOSE, TIME]], ids=["strict", "loose"])
def test_forced_calls_come_back_as_calls_never_as_text(family_server, tools):
    _, server, _ = family_server
    client = server.client(key="local")
    model = client.models.list().data[0].id
    declared = {t["function"]["name"]: set(t["function"]["parameters"]["properties"]) for t in tools}
    for choice, parallel in (("required", True), ("required", False),
                             ({"type": "function", "function": {"name": "get_weather"}}, True)):
        answer = client.chat.completions.create(model=model, messages=ASK, tools=tools, tool_choice=choice,
                                                parallel_tool_calls=parallel, temperature=0, max_tokens=48)
        [reply] = answer.choices
        assert reply.message.content is None and reply.message.tool_calls, (choice, reply)
        assert len(reply.message.tool_calls) <= (tool_syntax.MAX_PARALLEL_CALLS if parallel else 1)
        whole = reply.message.tool_calls if reply.finish_reason != "length" else reply.message.tool_calls[:-1]
        assert reply.finish_reason in ("length", "stop" if isinstance(choice, dict) else "tool_calls")
        for call in whole:
            assert set(json.loads(call.function.arguments)) <= declared[call.function.name]
        assert all(call.function.name in declared for call in reply.message.tool_calls)
