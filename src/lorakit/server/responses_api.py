"""`POST /v1/responses`: OpenAI's Responses API, its text subset, over the same decoding as chat completions.

Taken: `input` (a string, or messages whose content is text parts), `instructions` (a system message first),
`max_output_tokens`, `temperature`, `top_p`, `text.format` (text, json_object, json_schema: constrained as in chat),
`include` with `top_logprobs`, and `stream` (server-sent events named as OpenAI names them: response.created ...
response.completed, or response.incomplete when the reply reached max_output_tokens, as OpenAI ends such a stream).
Refused with a 400 naming the field: tools, stored responses (`store: true`, `previous_response_id`,
`conversation`) and reasoning, since lorakit.serve has none of them.

`include`: "message.output_text.logprobs" is honoured (each output text's tokens with their log-probabilities, and
`top_logprobs` alternatives); the other values OpenAI defines ask for what this server never produces (reasoning,
tool and search results, images), so the answer is given without them, as OpenAI answers for a model that has no
reasoning; any other value is refused.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from lorakit.inference.scheduler import Choice
from lorakit.server import logprob_shapes
from lorakit.server.api_errors import APIError
from lorakit.server.chat_api import closed, unless_gone
from lorakit.server.chat_request import ChatPlan, pending_of
from lorakit.server.requests import ChatRequest, ResponsesRequest, json_body, parse, refuse_asked

_ASKED = lambda value: value not in (None, False, [])  # noqa: E731 - set to anything that asks for it
REFUSED = {name: (_ASKED, why) for name, why in {
    "store": "lorakit.serve does not store responses (store: true)",
    "previous_response_id": "lorakit.serve does not store responses: send the whole conversation as input",
    "conversation": "lorakit.serve does not store conversations: send the whole conversation as input",
    "tools": "the Responses API here serves text only: use chat completions for tools",
    "tool_choice": "the Responses API here serves text only: use chat completions for tools",
    "reasoning": "the served models do not reason before answering",
    "background": "responses are answered in the request",
    "prompt": "stored prompts are not supported",
    "max_tool_calls": "the Responses API here serves text only", "stream_options": "not supported"}.items()}
LOGPROBS = "message.output_text.logprobs"
# OpenAI's includable values that ask for what this server never produces: accepted, nothing added
INCLUDABLE = {LOGPROBS, "reasoning.encrypted_content", "file_search_call.results", "web_search_call.results",
              "web_search_call.action.sources", "message.input_image.image_url",
              "computer_call_output.output.image_url", "code_interpreter_call.outputs"}


def _includes(request: ResponsesRequest) -> bool:
    """Whether the output text's log-probabilities are asked for; a 400 for a value OpenAI does not define."""
    for i, value in enumerate(request.include or []):
        if value not in INCLUDABLE:
            raise APIError(400, f"include[{i}]: {value!r} is not a value OpenAI's Responses API defines; supported: "
                           f"{', '.join(sorted(INCLUDABLE))}", param=f"include[{i}]", code="invalid_value")
    return LOGPROBS in (request.include or []) or bool(request.top_logprobs)


def _text(content) -> str:
    return content if isinstance(content, str) else "".join(part.text for part in content)


def chat_request(request: ResponsesRequest) -> ChatRequest:
    """The checked request as a chat completion request (what pending_of plans and decodes)."""
    refuse_asked(request, REFUSED)
    given = request.input
    messages = [{"role": "user", "content": given}] if isinstance(given, str) else [
        {"role": m.role, "content": _text(m.content)} for m in given]
    if request.instructions:
        messages = [{"role": "system", "content": request.instructions}, *messages]
    chat = {"model": request.model, "messages": messages}
    if _includes(request):
        chat.update(logprobs=True, top_logprobs=request.top_logprobs or 0)
    for ours, theirs in (("max_output_tokens", "max_tokens"), ("temperature", "temperature"), ("top_p", "top_p")):
        if getattr(request, ours) is not None:
            chat[theirs] = getattr(request, ours)
    fmt = request.text.format if request.text is not None else None
    if fmt is not None and fmt.type == "json_schema":
        chat["response_format"] = {"type": "json_schema", "json_schema": {
            "name": fmt.name, "schema": fmt.schema_, **({"strict": fmt.strict} if fmt.strict is not None else {})}}
    elif fmt is not None:
        chat["response_format"] = {"type": fmt.type}
    return parse(ChatRequest, chat)


