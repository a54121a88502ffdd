"""Request bodies, checked before any logic touches them: the JSON itself (nesting depth, finite numbers) and the
shape of each route's body (pydantic models of OpenAI's request shapes). A body that is not what the route takes
gets a 400 in OpenAI's error shape whose `param` is the field's path, e.g. `messages[0].role`.

Fields a request model does not list are refused by refuse_fields (nested shapes let extra fields through: the
SDK sends back a reply's message whole, `refusal` and `annotations` included).
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lorakit.server.api_errors import APIError, path_of

MAX_DEPTH = 64  # nesting of objects and lists in a body; OpenAI's own shapes nest under 10 deep


class _NotFinite(str):
    """A number the JSON text spells but no float holds (1e999), kept as its text until its path is known."""


def _not_finite_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def _float(text: str):
    value = float(text)
    return value if math.isfinite(value) else _NotFinite(text)


def _check_tree(body) -> None:
    """Refuse nesting deeper than MAX_DEPTH and numbers that are not finite, naming where."""
    stack = [(body, (), 1)]
    while stack:
        value, loc, depth = stack.pop()
        if isinstance(value, _NotFinite):
            raise APIError(400, f"{path_of(loc)}: {value} is not a finite number", param=path_of(loc) or None,
                           code="invalid_value")
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise APIError(400, f"{path_of(loc)}: the body nests objects and lists more than {MAX_DEPTH} deep",
                               param=path_of(loc) or None, code="invalid_json")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack += [(v, (*loc, k), depth + 1) for k, v in items]


def parse_json(raw: bytes):
    """The body as JSON (an object), or an APIError saying what is wrong with it."""
    try:
        body = json.loads(raw or b"null", parse_float=_float, parse_constant=_not_finite_constant)
    except RecursionError:
        raise APIError(400, f"the request body nests objects and lists more than {MAX_DEPTH} deep",
                       code="invalid_json") from None
    except (ValueError, UnicodeDecodeError) as err:
        raise APIError(400, f"the request body is not valid JSON ({err})", code="invalid_json") from None
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    _check_tree(body)
    return body


def _data_path(loc, data) -> tuple:
    """The part of a pydantic error location that names places in the data (union member tags left out)."""
    out = []
    for part in loc:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:  # a tag of the union member that failed ('str', 'list[TextPart]', ...)
            continue
        out.append(part)
    return tuple(out)


def _missing_path(loc, data) -> tuple:
    """A missing field's location: where it should be (its parent's path and its own name)."""
    found = _data_path(loc[:-1], data)
    return (*found, loc[-1]) if isinstance(loc[-1], str) else found


def validation_error(err: ValidationError, body) -> APIError:
    """The most specific problem of a failed validation, as OpenAI's 400 naming the field."""
    located = []
    for e in err.errors(include_url=False):
        loc = _missing_path(e["loc"], body) if e["type"] == "missing" else _data_path(e["loc"], body)
        located.append((loc, e))
    deepest = max(len(loc) for loc, _ in located)
    loc, first = next((loc, e) for loc, e in located if len(loc) == deepest)
    messages = []
    for other_loc, e in located:
        if other_loc == loc and e["msg"] not in messages:
            messages.append(e["msg"])
    text = messages[0] + "".join(f", or {m.removeprefix('Input should be ')}" for m in messages[1:])
    path = path_of(loc)
    got = "" if first["type"] == "missing" else f" (got {json.dumps(first.get('input'), default=str)[:80]})"
    code = "missing_required_parameter" if first["type"] == "missing" else (
        "invalid_type" if first["type"].endswith("_type") else "invalid_value")
    return APIError(400, f"{path or 'request'}: {text}{got}", param=path or None, code=code)


async def json_body(request, schema: type[BaseModel]) -> tuple[BaseModel, dict]:
    """(the body checked against the route's schema, the body as sent): parsed off the event loop (a large body
    must not stall the other requests), or a 400 naming the field at fault, or (a schema with only_known_fields)
    the first top-level field it does not know. Handlers read the checked model; the body as sent is what vLLM
    is forwarded."""
    raw = await request.body()

    def check() -> tuple[BaseModel, dict]:
        body = parse_json(raw)
        checked = parse(schema, body)
        if getattr(schema, "only_known_fields", False):
            refuse_fields(body, schema)
        return checked, body

    return await asyncio.to_thread(check)


def refuse_fields(body: dict, schema: type[BaseModel]) -> None:
    """A 400 for the first top-level field the route's schema does not know (OpenAI's own message)."""
    for name in body:
        if name not in schema.model_fields:
            raise APIError(400, f"Unrecognized request argument supplied: {name} (lorakit.serve takes "
                           f"{', '.join(sorted(schema.model_fields))})", param=name, code="unknown_parameter")


def refuse_asked(request: BaseModel, refused: dict) -> None:
    """A 400 for the first field whose ask cannot be met: refused is {name: (refused when, why)}."""
    for name, (when, why) in refused.items():
        if when(getattr(request, name, None)):
            raise APIError(400, f"'{name}' is not supported by lorakit.serve: {why}", param=name,
                           code="unsupported_parameter")


