"""The fine-tuning jobs' and graders' request bodies (OpenAI's shapes), checked as every body is
(lorakit.server.requests). A job's `method` is shaped by the registered methods (lorakit.methods): its type one of
their names, method.<name> holding that method's hyperparameters and its own fields (reinforcement: the grader)."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Literal

from pydantic import BaseModel, Field, create_model

from lorakit import methods
from lorakit.server.requests import Shape


def _method_shape(method: methods.Method) -> type[BaseModel]:
    """method.<name>: its hyperparameters and its own fields (each a JSON object, checked whole by the method's
    server side, as the grader by lorakit.evaluation.graders.spec)."""
    fields = {"hyperparameters": (method.hyperparameters | None, None), **{f: (dict, ...) for f in method.openai_fields}}
    return create_model(f"{method.name.title()}Method", __base__=Shape, **fields)


@cache
def job_request(names: tuple[str, ...]) -> type[BaseModel]:
    """A create-job body's shape for the methods `names` (methods.names(), once the plugins are loaded)."""
    per = {name: (_method_shape(methods.get(name)) | None, None) for name in names}
    method = create_model("Method", __base__=Shape, type=(Literal[names], ...), **per)
    return create_model("JobRequest", __base__=_JobRequest, method=(method | None, None))


class _JobRequest(Shape):
    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: methods.Hyperparameters | None = None
    suffix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    metadata: dict[str, str] | None = None
    integrations: list[dict] | None = None


class GraderValidateRequest(Shape):
    grader: dict


class GraderRunRequest(GraderValidateRequest):
    model_sample: str
    item: dict | list | str | int | float | bool | None = None
