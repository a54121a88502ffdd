"""The engines that answer prompts, and the one place they are made.

Every local engine answers rendered prompts of one base model and its adapters by name, greedily for evaluation:

    name                    "lorakit" or "vllm" (part of the generation cache's key)
    base, quant, batch_size the base model (lorakit.models.loading.BaseModel), its quantization, rows at once
    adapters                {name: folder} of the adapters added
    add_adapter(name, path) serve an adapter under a name
    generate(prompts, adapter=None | name, max_new_tokens, desc, merge=None) -> answers
    generate_mixed([(adapter | None, prompts), ...], max_new_tokens) -> answers per candidate, in shared batches
    release()               free the model (the next answer loads it again)
    loads                   how many times the base model was loaded

lorakit's engine (lorakit.inference.engine) decodes with its one loop (lorakit.inference.decode); the server
schedules requests on it per step (lorakit.inference.scheduler). vLLM's (lorakit.inference.vllm_engine) is a vLLM
server run beside lorakit. A model behind an OpenAI-compatible API (lorakit.inference.api_engine) answers
conversations rather than rendered prompts: `chat(model, conversations, ...)`.
"""

from __future__ import annotations

from typing import Protocol

from lorakit.core.errors import ConfigError
from lorakit.inference.api_engine import ApiEngine
from lorakit.inference.engine import Engine
from lorakit.inference.vllm_engine import VllmEngine, find, problems
from lorakit.openai.api import api_key

KINDS = ("auto", "lorakit", "vllm")


class LocalEngine(Protocol):
    name: str
    adapters: dict
    batch_size: int
    loads: int

    def add_adapter(self, name: str, path) -> None: ...

    def generate(self, prompts: list[str], *, adapter: str | None, max_new_tokens: int, desc: str = "",
                 merge: str | None = None) -> list[str]: ...

    def generate_mixed(self, jobs: list[tuple[str | None, list[str]]], *,
                       max_new_tokens: int) -> list[list[str]]: ...

    def release(self) -> None: ...


def make(kind: str, base, *, quant: dict | None, batch_size: int, cuda: bool,
         settings: dict | None = None) -> LocalEngine:
    """The engine `kind` names (eval.engine, serve's --engine): lorakit (its own, any machine), vllm, or auto
    (vLLM on CUDA when it is installed and the base is not quantized, else lorakit's)."""
    if kind not in KINDS:
        raise ConfigError(problems(kind, quant=quant, settings=settings)[0])
    python = (settings or {}).get("python")
    if kind == "vllm" or (kind == "auto" and cuda and not quant and find(python) is not None):
        return VllmEngine(base, quant=quant, batch_size=batch_size, cuda=cuda, settings=settings)
    return Engine(base, quant=quant, batch_size=batch_size, cuda=cuda)


def api(settings) -> ApiEngine:
    """The engine of a model behind an OpenAI-compatible API (eval.openai or the backend's settings); a missing
    key stops here, before anything is asked."""
    engine = ApiEngine(settings)
    api_key(engine.settings)
    return engine
