"""`/v1/fine_tuning/alpha/graders/validate` and `/run` (OpenAI's shapes), on lorakit's graders.

validate answers the grader back when it can run, else a 400 listing every problem and its fix. run grades one
model_sample against one item and answers with the reward, the sub-rewards of a multi grader and OpenAI's metadata
(its error flags, scores, execution time). A python grader runs only in a sandbox (lorakit.core.sandbox), off the
event loop, at most PYTHON_AT_ONCE requests' at a time (string and text graders never wait behind them); a
score_model / label_model grader is answered by a model this server serves (its base or a fine-tuned model),
greedily, through the same decoding batches as chat. Grading stops, its sandbox killed, when the client leaves or
the request passes RUN_LIMIT_S.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time

from fastapi import APIRouter, Request

from lorakit.core.sandbox import SandboxUnavailable
from lorakit.evaluation.graders import python_grader, spec
from lorakit.evaluation.graders.run import grade
from lorakit.server.api_errors import APIError
from lorakit.server.chat_api import before_gone
from lorakit.server.chat_request import pending_of
from lorakit.server.job_requests import GraderRunRequest, GraderValidateRequest
from lorakit.server.requests import ChatRequest, json_body, parse

ERROR_FLAGS = ("formula_parse_error", "invalid_variable_error", "model_grader_parse_error",
               "model_grader_refusal_error", "model_grader_server_error", "other_error", "python_grader_runtime_error",
               "python_grader_server_error", "sample_parse_error", "truncated_observation_error",
               "unresponsive_reward_error")
MODEL_TYPES = {"score_model", "label_model"}
PYTHON_AT_ONCE = 4   # requests with python graders graded at once (a sandbox each); more wait
RUN_LIMIT_S = 120.0  # a graders/run request's grading, all its graders together (OpenAI's python graders get 2 min)


def _parts(grader: dict) -> list[dict]:
    return list(grader["graders"].values()) if grader["type"] == "multi" else [grader]


def model_graders(grader: dict) -> list[dict]:
    """The score_model / label_model graders of a grader (itself, or a multi grader's parts)."""
    return [g for g in _parts(grader) if g.get("type") in MODEL_TYPES]


def has_python(grader: dict) -> bool:
    return any(g.get("type") == "python" for g in _parts(grader))


def checked(state, grader) -> dict:
    """The grader when it can run on this server, else a 400 naming every problem."""
    found = spec.problems(grader)
    if not found and has_python(grader):
        try:
            python_grader.require()
        except SandboxUnavailable as err:
            found = [f"grader: python graders cannot run on this server: {err}"]
    if not found:
        served = {m.id for m in state.registry.all()}
        found = [f"grader.model: {g['model']!r} is not served here; lorakit.serve grades with its own models: "
                 f"{', '.join(sorted(served))}" for g in model_graders(grader) if not _serves(state, g["model"])]
    if found:
        raise APIError(400, f"{len(found)} problem(s) with the grader: " + "; ".join(found), param="grader",
                       code="invalid_grader")
    return grader


def _serves(state, model: str) -> bool:
    try:
        state.registry.get(model)
    except APIError:
        return False
    return True


def asker(state):
    """ask(model, conversations, sampling) through the server's decoding batches, greedily."""
    def ask(model: str, conversations: list[list[dict]], sampling: dict) -> list[str]:
        futures = []
        for messages in conversations:
            chat = parse(ChatRequest, {"model": model, "messages": messages, "temperature": 0,
                                       "max_tokens": int(sampling.get("max_completions_tokens") or 16)})
            pending = pending_of(chat, state).pending
            futures.append(state.scheduler.submit(pending))
        return [future.result()[0].text for future in futures]

    return ask


def run(state, body: dict, grader: dict, stop: threading.Event) -> dict:
    """Grade the request's sample; `stop` set (the client left) or RUN_LIMIT_S passed stops a python grader."""
    item = body.get("item")
    item = item if isinstance(item, dict) else {} if item is None else {"value": item}
    start = time.perf_counter()
    deadline = time.monotonic() + RUN_LIMIT_S
    [result] = grade(grader, [item], [body["model_sample"]], ask=asker(state) if model_graders(grader) else None,
                     cancelled=lambda: stop.is_set() or time.monotonic() > deadline)
    errors = {flag: result.flag == flag for flag in ERROR_FLAGS}
    errors["python_grader_runtime_error_details"] = result.error if result.flag == "python_grader_runtime_error" else None
    if result.flag == "python_grader_server_error":
        errors["python_grader_server_error_type"] = "timeout" if "limit" in result.error else "process_ended"
    else:
        errors["python_grader_server_error_type"] = None
    errors["model_grader_server_error_details"] = result.error if result.flag == "model_grader_server_error" else None
    if result.error and not result.flag:
        errors["other_error"] = True
    scores = dict(result.sub) if result.sub else {grader["name"]: result.score}
    return {"reward": result.score, "sub_rewards": dict(result.sub),
            "metadata": {"name": grader["name"], "type": grader["type"], "errors": errors,
                         "execution_time": round(time.perf_counter() - start, 4), "scores": scores,
                         "token_usage": None, "sampled_model_name": None, "error_message": result.error},
            "model_grader_token_usage_per_model": {}}


async def _unless_gone(request: Request, work, stop: threading.Event):
    """work()'s answer off the event loop; when the client disconnects first, `stop` is set and None comes back."""
    done, answer = await before_gone(request, asyncio.to_thread(work))
    if not done:
        stop.set()  # the python grader's sandbox is killed; the thread ends soon after
    return answer


def router(state) -> APIRouter:
    api = APIRouter()
    python_slots = asyncio.Semaphore(PYTHON_AT_ONCE)

    @api.post("/v1/fine_tuning/alpha/graders/validate")
    async def validate(request: Request):
        _, body = await json_body(request, GraderValidateRequest)
        return {"grader": await asyncio.to_thread(checked, state, body["grader"])}

    @api.post("/v1/fine_tuning/alpha/graders/run")
    async def run_grader(request: Request):
        _, body = await json_body(request, GraderRunRequest)
        grader = await asyncio.to_thread(checked, state, body["grader"])
        stop = threading.Event()
        async with python_slots if has_python(grader) else contextlib.nullcontext():
            return await _unless_gone(request, lambda: run(state, body, grader, stop), stop)

    return api
