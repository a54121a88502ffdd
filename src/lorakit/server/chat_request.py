"""A chat completion request, read whole before anything is decoded: every field is honoured or refused with a
400 naming it (nothing asked is silently left out of the answer), the messages in lorakit's chat form, the
prompt rendered with the model's template (tools included, or refused when the template drops them), and what
each row asks of the decoder (lorakit.inference.rules).
"""

from __future__ import annotations

from dataclasses import dataclass

from lorakit.data.formats import Problem, tool_calls
from lorakit.data.template import render
from lorakit.inference.grammar import GrammarError, json_grammar, strict
from lorakit.inference.rules import RowRules
from lorakit.inference.scheduler import Pending
from lorakit.server import tools as tool_syntax
from lorakit.server.api_errors import APIError
from lorakit.server.requests import ChatRequest, CompletionRequest, refuse_asked

REFUSED = {  # OpenAI's fields whose ask lorakit.serve cannot meet: (refused when, why)
    "audio": (lambda v: v is not None, "audio output needs an audio model"),
    "modalities": (lambda v: v not in (None, ["text"]), "only text output is served"),
    "prediction": (lambda v: v is not None, "predicted outputs are not supported"),
    "functions": (lambda v: v is not None, "the deprecated 'functions' is not supported: send them as 'tools'"),
    "function_call": (lambda v: v is not None, "the deprecated 'function_call' is not supported: use 'tool_choice'"),
    "reasoning_effort": (lambda v: v is not None, "the served models do not reason before answering"),
    "verbosity": (lambda v: v is not None, "the served models have no verbosity setting"),
    "web_search_options": (lambda v: v is not None, "lorakit.serve does not search the web"),
    "store": (lambda v: bool(v), "lorakit.serve does not store chat completions (store=true)"),
    "service_tier": (lambda v: v not in (None, "auto", "default"), "lorakit.serve has one service tier"),
}


def messages_of(request: ChatRequest) -> list[dict]:
    """The request's messages (checked by ChatRequest) in lorakit's chat form: developer -> system, text parts
    joined, tool-call arguments parsed (a 400 naming the message when they are not a JSON object)."""
    out = []
    for i, msg in enumerate(request.messages):
        content = msg.content if isinstance(msg.content, str) else "".join(p.text for p in msg.content or [])
        converted = {"role": "system" if msg.role == "developer" else msg.role, "content": content}
        if msg.tool_calls:
            calls = tool_calls([c.model_dump(exclude_unset=True) for c in msg.tool_calls], i + 1)
            if isinstance(calls, Problem):
                raise APIError(400, f"messages[{i}].tool_calls: {calls}", param=f"messages[{i}].tool_calls",
                               code="invalid_value")
            converted["tool_calls"] = calls
        for key in ("name", "tool_call_id"):
            if getattr(msg, key) is not None:
                converted[key] = getattr(msg, key)
        out.append(converted)
    return out


@dataclass
class ChatPlan:
    """A checked request: what the scheduler decodes and how its reply is read back."""
    pending: Pending
    model_id: str
    prompt_tokens: int
    tools: list[dict] | None = None   # offered (rendered in the prompt)
    choice: object = None            # tool_choice: "auto", "required" or {"type": "function", ...}
    parallel: bool = True
    template: str = ""
    logprobs: bool = False


def _tool_choice(request: ChatRequest):
    """(tools to render, tool_choice), as the client sent them; a named function must be one of the tools."""
    choice = request.tool_choice
    choice = choice.model_dump(exclude_unset=True) if choice is not None and not isinstance(choice, str) else choice
    tools = [t.model_dump(exclude_unset=True) for t in request.tools] if request.tools else None
    if choice == "none" or tools is None:
        if choice not in (None, "none", "auto"):
            raise APIError(400, f"tool_choice {choice!r} needs 'tools'", param="tool_choice", code="invalid_value")
        return None, None
    if isinstance(choice, dict) and choice["function"]["name"] not in {t["function"]["name"] for t in tools}:
        raise APIError(400, f"tool_choice names function {choice['function']['name']!r}, which is not in 'tools'",
                       param="tool_choice.function.name", code="invalid_value")
    return tools, choice or "auto"


def _schema(request: ChatRequest) -> dict | None | bool:
    """response_format -> the JSON schema the answer must follow (None: any JSON object; False: free text);
    strict: objects take only their own properties unless the schema says otherwise."""
    fmt = request.response_format
    if fmt is None or fmt.type == "text":
        return False
    if fmt.type == "json_object":
        return None
    schema = fmt.json_schema.schema_ or {"type": "object"}
    return strict(schema) if fmt.json_schema.strict else schema


