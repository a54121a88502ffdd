"""`GET /v1/models` and `POST /v1/chat/completions` (non-streaming and server-sent events), OpenAI's shapes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from lorakit.inference.scheduler import Choice, Pending
from lorakit.server import api_errors, logprob_shapes
from lorakit.server import tools as tool_syntax
from lorakit.server.chat_request import ChatPlan, pending_of
from lorakit.server.requests import ChatRequest, json_body


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
        """A fine-tuned model is no longer served, now or after a restart, nor are its checkpoints' models
        (`<model>:ckpt-step-N`); its job's run folder stays on disk."""
        served = state.registry.remove(model_id)
        gone = [served, *(state.registry.remove(m.id) for m in state.registry.all()
                          if m.id.startswith(f"{served.id}:ckpt-step-"))]
        for model in gone:
            state.store.delete_model(model.id)
            if state.proxy is not None:
                await asyncio.to_thread(state.proxy.forget, model)
        return {"id": served.id, "object": "model", "deleted": True}

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        chat, body = await json_body(request, ChatRequest)
        plan = await asyncio.to_thread(pending_of, chat, state)  # render, tokenize, compile a grammar
        if state.proxy is not None:  # checked as on lorakit's engine, decoded by vLLM
            limit = {} if chat.max_tokens or chat.max_completion_tokens else {
                "max_tokens": plan.pending.max_tokens}  # lorakit's default, not vLLM's (the whole context)
            return await state.proxy.forward("/v1/chat/completions", body, state.registry.get(plan.model_id),
                                             defaults=limit)
        completion_id, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if chat.stream:
            include_usage = bool(chat.stream_options and chat.stream_options.include_usage)
            return StreamingResponse(_stream(state, plan, completion_id, created, include_usage),
                                     media_type="text/event-stream", headers={"cache-control": "no-cache"})
        choices = await unless_gone(request, state.scheduler, plan.pending)
        if choices is None:  # nobody is left to read the answer
            return closed()
        return {
            "id": completion_id, "object": "chat.completion", "created": created, "model": plan.model_id,
            "choices": [{"index": i, **reply(state, plan, c)} for i, c in enumerate(choices)],
            "usage": usage(plan.prompt_tokens, choices), "system_fingerprint": state.fingerprint,
        }

    return api


def closed() -> JSONResponse:
    """The answer to a request whose client left before it was ready (nginx's 499)."""
    return api_errors.response(499, "client closed the request", None, "client_closed_request")


def usage(prompt_tokens: int, choices: list[Choice]) -> dict:
    completion_tokens = sum(c.tokens for c in choices)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def reply(state, plan: ChatPlan, choice: Choice) -> dict:
    """One choice in OpenAI's shape: its message (text, or the tool calls it makes), logprobs, finish_reason."""
    message = {"role": "assistant", "content": choice.text, "refusal": None}
    finish = choice.finish_reason
    if plan.tools and plan.choice == "auto":
        raw = state.tokenizer.decode(choice.token_ids, skip_special_tokens=False)
        if calls := tool_syntax.parse(raw, {t["function"]["name"] for t in plan.tools}):
            calls = calls if plan.parallel else calls[:1]
            message = {"role": "assistant", "content": None, "refusal": None,
                       "tool_calls": tool_syntax.openai_calls(calls, plan.template)}
            finish = "tool_calls"
    elif plan.tools:  # forced: never text; cut by the token limit, the calls so far with finish_reason "length"
        calls, whole = tool_syntax.forced_calls(choice.text, plan.tools, plan.choice)
        message = {"role": "assistant", "content": None, "refusal": None,
                   **({"tool_calls": tool_syntax.openai_calls(calls, plan.template)} if calls else {})}
        if whole:
            finish = "stop" if isinstance(plan.choice, dict) else "tool_calls"  # as OpenAI: a named call "stop"s
    return {"message": message, "logprobs": logprob_shapes.chat(state.tokenizer, choice.logprobs),
            "finish_reason": finish}


async def before_gone(request: Request, work) -> tuple[bool, object]:
    """(True, the awaitable's result), or (False, None) when the request's client disconnects first."""

    async def gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    answer, watch = asyncio.ensure_future(work), asyncio.ensure_future(gone())
    await asyncio.wait({answer, watch}, return_when=asyncio.FIRST_COMPLETED)
    if answer.done():
        watch.cancel()
        return True, answer.result()
    return False, None


async def unless_gone(request: Request, scheduler, pending: Pending):
    """The request's choices, or None when its client disconnects first (its rows then stop decoding)."""
    done, answer = await before_gone(request, asyncio.wrap_future(scheduler.submit(pending)))
    if not done:
        scheduler.abandon(pending)
    return answer


async def _stream(state, plan: ChatPlan, completion_id: str, created: int, include_usage: bool):
    """Server-sent events: the text as it is decoded. A reply read whole before it can be shown (tools offered,
    logprobs asked) arrives in one delta at its end."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    pending = plan.pending
    whole = bool(plan.tools) or plan.logprobs
    if not whole:
        pending.on_delta = lambda i, text: loop.call_soon_threadsafe(events.put_nowait, (i, text))
    future = state.scheduler.submit(pending)
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(events.put_nowait, None))

    def chunk(choices: list[dict], usage_of: dict | None = None) -> str:
        data = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": plan.model_id,
                "system_fingerprint": state.fingerprint, "choices": choices}
        if include_usage:
            data["usage"] = usage_of
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    try:
        yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                      "finish_reason": None} for i in range(pending.n)])
        while (event := await events.get()) is not None:
            i, text = event
            yield chunk([{"index": i, "delta": {"content": text}, "logprobs": None, "finish_reason": None}])
    finally:  # the client left (the generator is closed or cancelled) before the answer ended: stop its rows
        if not future.done():
            state.scheduler.abandon(pending)
    try:
        choices = future.result()
    except Exception as err:  # noqa: BLE001 - the status line is sent already: the error goes in the stream
        yield f"data: {json.dumps({'error': {'message': str(err), 'type': 'server_error', 'param': None, 'code': None}})}\n\n"
        return
    for i, c in enumerate(choices):
        answer = reply(state, plan, c)
        if whole:
            delta = {k: v for k, v in answer["message"].items() if k in ("content", "tool_calls") and v is not None}
            for n, call in enumerate(delta.get("tool_calls", [])):
                call["index"] = n
            yield chunk([{"index": i, "delta": delta, "logprobs": answer["logprobs"], "finish_reason": None}])
        yield chunk([{"index": i, "delta": {}, "logprobs": None, "finish_reason": answer["finish_reason"]}])
    if include_usage:
        yield chunk([], usage(plan.prompt_tokens, choices))
    yield "data: [DONE]\n\n"
