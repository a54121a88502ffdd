"""Answers from a model behind an OpenAI-compatible chat API (OpenAI, lorakit.serve, vLLM, ...): API candidates
in compare (`openai:<model id>`), an API judge (`eval.judge.model=openai:<model id>`) and backend=openai's
evaluation. Requests run concurrently; decoding is greedy (temperature 0) with the run's seed.

The endpoint: `eval.openai` (base_url null = OpenAI; api_key_env names the environment variable holding the key),
or `backend` when backend=openai. The key is read from the environment only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor

from omegaconf import DictConfig
from tqdm.auto import tqdm

from lorakit.core.errors import ApiError

log = logging.getLogger(__name__)


def endpoint(cfg: DictConfig) -> DictConfig:
    """The API settings in force: the backend's with backend=openai, else eval.openai."""
    backend = cfg.get("backend")
    if backend is not None and backend.get("name") == "openai":
        return backend
    return cfg.eval.openai


def api_key(settings) -> str:
    """The key from the environment variable settings.api_key_env; a local server without a key gets a
    placeholder (the SDK needs some text).

    Raises:
        ApiError: OpenAI itself (base_url null) and no key in the environment.
    """
    env = settings.get("api_key_env") or "OPENAI_API_KEY"
    key = os.environ.get(env)
    if key:
        return key
    if settings.get("base_url"):
        return "no-key"
    raise ApiError(f"no API key: set the environment variable {env} (the key is read from the environment "
                         "only), or point eval.openai.base_url / backend.base_url at an OpenAI-compatible server")


def client(settings):
    from openai import OpenAI

    for name in ("httpx", "httpx2"):  # one INFO line per request otherwise
        logging.getLogger(name).setLevel(logging.WARNING)
    return OpenAI(base_url=settings.get("base_url") or None, api_key=api_key(settings),
                  max_retries=int(settings.get("max_retries", 5)), timeout=float(settings.get("timeout_s", 600)))


def _arguments(text: str):
    """A tool call's arguments, parsed; kept as the text the model wrote when that is not JSON (scored as such)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def answer_text(message) -> str:
    """A chat reply's message as lorakit scores it: its text, or its tool calls as lorakit renders them (JSON of
    name and arguments, one call per line)."""
    if message.tool_calls:
        return "\n".join(json.dumps({"name": c.function.name, "arguments": _arguments(c.function.arguments)},
                                    ensure_ascii=False) for c in message.tool_calls)
    return (message.content or "").strip()


class ApiEngine:
    """Chat requests to one endpoint, `concurrency` at a time."""

    def __init__(self, settings):
        self.settings = settings
        self.base_url = settings.get("base_url") or "https://api.openai.com/v1"
        self.concurrency = int(settings.get("concurrency", 8))
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = client(self.settings)
        return self._client

    def key(self, model: str, max_tokens: int, seed: int) -> str:
        """The generation cache's key for this endpoint's model and decoding."""
        parts = {"api": self.base_url, "model": model, "max_tokens": max_tokens, "seed": seed, "decoding": "greedy"}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24]

    def chat(self, model: str, conversations: list[list[dict]], *, max_tokens: int, seed: int, desc: str,
             tools: list | None = None) -> list[str]:
        """The reply text to each conversation (OpenAI-format messages), in order."""
        import openai

        tools = tools or [None] * len(conversations)

        def ask(i: int) -> str:
            extra = {"tools": tools[i]} if tools[i] else {}
            reply = self.client.chat.completions.create(model=model, messages=conversations[i], temperature=0,
                                                        max_tokens=max_tokens, seed=seed, **extra)
            return answer_text(reply.choices[0].message)

        try:
            with ThreadPoolExecutor(self.concurrency) as pool:
                return list(tqdm(pool.map(ask, range(len(conversations))), total=len(conversations), desc=desc,
                                 unit="ex"))
        except openai.APIStatusError as err:
            raise ApiError(f"{desc}: {self.base_url} answered {err.status_code} for model {model!r}: "
                                 f"{err.message}") from None
        except openai.APIConnectionError as err:
            raise ApiError(f"{desc}: cannot reach {self.base_url} ({err}); check eval.openai.base_url / "
                                 "backend.base_url and that the server is running") from None
