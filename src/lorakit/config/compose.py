"""Compose conf/ as `python -m train` does (model names, quantization), lorakit's resolvers, and secrets redacted
from what is written."""

from __future__ import annotations

import re
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lorakit import methods
from lorakit.core.paths import CONF_DIR, DATA_DIR, ROOT
from lorakit.models.loading import model_spec
from lorakit.sweeps import gpus
from lorakit.sweeps.trials import resolver

SECRET_KEY = re.compile(r"(api_?key|token|secret|password)", re.IGNORECASE)


def register_resolvers() -> None:
    """Register `${lorakit_data:}` (the folder of the shipped example data), `${lorakit_root:}` (the checkout
    lorakit runs from; the current folder once installed), `${lorakit_sweep:}` (a sweep's
    folder name from its overrides; lorakit's sweepers pass the sweep's folder to its jobs) and `${lorakit_gpus:}`
    (the number of GPUs this machine lets lorakit use, at least 1)."""

    if not OmegaConf.has_resolver("lorakit_data"):
        OmegaConf.register_new_resolver("lorakit_data", lambda: str(DATA_DIR))
    if not OmegaConf.has_resolver("lorakit_root"):
        OmegaConf.register_new_resolver("lorakit_root", lambda: str(ROOT))
    if not OmegaConf.has_resolver("lorakit_gpus"):
        OmegaConf.register_new_resolver("lorakit_gpus", lambda: max(len(gpus.visible()), 1))
    if not OmegaConf.has_resolver("lorakit_sweep"):
        OmegaConf.register_new_resolver("lorakit_sweep", resolver)


def model_overrides(spec: str, quant: str | None = None) -> list[str]:
    """How `python -m train` names a base model given as a conf/model name, or as a folder / hub id in place of the
    default model's (with the quantization `quant`, else the model config's own). The server passes them to its
    fine-tuning jobs; `compose(*model_overrides(...))` gives the model and quant sections train would use.

    Raises:
        ModelNotFoundError: spec is none of them.
    """

    model_spec(spec, setting="--model")  # a clear error for a name that is none of them
    named = (CONF_DIR / "model" / f"{spec}.yaml").is_file()
    overrides = [f"model={spec}"] if named else [f"model.name_or_path='{spec}'"]  # not the embedded GGUF (models.embedded)
    return overrides + ([f"quant={quant}"] if quant else [])


def compose(*overrides: str) -> DictConfig:
    """Compose conf/config.yaml with command-line style overrides, as `python -m train` would (no run folder)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_resolvers()
    methods.load_plugins()  # a method registered from a module gives its method=<name> settings
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def redact(container: Any) -> Any:
    """Return a copy of a plain config container with secret-looking values replaced by '***'."""
    if isinstance(container, dict):
        return {k: ("***" if SECRET_KEY.search(str(k)) and v else redact(v)) for k, v in container.items()}
    if isinstance(container, list):
        return [redact(v) for v in container]
    return container
