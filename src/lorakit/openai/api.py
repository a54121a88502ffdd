"""The OpenAI-compatible API as lorakit reaches it (OpenAI, lorakit.serve, vLLM, ...): the endpoint in force, its
key, the SDK client, and a reply read as lorakit scores it. lorakit.inference.api_engine asks it for the answers
of API candidates and judges; lorakit.openai.hosted trains through it; migrate reads accounts through it.

The endpoint: `eval.openai` (base_url null = OpenAI; api_key_env names the environment variable holding the key),
or `backend` when backend=openai. The key is read from the environment only.
"""

from __future__ import annotations

import json
import logging
import os

from omegaconf import DictConfig

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