def parse(schema: type[BaseModel], body: dict) -> BaseModel:
    try:
        return schema.model_validate(body)
    except ValidationError as err:
        raise validation_error(err, body) from None


class Shape(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")  # strict: "1" is no number, true no integer


class TextPart(Shape):
    type: Literal["text"]
    text: str


class FunctionCall(Shape):
    name: str
    arguments: str | dict


class ToolCall(Shape):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(Shape):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class FunctionDef(Shape):
    name: str
    description: str | None = None
    parameters: dict | None = None
    strict: bool | None = None


class Tool(Shape):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(Shape):
    name: str


class NamedToolChoice(Shape):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(Shape):
    include_usage: bool | None = None


Penalty = Annotated[float, Field(ge=-2, le=2)]
Bias = Annotated[float, Field(ge=-100, le=100)]


class JsonSchema(Shape):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: str | None = None
    schema_: dict | None = Field(default=None, alias="schema")
    strict: bool | None = None


class TextFormat(Shape):
    type: Literal["text"]


class JsonObjectFormat(Shape):
    type: Literal["json_object"]


class JsonSchemaFormat(Shape):
    type: Literal["json_schema"]
    json_schema: JsonSchema


ResponseFormat = Annotated[TextFormat | JsonObjectFormat | JsonSchemaFormat, Field(discriminator="type")]


class _Identified(Shape):
    """Fields that identify the caller and change nothing in the answer (as at OpenAI without stored outputs)."""
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    metadata: Annotated[dict[str, str], Field(max_length=16)] | None = None
    service_tier: str | None = None


class _Sampled(Shape):
    """The decoding settings chat and legacy completions share (OpenAI's ranges)."""
    model: str
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    seed: Annotated[int, Field(ge=-(2**63), le=2**63 - 1)] | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    frequency_penalty: Penalty | None = None
    presence_penalty: Penalty | None = None
    logit_bias: Annotated[dict[str, Bias], Field(max_length=1024)] | None = None


class ChatRequest(_Identified, _Sampled):
    only_known_fields: ClassVar[bool] = True  # OpenAI's 400 for a field it does not know
    messages: list[Message] = Field(min_length=1)
    max_tokens: Annotated[int, Field(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1)] | None = None
    tools: list[Tool] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    response_format: ResponseFormat | None = None
    # OpenAI's, refused when asked for (lorakit.server.chat_request.REFUSED says why)
    store: bool | None = None
    audio: object = None
    modalities: list[str] | None = None
    prediction: object = None
    functions: object = None
    function_call: object = None
    reasoning_effort: object = None
    verbosity: object = None
    web_search_options: object = None


TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]


class CompletionRequest(_Sampled):
    """OpenAI's legacy completions (what lm-eval's local-completions sends)."""
    only_known_fields: ClassVar[bool] = True  # OpenAI's 400 for a field it does not know
    prompt: Annotated[str, Field(min_length=1)] | Annotated[list[str], Field(min_length=1)] | TokenIds | \
        Annotated[list[TokenIds], Field(min_length=1)]
    max_tokens: Annotated[int, Field(ge=0)] | None = None
    best_of: Annotated[int, Field(ge=1, le=128)] | None = None
    logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    echo: bool | None = None
    user: str | None = None
    suffix: str | None = None  # refused when set: no model served here fills in the middle


class InputText(Shape):
    type: Literal["input_text", "output_text", "text"]
    text: str


class InputMessage(Shape):
    type: Literal["message"] | None = None
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[InputText]


class ResponsesSchemaFormat(Shape):
    type: Literal["json_schema"]
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    schema_: dict = Field(alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(Shape):
    format: Annotated[TextFormat | JsonObjectFormat | ResponsesSchemaFormat, Field(discriminator="type")] | None = None


class ResponsesRequest(_Identified):
    """OpenAI's Responses API, its text subset (tools, stored conversations and reasoning are refused)."""
    only_known_fields: ClassVar[bool] = True  # OpenAI's 400 for a field it does not know
    model: str
    input: Annotated[str, Field(min_length=1)] | Annotated[list[InputMessage], Field(min_length=1)]
    instructions: str | None = None
    max_output_tokens: Annotated[int, Field(ge=1)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    stream: bool | None = None
    text: TextConfig | None = None
    truncation: Literal["disabled"] | None = None
    parallel_tool_calls: bool | None = None
    include: list[str] | None = None  # lorakit.server.responses_api.INCLUDABLE
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    # OpenAI's, refused when asked for (lorakit.server.responses_api.REFUSED says why)
    store: bool | None = None
    previous_response_id: object = None
    conversation: object = None
    tools: object = None
    tool_choice: object = None
    reasoning: object = None
    background: object = None
    prompt: object = None
    max_tool_calls: object = None
    stream_options: object = None
