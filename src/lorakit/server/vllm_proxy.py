"""`lorakit.serve --engine vllm`: chat completions, completions and responses are decoded by vLLM's server
(lorakit.inference.vllm_engine: started and stopped with lorakit.serve, on 127.0.0.1 with its own random key),
everything else (files, jobs, graders, models) stays lorakit's.

Each request is first checked by lorakit exactly as on its own engine (the same 400s naming the same fields, the
same refusals), then sent on to vLLM under the adapter's vLLM name; the reply's `model` is the id the client
asked for. An adapter a job has just made is loaded into vLLM on its first request (`/v1/load_lora_adapter`).
"""

from __future__ import annotations

import json
import logging
import threading

from fastapi.responses import JSONResponse, StreamingResponse

log = logging.getLogger("lorakit.server")


class VllmProxy:
    def __init__(self, engine):
        self.engine = engine  # a lorakit.inference.vllm_engine.VllmEngine
        self.lock = threading.Lock()
        self.requests = 0

    def start(self) -> None:
        self.engine.start()

    def stop(self) -> None:
        self.engine.release()

    def name_of(self, served) -> str:
        """The adapter's name in vLLM (loaded there first if it is new), or vLLM's name for the base."""
        if served.adapter is None:
            return "base"
        with self.lock:
            if served.internal not in self.engine.adapters:
                self.engine.add_adapter(served.internal, served.adapter)
        return served.internal

    def forget(self, served) -> None:
        """A model no longer served: unloaded from vLLM too."""
        if served.adapter is not None:
            with self.lock:
                self.engine.remove_adapter(served.internal)

    async def forward(self, route: str, body: dict, served, *, defaults: dict | None = None):
        """vLLM's answer to the checked request, with the client's model id in it (streamed when asked)."""
        import httpx

        name = self.name_of(served)  # a quick local request to vLLM when the adapter is new
        sent = {**(defaults or {}), **body, "model": name}
        headers = {"authorization": f"Bearer {self.engine.key}"}
        self.requests += 1
        client = httpx.AsyncClient(base_url=self.engine.url, timeout=None, headers=headers)
        if not body.get("stream"):
            async with client:
                response = await client.post(route, json=sent)
            return JSONResponse(_renamed(response.json(), served.id), status_code=response.status_code)
        request = client.build_request("POST", route, json=sent)
        response = await client.send(request, stream=True)

        async def events():
            try:
                async for line in response.aiter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        line = "data: " + json.dumps(_renamed(json.loads(line[6:]), served.id), ensure_ascii=False)
                    yield line + "\n"
            finally:
                await response.aclose()
                await client.aclose()

        return StreamingResponse(events(), status_code=response.status_code, media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})


def _renamed(data, model_id: str):
    """vLLM's reply (or stream event) with the model named as the client named it."""
    if isinstance(data, dict):
        if "model" in data:
            data["model"] = model_id
        if isinstance(data.get("response"), dict) and "model" in data["response"]:  # Responses API events
            data["response"]["model"] = model_id
    return data