def _response(state, body: dict, plan: ChatPlan, ids: tuple[str, str, int], choice: Choice | None) -> dict:
    """The response in progress (choice None) or finished: incomplete, its message too, when the reply reached
    max_output_tokens. ids: (response id, message id, created)."""
    incomplete = choice is not None and choice.finish_reason == "length"
    status = "in_progress" if choice is None else "incomplete" if incomplete else "completed"
    output = [] if choice is None else [_message(ids[1], choice.text, status, _logprobs(state, choice))]
    tokens = choice.tokens if choice is not None else 0
    return {
        "id": ids[0], "object": "response", "created_at": ids[2], "status": status,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None, "error": None,
        "model": plan.model_id, "output": output, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0), "top_logprobs": body.get("top_logprobs"), "parallel_tool_calls": True,
        "tool_choice": "auto", "tools": [], "text": body.get("text") or {"format": {"type": "text"}},
        "truncation": "disabled", "metadata": body.get("metadata") or {}, "previous_response_id": None,
        "reasoning": None, "store": False, "user": body.get("user"),
        "usage": {"input_tokens": plan.prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": tokens, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": plan.prompt_tokens + tokens} if choice is not None else None,
    }


def _logprobs(state, choice: Choice) -> list[dict]:
    shaped = logprob_shapes.chat(state.tokenizer, choice.logprobs)
    return shaped["content"] if shaped else []


def _message(message_id: str, text: str | None, status: str, logprobs: list[dict] | None = None) -> dict:
    content = [] if text is None else [{"type": "output_text", "text": text, "annotations": [],
                                        "logprobs": logprobs or []}]
    return {"type": "message", "id": message_id, "status": status, "role": "assistant", "content": content}


def router(state) -> APIRouter:
    api = APIRouter()

    @api.post("/v1/responses")
    async def responses(request: Request):
        asked, body = await json_body(request, ResponsesRequest)
        plan = await asyncio.to_thread(lambda: pending_of(chat_request(asked), state))
        if state.proxy is not None:  # checked as on lorakit's engine, decoded by vLLM
            limit = {} if body.get("max_output_tokens") else {"max_output_tokens": plan.pending.max_tokens}
            return await state.proxy.forward("/v1/responses", body, state.registry.get(plan.model_id),
                                             defaults=limit)
        ids = (f"resp_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}", int(time.time()))
        if asked.stream:
            return StreamingResponse(_events(state, body, plan, ids), media_type="text/event-stream",
                                     headers={"cache-control": "no-cache"})
        choices = await unless_gone(request, state.scheduler, plan.pending)
        if choices is None:
            return closed()
        return _response(state, body, plan, ids, choices[0])

    return api


async def _events(state, body: dict, plan: ChatPlan, ids: tuple[str, str, int]):
    """OpenAI's stream events. A reply whose log-probabilities are asked is read whole and sent in one delta."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    whole = plan.logprobs
    if not whole:
        plan.pending.on_delta = lambda _, text: loop.call_soon_threadsafe(queue.put_nowait, text)
    future = state.scheduler.submit(plan.pending)
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(queue.put_nowait, None))
    number = iter(range(10**9))

    def event(kind: str, **fields) -> str:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': next(number), **fields})}\n\n"

    place = {"item_id": ids[1], "output_index": 0, "content_index": 0}
    started = _response(state, body, plan, ids, None)
    yield event("response.created", response=started)
    yield event("response.in_progress", response=started)
    yield event("response.output_item.added", output_index=0, item=_message(ids[1], None, "in_progress"))
    yield event("response.content_part.added", **place,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})
    try:
        while (delta := await queue.get()) is not None:
            yield event("response.output_text.delta", **place, delta=delta, logprobs=[])
    finally:
        if not future.done():
            state.scheduler.abandon(plan.pending)
    try:
        [c] = future.result()
    except Exception as err:  # noqa: BLE001 - the status line is sent already: the error goes in the stream
        yield event("error", code="server_error", message=str(err), param=None)
        return
    done = _response(state, body, plan, ids, c)
    part = done["output"][0]["content"][0]
    if whole and c.text:
        yield event("response.output_text.delta", **place, delta=c.text, logprobs=part["logprobs"])
    yield event("response.output_text.done", **place, text=c.text, logprobs=part["logprobs"])
    yield event("response.content_part.done", **place, part=part)
    yield event("response.output_item.done", output_index=0, item=done["output"][0])
    yield event("response.completed" if done["status"] == "completed" else "response.incomplete", response=done)
