"""`/v1/fine_tuning/jobs`: create, retrieve, list (cursor-paged), cancel, pause, resume, events, checkpoints (OpenAI's
shapes)."""

from __future__ import annotations

import random
import re
import time

from fastapi import APIRouter, Request

from lorakit import methods
from lorakit.server import graders_api, job_slots
from lorakit.server.api_errors import APIError
from lorakit.server.job_requests import job_request
from lorakit.server.requests import json_body
from lorakit.server.store import new_id, page


def hyperparameters(body: dict) -> tuple[str, dict]:
    """(method type, its hyperparameters): method.<type>.hyperparameters over the older top-level hyperparameters,
    each "auto" (or null) or a value in the range the method's schema checked."""
    method = body.get("method") or {"type": "supervised"}
    kind = method["type"]
    given = dict(body.get("hyperparameters") or {})
    given.update((method.get(kind) or {}).get("hyperparameters") or {})
    checked = methods.get(kind).hyperparameters.model_validate(given).model_dump()  # checked with its body: converts
    return kind, {name: "auto" if value is None else value for name, value in checked.items()}


def job_grader(state, body: dict) -> dict:
    """A job's grader (method.<type>.grader), checked (every problem named, a 400); a model grader must be the base
    model, which the job's own process loads (a fine-tuned model is served here, not loadable by the job).

    Raises:
        APIError: 400 naming each problem.
    """
    kind = body["method"]["type"]
    given = (body["method"].get(kind) or {}).get("grader")
    if given is None:
        raise APIError(400, f'a {kind} job trains on a grader\'s scores: set method={{"type": "{kind}", "{kind}": '
                       '{"grader": {...}}}', param=f"method.{kind}.grader", code="invalid_grader")
    grader = graders_api.checked(state, given)
    base = state.registry.base
    for sub in graders_api.model_graders(grader):
        if state.registry.get(sub["model"]) is not base:
            raise APIError(400, f"grader.model: {sub['model']!r} is a fine-tuned model; a {kind} job's model grader "
                           f"runs in the job's own process, on the base model {base.id!r}: grade with it",
                           param="grader", code="invalid_grader")
    return grader


FIELDS = {"grader": job_grader}  # a method's own fields the server checks (others are kept as the request gave them)


def found_job(store, job_id: str) -> dict:
    """The job, or OpenAI's 404."""
    found = store.job(job_id)
    if found is None:
        raise APIError(404, f"Could not find fine-tune job: {job_id}", param="fine_tuning_job_id",
                       code="fine_tune_not_found")
    return found[0]


def uploaded_file(store, body: dict, param: str) -> str | None:
    """The file id of training_file / validation_file, which must be an upload with purpose fine-tune."""
    file_id = body.get(param)
    if file_id is None and param == "validation_file":
        return None
    meta = store.file(file_id) if isinstance(file_id, str) else None
    if meta is None:
        raise APIError(400, f"invalid {param}: {file_id!r} is no uploaded file; upload it with "
                       "client.files.create(file=..., purpose='fine-tune')", param=param, code="invalid_file")
    if meta["purpose"] != "fine-tune":
        raise APIError(400, f"invalid {param}: {file_id} was uploaded with purpose {meta['purpose']!r}, not "
                       "'fine-tune'", param=param, code="invalid_file")
    return file_id


def starting_point(state, model) -> str | None:
    """The adapter a job on `model` starts from: None for the base model (or an alias of it), else the served
    fine-tuned model's.

    Raises:
        APIError: 400 when the server does not serve that model.
    """
    try:
        served = state.registry.get(model)
    except APIError:
        raise APIError(400, f"Model {model!r} is not available for fine-tuning on this server; it fine-tunes "
                       f"{state.registry.base.id!r} and the models fine-tuned from it", param="model",
                       code="model_not_available") from None
    return None if served.adapter is None else str(served.adapter)


