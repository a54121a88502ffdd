"""`POST /v1/responses`: OpenAI's Responses API, its text subset, over the same decoding as chat completions.

Taken: `input` (a string, or messages whose content is text parts), `instructions` (a system message first),
`max_output_tokens`, `temperature`, `top_p`, `text.format` (text, json_object, json_schema: constrained as in chat)
and `stream` (server-sent events named as OpenAI names them: response.created ... response.completed). Refused
with a 400 naming the field: tools, stored responses (`store: true`, `previous_response_id`, `conversation`),
reasoning and `include`, since lorakit.serve has none of them.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from lorakit.server.chat_api import closed, unless_gone
from lorakit.server.chat_request import ChatPlan, pending_of
from lorakit.server.requests import ResponsesRequest, json_body, refuse_asked, refuse_fields

_ASKED = lambda value: value not in (None, False, [])  # noqa: E731 - set to anything that asks for it
REFUSED = {name: (_ASKED, why) for name, why in {
    "store": "lorakit.serve does not store responses (store: true)",
    "previous_response_id": "lorakit.serve does not store responses: send the whole conversation as input",
    "conversation": "lorakit.serve does not store conversations: send the whole conversation as input",
    "tools": "the Responses API here serves text only: use chat completions for tools",
    "tool_choice": "the Responses API here serves text only: use chat completions for tools",
    "reasoning": "the served models do not reason before answering",
    "include": "nothing more can be included", "background": "responses are answered in the request",
    "prompt": "stored prompts are not supported", "top_logprobs": "use chat completions for logprobs",
    "max_tool_calls": "the Responses API here serves text only", "stream_options": "not supported"}.items()}


def _text(content) -> str:
    return content if isinstance(content, str) else "".join(part["text"] for part in content)


def chat_body(body: dict) -> dict:
    """The request as a chat completion request (what pending_of checks and decodes)."""
    refuse_fields(body, ResponsesRequest)
    refuse_asked(body, REFUSED)
    given = body["input"]
    messages = [{"role": "user", "content": given}] if isinstance(given, str) else [
        {"role": m["role"], "content": _text(m["content"])} for m in given]
    if body.get("instructions"):
        messages = [{"role": "system", "content": body["instructions"]}, *messages]
    chat = {"model": body["model"], "messages": messages}
    for ours, theirs in (("max_output_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p")):
        if body.get(ours) is not None:
            chat[theirs] = body[ours]
    fmt = (body.get("text") or {}).get("format")
    if fmt and fmt["type"] == "json_schema":
        chat["response_format"] = {"type": "json_schema", "json_schema": {
            "name": fmt["name"], "schema": fmt["schema"], "strict": fmt.get("strict")}}
    elif fmt:
        chat["response_format"] = {"type": fmt["type"]}
    return chat


def _response(body: dict, plan: ChatPlan, response_id: str, created: int, status: str, text: str | None,
              message_id: str, tokens: int = 0, finish: str | None = None) -> dict:
    output = [] if text is None else [_message(message_id, text, "completed")]
    incomplete = status == "completed" and finish == "length"
    return {
        "id": response_id, "object": "response", "created_at": created,
        "status": "incomplete" if incomplete else status,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None, "error": None,
        "model": plan.model_id, "output": output, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0), "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "text": body.get("text") or {"format": {"type": "text"}}, "truncation": "disabled",
        "metadata": body.get("metadata") or {}, "previous_response_id": None, "reasoning": None, "store": False,
        "user": body.get("user"),
        "usage": {"input_tokens": plan.prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": tokens, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": plan.prompt_tokens + tokens} if status == "completed" else None,
    }


def _message(message_id: str, text: str | None, status: str) -> dict:
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"type": "message", "id": message_id, "status": status, "role": "assistant", "content": content}


def router(state) -> APIRouter:
    api = APIRouter()

    @api.post("/v1/responses")
    async def responses(request: Request):
        body = await json_body(request, ResponsesRequest)
        plan = await asyncio.to_thread(lambda: pending_of(chat_body(body), state))
        if state.proxy is not None:  # checked as on lorakit's engine, decoded by vLLM
            limit = {} if body.get("max_output_tokens") else {"max_output_tokens": plan.pending.max_tokens}
            return await state.proxy.forward("/v1/responses", body, state.registry.get(plan.model_id),
                                             defaults=limit)
        ids = (f"resp_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}", int(time.time()))
        if body.get("stream"):
            return StreamingResponse(_events(state, body, plan, *ids), media_type="text/event-stream",
                                     headers={"cache-control": "no-cache"})
        choices = await unless_gone(request, state.batcher, plan.pending)
        if choices is None:
            return closed()
        [c] = choices
        return _response(body, plan, ids[0], ids[2], "completed", c.text, ids[1], c.tokens, c.finish_reason)

    return api


async def _events(state, body: dict, plan: ChatPlan, response_id: str, message_id: str, created: int):
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    plan.pending.on_delta = lambda _, text: loop.call_soon_threadsafe(queue.put_nowait, text)
    future = state.batcher.submit(plan.pending)
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(queue.put_nowait, None))
    number = iter(range(10**9))

    def event(kind: str, **fields) -> str:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': next(number), **fields})}\n\n"

    place = {"item_id": message_id, "output_index": 0, "content_index": 0}
    started = _response(body, plan, response_id, created, "in_progress", None, message_id)
    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    yield event("response.output_item.added", output_index=0, item=_message(message_id, None, "in_progress"))
    yield event("response.content_part.added", **place, part={"type": "output_text", "text": "", "annotations": []})
    try:
        while (delta := await queue.get()) is not None:
            yield event("response.output_text.delta", **place, delta=delta, logprobs=[])
    finally:
        if not future.done():
            state.batcher.abandon(plan.pending)
    try:
        [c] = future.result()
    except Exception as err:  # noqa: BLE001 - the status line is sent already: the error goes in the stream
        yield event("error", code="server_error", message=str(err), param=None)
        return
    done = _response(body, plan, response_id, created, "completed", c.text, message_id, c.tokens, c.finish_reason)
    yield event("response.output_text.done", **place, text=c.text, logprobs=[])
    yield event("response.content_part.done", **place, part=done["output"][0]["content"][0])
    yield event("response.output_item.done", output_index=0, item=done["output"][0])
    yield event("response.completed" if done["status"] == "completed" else "response.incomplete", response=done)
