"""`POST /v1/completions`: OpenAI's legacy text completions, the prompt taken as it is (no chat template), with
`logprobs` (the chosen tokens' and the most likely alternatives) and `echo` (the prompt in the answer, its tokens'
log-probabilities from one forward pass): what lm-eval's `local-completions` needs for loglikelihood tasks.
A completion that ends on the model's end of turn holds that token in its logprobs and usage (not in its text), as
vLLM's and OpenAI's do: lm-eval scores `token_logprobs[ctxlen:-1]`, trusting the last entry to be the one
generated token.

A text prompt is tokenized as vLLM does it (special tokens added: Llama's BOS); a prompt of token ids is used as
given. Several prompts in one request are decoded in the same batch.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from lorakit.inference.scheduler import Choice, Pending
from lorakit.server import logprob_shapes
from lorakit.server.api_errors import APIError
from lorakit.server.chat_request import rules_of, sampling
from lorakit.server.requests import CompletionRequest, json_body

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for legacy completions


def _prompts(request: CompletionRequest, tokenizer) -> list[list[int]]:
    prompt = request.prompt
    if isinstance(prompt, str):
        prompt = [prompt]
    if all(isinstance(p, int) for p in prompt):
        prompt = [prompt]
    out = []
    for i, p in enumerate(prompt):
        ids = tokenizer(p)["input_ids"] if isinstance(p, str) else list(p)
        if any(t >= len(tokenizer) for t in ids):
            raise APIError(400, f"prompt[{i}] holds a token id outside this model's vocabulary (0..{len(tokenizer) - 1})",
                           param="prompt", code="invalid_value")
        out.append(ids)
    return out


def pendings_of(request: CompletionRequest, state) -> tuple[list[Pending], str]:
    """The checked request (lorakit.server.requests.CompletionRequest): one Pending per prompt, and the model id."""
    if request.suffix:
        raise APIError(400, "'suffix' is not supported by lorakit.serve: no served model fills in the middle",
                       param="suffix", code="unsupported_parameter")
    if request.best_of not in (None, 1, request.n or 1):
        raise APIError(400, "'best_of' other than n is not supported by lorakit.serve", param="best_of",
                       code="unsupported_parameter")
    served = state.registry.get(request.model)
    echo, top = bool(request.echo), request.logprobs
    rules = rules_of(request, state, False, top=top)
    max_tokens = DEFAULT_MAX_TOKENS if request.max_tokens is None else request.max_tokens
    out = []
    for ids in _prompts(request, state.tokenizer):
        room = state.context - len(ids)
        if room < 0 or max_tokens > room:
            raise APIError(400, f"This model's maximum context length is {state.context} tokens. However, you "
                           f"requested {len(ids) + max_tokens} tokens ({len(ids)} in your prompt; {max_tokens} for "
                           "the completion). Please reduce your prompt; or completion length.", param="prompt",
                           code="context_length_exceeded")
        if max_tokens == 0 and not echo:
            raise APIError(400, "max_tokens 0 needs echo: true (an answer of nothing)", param="max_tokens",
                           code="invalid_value")
        out.append(Pending(adapter=(served.internal, served.adapter) if served.adapter is not None else None,
                           prompt_ids=ids, max_tokens=max_tokens, rules=rules,
                           echo_top=(top or 0) if echo and top is not None else None, **sampling(request, state)))
    return out, served.id


def _choice(state, pending: Pending, choice: Choice, echo: bool, index: int) -> dict:
    text = choice.text
    logprobs = None
    if echo:
        prompt_text = state.tokenizer.decode(pending.prompt_ids, skip_special_tokens=False)
        text = prompt_text + text
    if choice.logprobs is not None:  # the end-of-turn token too: generated like any other (lm-eval reads it)
        rows = (choice.prompt_logprobs or []) + choice.logprobs + ([choice.end_logprob] if choice.end_logprob else [])
        logprobs = logprob_shapes.completion(state.tokenizer, rows)
    return {"text": text, "index": index, "logprobs": logprobs, "finish_reason": choice.finish_reason}


def router(state) -> APIRouter:
    api = APIRouter()

    @api.post("/v1/completions")
    async def completions(request: Request):
        completion, body = await json_body(request, CompletionRequest)
        pendings, model_id = await asyncio.to_thread(pendings_of, completion, state)
        if state.proxy is not None:  # checked as on lorakit's engine, decoded by vLLM
            return await state.proxy.forward("/v1/completions", body, state.registry.get(model_id))
        completion_id, created = f"cmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        echo = bool(completion.echo)
        futures = [asyncio.wrap_future(state.scheduler.submit(p)) for p in pendings]
        try:
            answers = await asyncio.gather(*futures)
        except asyncio.CancelledError:
            for p in pendings:
                state.scheduler.abandon(p)
            raise
        choices = [_choice(state, p, c, echo, i * p.n + j) for i, (p, cs) in enumerate(zip(pendings, answers,
                                                                                         strict=True))
                   for j, c in enumerate(cs)]
        prompt_tokens = sum(len(p.prompt_ids) for p in pendings)
        completion_tokens = sum(c.tokens + (c.end_token is not None) for cs in answers for c in cs)
        result = {"id": completion_id, "object": "text_completion", "created": created, "model": model_id,
                  "choices": choices, "system_fingerprint": state.fingerprint,
                  "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                            "total_tokens": prompt_tokens + completion_tokens}}
        if completion.stream:  # read whole, sent as one event per choice (lm-eval and the SDK read it so)
            return StreamingResponse(_events(result, completion), media_type="text/event-stream",
                                     headers={"cache-control": "no-cache"})
        return JSONResponse(result)

    return api


async def _events(result: dict, completion: CompletionRequest):
    head = {k: v for k, v in result.items() if k not in ("choices", "usage")}
    for choice in result["choices"]:
        yield f"data: {json.dumps({**head, 'choices': [choice]}, ensure_ascii=False)}\n\n"
    if completion.stream_options and completion.stream_options.include_usage:
        yield f"data: {json.dumps({**head, 'choices': [], 'usage': result['usage']})}\n\n"
    yield "data: [DONE]\n\n"
