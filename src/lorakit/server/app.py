"""The server's parts in one place: what it serves (State) and the FastAPI app over it."""

from __future__ import annotations

import hashlib
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from transformers import PreTrainedTokenizerBase

from lorakit.core import sandbox
from lorakit.inference.scheduler import Scheduler
from lorakit.server import api_errors, chat_api, completions_api, files_api, graders_api, jobs_api, page, responses_api
from lorakit.server.browsers import BrowserRules
from lorakit.server.job_runner import JobRunner
from lorakit.server.registry import Registry
from lorakit.server.security import Guard
from lorakit.server.store import Store
from lorakit.server.vllm_proxy import VllmProxy

log = logging.getLogger("lorakit.server")


@dataclass
class State:
    registry: Registry
    tokenizer: PreTrainedTokenizerBase
    eot_ids: set[int]
    scheduler: Scheduler
    store: Store
    context: int                 # the model's context length in tokens
    default_max_tokens: int      # a completion's limit when the request sets none
    learning_rate: float         # lorakit's default, which learning_rate_multiplier scales
    runner: JobRunner | None = None   # the fine-tuning jobs (set once the state exists: it is the runner's)
    proxy: VllmProxy | None = None    # vLLM decodes the OpenAI routes (--engine vllm)
    fingerprint: str = field(default="")

    def __post_init__(self):
        self.fingerprint = "fp_lorakit_" + hashlib.sha256(self.registry.model_name.encode()).hexdigest()[:8]


def create_app(state: State, *, key: str | None, max_body: int, max_upload: int,
               browsers: BrowserRules) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI):
        state.scheduler.start(preload=state.proxy is None)
        if state.proxy is not None:
            state.proxy.start()  # vLLM loads the model: the server answers once it is ready
        state.runner.start()
        log.info("serving %s", ", ".join(m.id for m in state.registry.all()))
        yield
        state.runner.stop()
        sandbox.close_all()  # python graders still grading
        state.scheduler.stop()
        if state.proxy is not None:
            state.proxy.stop()

    app = FastAPI(title="lorakit", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    api_errors.install(app)

    @app.get("/health")
    async def health():
        """Liveness; the decoding steps the server has run and the rows they decoded (rows / batches: the mean
        batch), the tokens answered, the requests whose client left before their answer ended (their decoding
        stopped there), and the rows that gave up their place to a request below its fair share."""
        return {"status": "ok", "engine": "vllm" if state.proxy is not None else "lorakit",
                "decoding": {"batches": state.scheduler.batches, "rows": state.scheduler.rows,
                             "tokens": state.scheduler.tokens, "abandoned": state.scheduler.abandoned,
                             "preempted": state.scheduler.preempted}}

    routers = [module.router(state) for module in (chat_api, completions_api, responses_api, files_api, jobs_api,
                                                   graders_api, page)]
    for router in routers:
        app.include_router(router)
    app.state.served = sorted({f"{method} {route.path}" for router in routers for route in router.routes
                               for method in route.methods} | {"GET /health"})  # named by a 404
    if browsers.origins:  # CORS headers for the origins allowed with --allow-origin, and only for them
        app.add_middleware(CORSMiddleware, allow_origins=sorted(browsers.origins), allow_methods=["*"],
                           allow_headers=["*"])
    app.add_middleware(Guard, key=key, max_body=max_body, max_upload=max_upload, browsers=browsers)  # outermost
    return app