def rules_of(request: ChatRequest | CompletionRequest, state, schema, *, top: int | None) -> RowRules:
    """Bias, penalties, grammar and log-probabilities (top: how many alternatives; None: not asked) of each row of
    the request."""
    bias = {}
    for key, value in (request.logit_bias or {}).items():
        if not key.isdigit() or int(key) >= len(state.tokenizer):
            raise APIError(400, f"logit_bias: {key!r} is not a token id of this model (0..{len(state.tokenizer) - 1})",
                           param=f"logit_bias.{key}", code="invalid_value")
        bias[int(key)] = float(value)
    grammar = None
    if schema is not False:
        try:
            grammar = json_grammar(schema, state.tokenizer, state.eot_ids)
        except GrammarError as err:
            raise APIError(400, f"response_format: the JSON schema cannot be enforced: {err}",
                           param="response_format", code="invalid_value") from None
    return RowRules(bias, float(request.frequency_penalty or 0), float(request.presence_penalty or 0), grammar, top)


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


def _prompt(state, served, messages: list[dict], tools: list | None) -> str:
    try:
        prompt = render(state.tokenizer, messages, tools, add_generation_prompt=True)
        if tools and prompt == render(state.tokenizer, messages, None, add_generation_prompt=True):
            raise APIError(400, f"model {served.id}: its chat template does not render tools, so the model would "
                           "never see them; send the request without 'tools' (describe them in the system message), "
                           "or serve a model whose template supports tools (e.g. Llama 3.1, Qwen2.5, Mistral)",
                           param="tools", code="unsupported_parameter")
    except APIError:
        raise
    except Exception as err:  # noqa: BLE001 - the chat template refuses this conversation (e.g. role order)
        raise APIError(400, f"the model's chat template cannot render these messages: {err}", param="messages",
                       code="invalid_value") from None
    return prompt


def token_limit(state, request: ChatRequest, prompt_tokens: int) -> int | None:
    """The request's max_tokens (None: not set), refused when prompt and completion exceed the context."""
    room = state.context - prompt_tokens
    max_tokens = request.max_completion_tokens if request.max_completion_tokens is not None else request.max_tokens
    if room < 1 or (max_tokens or 0) > room:
        asked = max_tokens if max_tokens is not None else 1
        raise APIError(400, f"This model's maximum context length is {state.context} tokens. However, you requested "
                       f"{prompt_tokens + asked} tokens ({prompt_tokens} in the messages, {asked} in the "
                       "completion). Please reduce the length of the messages or completion.",
                       param="messages", code="context_length_exceeded")
    return max_tokens


def stops(request: ChatRequest | CompletionRequest) -> list[str]:
    return [request.stop] if isinstance(request.stop, str) else request.stop or []


def sampling(request: ChatRequest | CompletionRequest, state) -> dict:
    """temperature, top_p, seed and n as Pending takes them (top_p 0 leaves only the most likely token); n is
    bounded by the rows the server decodes together."""
    n = request.n or 1
    if n > state.scheduler.max_batch:
        raise APIError(400, f"'n' must be between 1 and {state.scheduler.max_batch} on this server (--max-batch), "
                       f"got {n}", param="n", code="invalid_value")
    temperature = 1.0 if request.temperature is None else request.temperature
    top_p = 1.0 if request.top_p is None else request.top_p
    return {"temperature": 0.0 if top_p == 0 else temperature, "top_p": top_p, "seed": request.seed, "n": n,
            "stop": stops(request)}


def pending_of(request: ChatRequest, state) -> ChatPlan:
    """The checked request (lorakit.server.requests.ChatRequest): what the scheduler decodes and how its reply is
    read back."""
    refuse_asked(request, REFUSED)
    served = state.registry.get(request.model)
    messages = messages_of(request)
    _refuse_unseen_length(state, messages)
    tools, choice = _tool_choice(request)
    schema = _schema(request)
    if tools and schema is not False:
        raise APIError(400, "lorakit.serve cannot combine 'response_format' JSON with 'tools': send one of them",
                       param="response_format", code="unsupported_parameter")
    parallel = request.parallel_tool_calls is not False
    if tools and choice != "auto":
        schema = tool_syntax.forced_schema(tools, choice, parallel)
    prompt_ids = state.tokenizer(_prompt(state, served, messages, tools), add_special_tokens=False)["input_ids"]
    max_tokens = token_limit(state, request, len(prompt_ids))
    if request.top_logprobs and not request.logprobs:
        raise APIError(400, "'top_logprobs' needs 'logprobs': true", param="top_logprobs", code="invalid_value")
    top = (request.top_logprobs or 0) if request.logprobs else None
    pending = Pending(
        adapter=(served.internal, served.adapter) if served.adapter is not None else None, prompt_ids=prompt_ids,
        max_tokens=max_tokens or min(state.default_max_tokens, state.context - len(prompt_ids)),
        rules=rules_of(request, state, schema, top=top), **sampling(request, state))
    return ChatPlan(pending, served.id, len(prompt_ids), tools, choice, parallel,
                    getattr(state.tokenizer, "chat_template", None) or "", bool(request.logprobs))
