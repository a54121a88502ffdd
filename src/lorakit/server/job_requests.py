"""The fine-tuning jobs' and graders' request bodies (OpenAI's shapes), checked as every body is
(lorakit.server.requests)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field

from lorakit.server.requests import Shape

Auto = Literal["auto"]


class Hyperparameters(Shape):
    model_config = ConfigDict(strict=True, extra="forbid")  # an unknown hyperparameter would be silently unused
    n_epochs: Auto | Annotated[int, Field(ge=1, le=50)] | None = "auto"  # null: "auto" (the SDK sends it so)
    batch_size: Auto | Annotated[int, Field(ge=1, le=256)] | None = "auto"
    learning_rate_multiplier: Auto | Annotated[float, Field(ge=1e-6, le=100)] | None = "auto"


class DpoHyperparameters(Hyperparameters):
    beta: Auto | Annotated[float, Field(gt=0, le=100)] | None = "auto"


class ReinforcementHyperparameters(Hyperparameters):
    batch_size: Auto | Annotated[int, Field(ge=1, le=256)] | None = "auto"  # tasks per step, each answered n times
    compute_multiplier: Auto | Annotated[float, Field(gt=0, le=16)] | None = "auto"
    eval_interval: Auto | Annotated[int, Field(ge=1)] | None = "auto"
    eval_samples: Auto | Annotated[int, Field(ge=1, le=64)] | None = "auto"
    reasoning_effort: Literal["default", "low", "medium", "high"] | None = "default"


class Supervised(Shape):
    hyperparameters: Hyperparameters | None = None


class Dpo(Shape):
    hyperparameters: DpoHyperparameters | None = None


class Reinforcement(Shape):
    grader: dict  # checked whole by lorakit.evaluation.graders.spec (every problem named), not field by field here
    hyperparameters: ReinforcementHyperparameters | None = None


class Method(Shape):
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: Supervised | None = None
    dpo: Dpo | None = None
    reinforcement: Reinforcement | None = None


class JobRequest(Shape):
    model: str
    training_file: str
    validation_file: str | None = None
    hyperparameters: Hyperparameters | None = None
    method: Method | None = None
    suffix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None
    seed: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None
    metadata: dict[str, str] | None = None
    integrations: list[dict] | None = None


class GraderValidateRequest(Shape):
    grader: dict


class GraderRunRequest(GraderValidateRequest):
    model_sample: str
    item: dict | list | str | int | float | bool | None = None