def new_job(state, body: dict) -> tuple[dict, dict]:
    """A job in OpenAI's shape from a checked create request, status validating_files, and its private part (the
    adapter it starts from)."""
    model = body.get("model")
    start = starting_point(state, model)
    suffix = body.get("suffix")
    if suffix is not None and (not isinstance(suffix, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", suffix)):
        raise APIError(400, "'suffix' must be 1 to 64 letters, digits, '-', '_' or '.'", param="suffix",
                       code="invalid_value")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**31):
        raise APIError(400, "'seed' must be an integer from 0 to 2147483647", param="seed", code="invalid_value")
    kind, hp = hyperparameters(body)
    own = body["method"].get(kind) or {} if body.get("method") else {}
    method: dict = {**{f: FIELDS[f](state, body) if f in FIELDS else own[f] for f in methods.get(kind).openai_fields},
                    "hyperparameters": hp}
    base = state.registry.base.id
    job = {"id": new_id("ftjob"), "object": "fine_tuning.job", "created_at": int(time.time()), "error": None,
            "fine_tuned_model": None, "finished_at": None, "hyperparameters": hp, "model": model if start else base,
            "organization_id": "org-lorakit", "result_files": [], "seed": seed if seed is not None else
            random.randrange(2**31), "status": "validating_files", "trained_tokens": None,
            "training_file": uploaded_file(state.store, body, "training_file"),
            "validation_file": uploaded_file(state.store, body, "validation_file"),
            "estimated_finish": None, "integrations": [], "metadata": body.get("metadata"),
            "method": {"type": kind, kind: method}, "user_provided_suffix": suffix}
    return job, {"init_from": start} if start else {}


def router(state) -> APIRouter:
    api = APIRouter()
    store, runner = state.store, state.runner

    @api.post("/v1/fine_tuning/jobs")
    async def create(request: Request):
        _, body = await json_body(request, job_request(tuple(methods.names())))
        job, private = new_job(state, body)
        unfit = runner.slots.problem(job)
        if unfit:
            raise APIError(400, unfit, param=f"metadata.{job_slots.METADATA_KEY}", code="invalid_value")
        store.put_job(job, private)
        store.add_event(job["id"], f"Validating training file: {job['training_file']}"
                        + (f" and validation file: {job['validation_file']}" if job["validation_file"] else ""))
        for unused in methods.get(job["method"]["type"]).unused(job["hyperparameters"]):
            store.add_event(job["id"], f"hyperparameter {unused} is accepted, and has no meaning for lorakit's "
                            f"trainer on {state.registry.base.id}: not used", level="warn")
        if body.get("integrations"):
            store.add_event(job["id"], "integrations are not supported by lorakit.serve and are ignored (lorakit "
                            "logs to W&B with logger=wandb in its own runs)", level="warn")
        return job

    @api.get("/v1/fine_tuning/jobs")
    async def list_jobs(after: str | None = None, limit: int = 20):
        return page(store.jobs(), after, max(1, min(limit, 100)))

    @api.get("/v1/fine_tuning/jobs/{job_id}")
    async def retrieve(job_id: str):
        return found_job(store, job_id)

    @api.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    async def cancel(job_id: str):
        found_job(store, job_id)
        return runner.cancel(job_id)

    @api.post("/v1/fine_tuning/jobs/{job_id}/pause")
    async def pause(job_id: str):
        found_job(store, job_id)
        return runner.pause(job_id)

    @api.post("/v1/fine_tuning/jobs/{job_id}/resume")
    async def resume(job_id: str):
        found_job(store, job_id)
        return runner.resume(job_id)

    @api.get("/v1/fine_tuning/jobs/{job_id}/events")
    async def events(job_id: str, after: str | None = None, limit: int = 20):
        found_job(store, job_id)
        return page(store.events(job_id), after, max(1, min(limit, 1000)))

    @api.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
    async def checkpoints(job_id: str, after: str | None = None, limit: int = 10):
        return page(runner.checkpoints(found_job(store, job_id)), after, max(1, min(limit, 100)))

    return api
