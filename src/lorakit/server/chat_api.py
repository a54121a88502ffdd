"""`GET /v1/models` and `POST /v1/chat/completions` (non-streaming and server-sent events), OpenAI's shapes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from lorakit.data.template import render
from lorakit.server.batching import Pending
from lorakit.server.errors import APIError

ROLES = {"system", "developer", "user", "assistant", "tool"}
UNSUPPORTED = {  # asked for, these would be silently missing from the answer: refused instead
    "logprobs": lambda v: bool(v), "top_logprobs": lambda v: v not in (None, 0),
    "response_format": lambda v: v is not None and (not isinstance(v, dict) or v.get("type") != "text"),
    "audio": lambda v: v is not None, "functions": lambda v: bool(v), "prediction": lambda v: v is not None,
    "modalities": lambda v: v not in (None, ["text"]),
}


async def json_body(request: Request) -> dict:
    try:
        body = json.loads(await request.body() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise APIError(400, f"the request body is not valid JSON ({err})", code="invalid_json") from None
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    return body


def _number(body: dict, name: str, default, low: float, high: float, kind=float):
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and value != int(value)):
        raise APIError(400, f"'{name}' must be {'an integer' if kind is int else 'a number'}, got {value!r}",
                       param=name, code="invalid_type")
    if not low <= value <= high:
        raise APIError(400, f"'{name}' must be between {low:g} and {high:g}, got {value!r}", param=name,
                       code="invalid_value")
    return kind(value)


def _content(value, i: int, role: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise APIError(400, f"messages[{i}].content: only text parts are supported ({{'type': 'text', "
                               "'text': ...}})", param=f"messages[{i}].content", code="invalid_value")
            parts.append(part["text"])
        return "".join(parts)
    raise APIError(400, f"messages[{i}].content must be a string or a list of text parts", param=f"messages[{i}].content",
                   code="invalid_type")


def messages_of(body: dict) -> list[dict]:
    """The request's messages in lorakit's chat form (developer -> system, text parts joined, tool-call
    arguments parsed), or a 400 naming the message at fault."""
    from lorakit.data.formats import Problem, _tool_calls

    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise APIError(400, "'messages' must be a non-empty list of {role, content} objects", param="messages",
                       code="invalid_value")
    out = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES:
            raise APIError(400, f"messages[{i}]: role must be one of {sorted(ROLES)}", param=f"messages[{i}].role",
                           code="invalid_value")
        role = "system" if msg["role"] == "developer" else msg["role"]
        converted = {"role": role, "content": _content(msg.get("content"), i, role)}
        if msg.get("tool_calls"):
            calls = _tool_calls(msg["tool_calls"], i + 1)
            if isinstance(calls, Problem):
                raise APIError(400, f"messages[{i}].tool_calls: {calls}", param=f"messages[{i}].tool_calls",
                               code="invalid_value")
            converted["tool_calls"] = calls
        for key in ("name", "tool_call_id"):
            if isinstance(msg.get(key), str):
                converted[key] = msg[key]
        out.append(converted)
    return out


def pending_of(body: dict, state) -> tuple[Pending, str, int]:
    """The validated request: (what the batcher decodes, the model id, prompt tokens)."""
    for name, refused in UNSUPPORTED.items():
        if refused(body.get(name)):
            raise APIError(400, f"'{name}' is not supported by lorakit.serve", param=name, code="unsupported_parameter")
    served = state.registry.get(body.get("model"))
    messages = messages_of(body)
    tools = body.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise APIError(400, "'tools' must be a list", param="tools", code="invalid_type")
    try:
        prompt = render(state.tokenizer, messages, tools or None, add_generation_prompt=True)
    except Exception as err:  # noqa: BLE001 - the chat template refuses this conversation (e.g. role order)
        raise APIError(400, f"the model's chat template cannot render these messages: {err}", param="messages",
                       code="invalid_value") from None
    prompt_ids = state.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    room = state.context - len(prompt_ids)
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    param = "max_completion_tokens" if body.get("max_completion_tokens") is not None else "max_tokens"
    max_tokens = _number({param: limit}, param, None, 1, 10**9, int)
    if room < 1 or (max_tokens or 0) > room:
        raise APIError(400, f"This model's maximum context length is {state.context} tokens. However, you requested "
                       f"{len(prompt_ids) + (max_tokens or 1)} tokens ({len(prompt_ids)} in the messages, "
                       f"{max_tokens or 1} in the completion). Please reduce the length of the messages or completion.",
                       param="messages", code="context_length_exceeded")
    stop = body.get("stop")
    stop = [stop] if isinstance(stop, str) else stop
    if stop is not None and (not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) for s in stop)):
        raise APIError(400, "'stop' must be a string or a list of up to 4 strings", param="stop", code="invalid_value")
    pending = Pending(
        adapter=(served.internal, served.adapter) if served.adapter is not None else None, prompt_ids=prompt_ids,
        max_tokens=max_tokens or min(state.default_max_tokens, room),
        temperature=_number(body, "temperature", 1.0, 0.0, 2.0), top_p=_number(body, "top_p", 1.0, 0.0, 1.0),
        seed=_number(body, "seed", None, -(2**63), 2**63 - 1, int), stop=stop or [],
        n=_number(body, "n", 1, 1, state.batcher.max_batch, int))
    if pending.top_p == 0:
        pending.temperature = 0.0  # nothing but the most likely token is left
    return pending, served.id, len(prompt_ids)


def router(state) -> APIRouter:
    api = APIRouter()

    @api.get("/v1/models")
    async def list_models():
        return {"object": "list", "data": state.registry.objects()}

    @api.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str):
        return state.registry.object(state.registry.get(model_id))

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await json_body(request)
        pending, model_id, prompt_tokens = pending_of(body, state)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(_stream(state, pending, completion_id, created, model_id, prompt_tokens,
                                             include_usage), media_type="text/event-stream",
                                     headers={"cache-control": "no-cache"})
        choices = await asyncio.wrap_future(state.batcher.submit(pending))
        completion_tokens = sum(c.tokens for c in choices)
        return {
            "id": completion_id, "object": "chat.completion", "created": created, "model": model_id,
            "choices": [{"index": i, "message": {"role": "assistant", "content": c.text, "refusal": None},
                         "logprobs": None, "finish_reason": c.finish_reason} for i, c in enumerate(choices)],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
            "system_fingerprint": state.fingerprint,
        }

    return api


async def _stream(state, pending: Pending, completion_id: str, created: int, model_id: str, prompt_tokens: int,
                  include_usage: bool):
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    pending.on_delta = lambda i, text: loop.call_soon_threadsafe(events.put_nowait, (i, text))
    future = state.batcher.submit(pending)
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(events.put_nowait, None))

    def chunk(choices: list[dict], usage: dict | None = None) -> str:
        data = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model_id,
                "system_fingerprint": state.fingerprint, "choices": choices}
        if include_usage:
            data["usage"] = usage
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
                 for i in range(pending.n)])
    while (event := await events.get()) is not None:
        i, text = event
        yield chunk([{"index": i, "delta": {"content": text}, "logprobs": None, "finish_reason": None}])
    try:
        choices = future.result()
    except Exception as err:  # noqa: BLE001 - the status line is sent already: the error goes in the stream
        yield f"data: {json.dumps({'error': {'message': str(err), 'type': 'server_error', 'param': None, 'code': None}})}\n\n"
        return
    yield chunk([{"index": i, "delta": {}, "logprobs": None, "finish_reason": c.finish_reason}
                 for i, c in enumerate(choices)])
    if include_usage:
        completion_tokens = sum(c.tokens for c in choices)
        yield chunk([], {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                         "total_tokens": prompt_tokens + completion_tokens})
    yield "data: [DONE]\n\n"
