"""Answers from a model behind an OpenAI-compatible chat API (OpenAI, lorakit.serve, vLLM, ...): API candidates
in compare (`openai:<model id>`), an API judge (`eval.judge.model=openai:<model id>`), API model graders and
backend=openai's evaluation. Requests run concurrently; decoding is greedy (temperature 0) with the run's seed.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor

from tqdm.auto import tqdm

from lorakit.core.errors import ApiError
from lorakit.openai.api import answer_text, client


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
