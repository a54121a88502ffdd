"""Tool calls: what the model's reply says in its family's own syntax, as OpenAI's `tool_calls`, and a forced call
(`tool_choice` "required" or a named function) as a grammar the reply must follow.

Parsed syntaxes (from the reply's text with its special tokens, where the markers are):
- Qwen2.5 and other Hermes-style templates: `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, one or more;
- Mistral: `[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]` (v0.3) or `[TOOL_CALLS]name[ARGS]{...}` (later);
- Llama 3.1: `{"name": ..., "parameters": {...}}` (JSON tool calling), optionally after `<|python_tag|>`, several
  separated by `;`.
Only calls of functions the request offered count; a reply that is none of these stays text.

A forced call is decoded as vLLM decodes it: constrained to JSON, the named function's arguments, or for
"required" a list of `{"name", "parameters"}` objects of the offered functions. Every object of a function's
schema takes only the properties it declares unless it says otherwise (strict or not: a small model given room for
more never closes the object), and the list ends after MAX_PARALLEL_CALLS calls (1 with parallel_tool_calls false).
A forced reply is never text: the calls decoded whole come back as calls, and one the token limit cut comes back as
OpenAI returns it at the limit, its arguments the JSON text decoded so far, with finish_reason "length".
"""

from __future__ import annotations

import json
import random
import re
import string
import uuid

from lorakit.inference.grammar import strict

MAX_PARALLEL_CALLS = 16  # calls in one forced reply at most ("required" with parallel_tool_calls)
_DECODER = json.JSONDecoder()


def _json_values(text: str) -> list:
    """The JSON values at the start of text, one after another (separated by whitespace, `,` or `;`)."""
    out, at = [], 0
    while at < len(text):
        while at < len(text) and text[at] in " \t\r\n,;":
            at += 1
        if at >= len(text):
            break
        try:
            value, at = _DECODER.raw_decode(text, at)
        except json.JSONDecodeError:
            return out
        out.append(value)
    return out


def _call(obj, offered: set[str]) -> dict | None:
    if not isinstance(obj, dict) or obj.get("name") not in offered:
        return None
    arguments = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    return {"name": obj["name"], "arguments": arguments} if isinstance(arguments, dict) else None


def parse(raw: str, offered: set[str]) -> list[dict] | None:
    """The tool calls of a reply's raw text ([{name, arguments}]), or None when it is not a tool call."""
    text = raw.strip()
    if text.startswith("<tool_call>"):
        bodies = re.findall(r"<tool_call>(.*?)(?:</tool_call>|$)", text, flags=re.S)
        found = [_call(v, offered) for body in bodies for v in _json_values(body.strip())]
    elif text.startswith("[TOOL_CALLS]"):
        rest = text.removeprefix("[TOOL_CALLS]").strip()
        if "[ARGS]" in rest:
            found = []
            for part in rest.split("[TOOL_CALLS]"):
                name, _, args = part.partition("[ARGS]")
                values = _json_values(args.strip())
                found.append(_call({"name": name.strip(), "arguments": values[0]}, offered) if values else None)
        else:
            values = _json_values(rest)
            found = [_call(v, offered) for v in (values[0] if values and isinstance(values[0], list) else values)]
    elif text.startswith(("<|python_tag|>", "{")):
        found = [_call(v, offered) for v in _json_values(text.removeprefix("<|python_tag|>").strip())]
    else:
        return None
    return found if found and all(found) else None


def vllm_parser(template: str) -> str | None:
    """vLLM's tool-call parser for the syntax a chat template teaches (None: the template renders no tools)."""
    template = template or ""
    if "<tool_call>" in template:
        return "hermes"
    if "[TOOL_CALLS]" in template:
        return "mistral"
    if "<|python_tag|>" in template or "tools" in template:
        return "llama3_json"
    return None


def new_id(template: str) -> str:
    """A tool call's id: Mistral's templates take 9 letters and digits only; others OpenAI's `call_...`."""
    if "[TOOL_CALLS]" in (template or ""):
        return "".join(random.choices(string.ascii_letters + string.digits, k=9))
    return f"call_{uuid.uuid4().hex[:24]}"


def openai_calls(calls: list[dict], template: str) -> list[dict]:
    """OpenAI's tool_calls; a call whose arguments are text (cut by the token limit) keeps that text as it is."""
    return [{"id": new_id(template), "type": "function",
             "function": {"name": c["name"], "arguments": c["arguments"] if isinstance(c["arguments"], str)
                          else json.dumps(c["arguments"], ensure_ascii=False)}}
            for c in calls]


def _parameters(tool: dict) -> dict:
    return strict(tool["function"].get("parameters") or {"type": "object", "properties": {}})


def forced_schema(tools: list[dict], choice, parallel: bool) -> dict | None:
    """The JSON schema a forced reply follows (None when the call is not forced)."""
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        return _parameters(next(t for t in tools if t["function"]["name"] == name))
    if choice != "required":
        return None
    options = [{"type": "object", "properties": {"name": {"const": t["function"]["name"]}, "parameters": _parameters(t)},
                "required": ["name", "parameters"], "additionalProperties": False} for t in tools]
    return {"type": "array", "minItems": 1, "maxItems": MAX_PARALLEL_CALLS if parallel else 1,
            "items": {"anyOf": options}}


_CALL_START = re.compile(r'\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)"\s*,\s*"parameters"\s*:\s*')


def forced_calls(text: str, tools: list[dict], choice) -> tuple[list[dict], bool]:
    """The calls of a reply decoded under forced_schema ({name, arguments}) and whether the reply is whole. In a
    reply the token limit cut, the calls decoded whole keep their arguments as objects and the call cut short has
    its arguments as the JSON text decoded so far."""
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return [{"name": name, "arguments": text}], False
        return [{"name": name, "arguments": value}], True
    offered = {t["function"]["name"] for t in tools}
    calls, at = [], text.find("[") + 1
    while at > 0:
        while text[at:at + 1] in (" ", "\n", "\t", "\r", ","):
            at += 1
        if text[at:at + 1] == "]":
            return calls, True
        try:
            value, at = _DECODER.raw_decode(text, at)
        except json.JSONDecodeError:
            break
        if (call := _call(value, offered)) is None:
            break
        calls.append(call)
    cut = _CALL_START.match(text, at) if at > 0 else None
    if cut and cut[1] in offered:
        calls.append({"name": cut[1], "arguments": text[cut.end():]})
    return calls, False
