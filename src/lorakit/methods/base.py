"""A training method as one unit, and the registry that names them.

A method holds all of itself: its settings (method.* in the run's configuration) and their checks, the data it
trains on (chat examples, preference pairs or tasks) and how a line is encoded, how its trainer is built, what its
evaluation adds, and its mapping to and from OpenAI's `method` object (the server's fine-tuning jobs, and
backend=openai). The stages, the configuration checks, the job API and the hosted backend ask the registry for the
method a run or job names; none of them compares method names.

Adding a method is one file: a subclass of Method, registered with `register(MyMethod())`. Built-in methods have
their settings in conf/method/<name>.yaml; another method gives them as `defaults` (registered with Hydra's config
store, so `python -m train method=<name>` composes them). lorakit imports the modules named in LORAKIT_METHODS
(comma-separated) and the `lorakit.methods` entry points of installed packages, so `python -m train` and the
server's job processes know the same methods.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from omegaconf import DictConfig
from pydantic import BaseModel, ConfigDict, Field

from lorakit.core.errors import UserError

Auto = Literal["auto"]
DATA = {  # what a method's files hold -> how a user is told to write them
    "chat": 'chat examples: one JSON object per line with "messages" ending in the assistant reply to learn',
    "pairs": 'preference pairs: one JSON object per line with "input", "preferred_output" and '
             '"non_preferred_output" (OpenAI\'s), or "prompt", "chosen" and "rejected"',
    "tasks": 'tasks: one JSON object per line with "messages" ending in the user turn to answer, plus the fields '
             "the grader reads",
}
SEQUENCE_COLUMNS = ("input_ids", "labels", "length", "line")
PAIR_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids", "length", "line")


class Hyperparameters(BaseModel):
    """OpenAI's method.<type>.hyperparameters every method takes; "auto" (or null) leaves lorakit's default."""
    model_config = ConfigDict(strict=True, extra="forbid")  # an unknown hyperparameter would be silently unused
    n_epochs: Auto | Annotated[int, Field(ge=1, le=50)] | None = "auto"  # null: "auto" (the SDK sends it so)
    batch_size: Auto | Annotated[int, Field(ge=1, le=256)] | None = "auto"
    learning_rate_multiplier: Auto | Annotated[float, Field(ge=1e-6, le=100)] | None = "auto"


class UnknownMethod(UserError):
    """A run or job names no registered method."""


class Method:
    """A training method; the defaults here are supervised fine-tuning's, each overridden where a method differs."""
    name: ClassVar[str] = ""
    data: ClassVar[str] = "chat"                            # a key of DATA
    hyperparameters: ClassVar[type[Hyperparameters]] = Hyperparameters
    openai_fields: ClassVar[tuple[str, ...]] = ()           # besides hyperparameters in OpenAI's method.<name>
    columns: ClassVar[tuple[str, ...] | None] = SEQUENCE_COLUMNS  # the encoded rows' columns (None: as they are)
    defaults: ClassVar[dict[str, Any] | None] = None        # method.* for a method without conf/method/<name>.yaml

    # the run's configuration
    def check(self, cfg: DictConfig) -> list[str]:
        """Problems with method.* (each with its fix), before anything loads."""
        extra = sorted(k for k in (cfg.get("method") or {}) if k != "name")
        return [f"method: {extra} are settings of another method; method={self.name} is set with train.* "
                "(trl.SFTConfig fields)"] if extra else []

    # prepare
    def task_fields(self, cfg: DictConfig) -> set[str] | None:
        """The fields every task line must have (a method that trains on tasks); None for other data."""
        return None

    def encode(self, examples: list, tokenizer, eot_ids: set[int], data) -> tuple[list[dict], list]:
        """(encoded rows, findings) of one split's checked examples."""
        from lorakit.data.encoding import encode_split

        return encode_split(examples, tokenizer, eot_ids, data)

    # train
    def build_trainer(self, cfg: DictConfig, run_dir: Path, base, *, cuda: bool, report_to: str):
        from lorakit.training.trainer import build_trainer

        return build_trainer(cfg, run_dir, base, cuda=cuda, report_to=report_to)

    # evaluate
    def evaluation(self, cfg: DictConfig) -> tuple[DictConfig, dict[str, dict] | None]:
        """The configuration the evaluation runs with, and the graders it adds (None: the metrics alone)."""
        return cfg, None

    def extra_metrics(self, cfg: DictConfig, base, adapter_dir: Path, start: Path | None, rows: list[dict], *,
                      cuda: bool) -> dict[str, float]:
        """Metrics of the tuned model beyond the comparison's (e.g. DPO's rewards on held-out pairs)."""
        return {}

    # OpenAI's method object
    def openai_method(self, cfg: DictConfig) -> dict:
        """The hosted job's `method` (backend=openai) from backend.*: {"type": name, name: {"hyperparameters"}}."""
        backend = cfg.backend
        hp = {"n_epochs": backend.n_epochs if backend.n_epochs in (None, "auto") else int(backend.n_epochs),
              "batch_size": backend.batch_size, "learning_rate_multiplier": backend.learning_rate_multiplier}
        return {"type": self.name, self.name: {"hyperparameters": hp}}

    def job_overrides(self, job: dict, hp: dict, run_dir: Path, base_model: str) -> list[str]:
        """`python -m train` overrides for a server job's method-specific hyperparameters (hp: checked, "auto"
        where not given). The generic ones (epochs, learning rate, validation) are the job command's."""
        return [f"train.per_device_train_batch_size={hp['batch_size']}"] if hp["batch_size"] != "auto" else []

    def reported_batch(self, config: dict, batch: Any) -> Any:
        """The batch size OpenAI would report for a finished job, from the run's configuration."""
        return batch

    def unused(self, hp: dict) -> list[str]:
        """Hyperparameters given a value that has no meaning for lorakit's trainer (accepted, reported)."""
        return []

    def file_problem(self, job: dict, path: Path, filename: str) -> str | None:
        """What is wrong with a job's checked upload for this method beyond its kind, else None."""
        return None


_REGISTRY: dict[str, Method] = {}
_plugins_loaded = False


def register(method: Method) -> Method:
    """Make a method known by its name (its defaults registered as Hydra's method=<name> when it has no YAML)."""
    if not method.name or method.data not in DATA:
        raise ValueError(f"{type(method).__name__}: a method needs a name and data in {sorted(DATA)}")
    _REGISTRY[method.name] = method
    if method.defaults is not None:
        from hydra.core.config_store import ConfigStore

        ConfigStore.instance().store(group="method", name=method.name, node={**method.defaults, "name": method.name})
    return method


def load_plugins() -> None:
    """Import the methods of LORAKIT_METHODS and of installed packages' `lorakit.methods` entry points (once)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for point in entry_points(group="lorakit.methods"):
        point.load()
    for module in filter(None, (m.strip() for m in os.environ.get("LORAKIT_METHODS", "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise UserError(f"LORAKIT_METHODS: cannot import {module!r} ({err}); name modules on the Python path, "
                            "comma-separated") from None


def get(name: str) -> Method:
    """The method registered under `name`.

    Raises:
        UnknownMethod: naming the methods there are.
    """
    load_plugins()
    if name not in _REGISTRY:
        raise UnknownMethod(f"method: {name!r} is unknown; use one of {', '.join(names())} "
                            "(another is registered from a module named in LORAKIT_METHODS)")
    return _REGISTRY[name]


def of(cfg) -> Method:
    """The method a run's configuration names (method.name; supervised where it names none)."""
    return get((cfg.get("method") or {}).get("name", "supervised"))


def names() -> list[str]:
    load_plugins()
    return list(_REGISTRY)
