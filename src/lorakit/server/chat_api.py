"""`GET /v1/models` and `POST /v1/chat/completions` (non-streaming and server-sent events), OpenAI's shapes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from lorakit.data.formats import Problem, tool_calls
from lorakit.data.template import render
from lorakit.server.batching import Pending
from lorakit.server.errors import APIError
from lorakit.server.requests import ChatRequest, json_body

ROLES = {"system", "developer", "user", "assistant", "tool"}
UNSUPPORTED = {  # asked for, these would be silently missing from the answer: refused instead
    "logprobs": lambda v: bool(v), "top_logprobs": lambda v: v not in (None, 0),
    "response_format": lambda v: v is not None and (not isinstance(v, dict) or v.get("type") != "text"),
    "audio": lambda v: v is not None, "functions": lambda v: bool(v), "prediction": lambda v: v is not None,
    "modalities": lambda v: v not in (None, ["text"]),
}


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
            calls = tool_calls(msg["tool_calls"], i + 1)
            if isinstance(calls, Problem):
                raise APIError(400, f"messages[{i}].tool_calls: {calls}", param=f"messages[{i}].tool_calls",
                               code="invalid_value")
            converted["tool_calls"] = calls
        for key in ("name", "tool_call_id"):
            if isinstance(msg.get(key), str):
                converted[key] = msg[key]
        out.append(converted)
    return out


def _tools(body: dict) -> list | None:
    """The tools to render: none with tool_choice "none"; a forced call ("required", a named function) is refused,
    since tool calls come back as text that lorakit.serve does not parse yet."""
    choice = body.get("tool_choice")
    if choice == "none" or not body.get("tools"):
        return None
    if choice not in (None, "auto"):
        raise APIError(400, f"tool_choice {json.dumps(choice)}: lorakit.serve cannot force a tool call (tool calls come "
                       "back as text in the reply); use 'auto' or leave it out", param="tool_choice",
                       code="unsupported_value")
    return body["tools"]


_TOKEN_BYTES: dict[int, int] = {}  # per tokenizer: the most UTF-8 bytes one token decodes to


def _refuse_unseen_length(state, messages: list[dict]) -> None:
    """Refuse, before rendering and tokenizing it, a prompt whose text alone needs more tokens than the context:
    no token decodes to more than the longest one's bytes, so bytes / that length is a floor on the tokens."""
    size = sum(len(m["content"].encode()) for m in messages)
    if size <= state.context:  # a token holds at least a byte: no floor above the context yet
        return
    tokenizer = state.tokenizer
    if id(tokenizer) not in _TOKEN_BYTES:
        _TOKEN_BYTES[id(tokenizer)] = max(len(tokenizer.convert_tokens_to_string([t]).encode())
                                          for t in tokenizer.get_vocab())
    floor = size // max(_TOKEN_BYTES[id(tokenizer)], 1)
    if floor > state.context:
        raise APIError(400, f"This model's maximum context length is {state.context} tokens. However, your messages "
                       f"({size:,} bytes) need at least {floor:,} tokens. Please reduce the length of the messages.",
                       param="messages", code="context_length_exceeded")


def pending_of(body: dict, state) -> tuple[Pending, str, int]:
    """The validated request: (what the batcher decodes, the model id, prompt tokens)."""
    for name, refused in UNSUPPORTED.items():
        if refused(body.get(name)):
            raise APIError(400, f"'{name}' is not supported by lorakit.serve", param=name, code="unsupported_parameter")
    served = state.registry.get(body.get("model"))
    messages = messages_of(body)
    _refuse_unseen_length(state, messages)
    tools = _tools(body)
    try:
        prompt = render(state.tokenizer, messages, tools, add_generation_prompt=True)
        if tools and prompt == render(state.tokenizer, messages, None, add_generation_prompt=True):
            raise APIError(400, f"model {served.id}: its chat template does not render tools, so the model would "
                           "never see them; send the request without 'tools' (describe them in the system message), "
                           "or serve a model whose template supports tools (e.g. Llama 3.1, Qwen2.5)", param="tools",
                           code="unsupported_parameter")
    except APIError:
        raise
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

    @api.delete("/v1/models/{model_id:path}")
    async def delete_model(model_id: str):
        """A fine-tuned model is no longer served, now or after a restart; its job's run folder stays on disk."""
        served = state.registry.remove(model_id)
        state.store.delete_model(served.id)
        return {"id": served.id, "object": "model", "deleted": True}

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        body = await json_body(request, ChatRequest)
        pending, model_id, prompt_tokens = await asyncio.to_thread(pending_of, body, state)  # render, tokenize
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(_stream(state, pending, completion_id, created, model_id, prompt_tokens,
                                             include_usage), media_type="text/event-stream",
                                     headers={"cache-control": "no-cache"})
        choices = await _unless_gone(request, state.batcher, pending)
        if choices is None:  # nobody is left to read the answer
            return JSONResponse({"error": {"message": "client closed the request", "type": "invalid_request_error",
                                           "param": None, "code": "client_closed_request"}}, status_code=499)
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


async def _unless_gone(request: Request, batcher, pending: Pending):
    """The request's choices, or None when its client disconnects first (its rows then stop decoding)."""

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    answer, watch = asyncio.wrap_future(batcher.submit(pending)), asyncio.ensure_future(gone())
    await asyncio.wait({answer, watch}, return_when=asyncio.FIRST_COMPLETED)
    if answer.done():
        watch.cancel()
        return answer.result()
    batcher.abandon(pending)
    return None


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

    try:
        yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                      "finish_reason": None} for i in range(pending.n)])
        while (event := await events.get()) is not None:
            i, text = event
            yield chunk([{"index": i, "delta": {"content": text}, "logprobs": None, "finish_reason": None}])
    finally:  # the client left (the generator is closed or cancelled) before the answer ended: stop its rows
        if not future.done():
            state.batcher.abandon(pending)
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
