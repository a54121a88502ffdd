"""vLLM as the inference engine: `vllm serve <base> --enable-lora` run as its own process (vLLM pins its own
transformers, so it lives in its own environment), on 127.0.0.1 with a random key, started on first use,
health-checked and stopped by lorakit. Adapters are served by name: those known at start with `--lora-modules`
(max_lora_rank and max_loras taken from them), later ones loaded at run time (`/v1/load_lora_adapter`).

Prompts are rendered by lorakit (the same chat template, the same text as lorakit's own engine) and sent to
`/v1/completions` greedily, all at once: vLLM's continuous batching does the rest. The answers go through the
same cache (the engine is part of its key), scoring and reports as lorakit's engine's.

Where vLLM is found: eval.vllm.python (a Python of an environment with vLLM), $LORAKIT_VLLM_PYTHON,
./.venv-vllm (scripts/setup_vllm.sh makes it), or a `vllm` command on PATH.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lorakit.core.distributed import free_port
from lorakit.core.errors import ConfigError
from lorakit.core.paths import ROOT

log = logging.getLogger(__name__)
START_TIMEOUT_S = 900  # loading an 8B model and compiling for the GPU takes minutes


def find(python: str | None = None) -> list[str] | None:
    """The command that starts vLLM's OpenAI server, or None when no vLLM is installed."""
    for candidate in (python, os.environ.get("LORAKIT_VLLM_PYTHON"), str(ROOT / ".venv-vllm" / "bin" / "python")):
        if candidate and Path(candidate).is_file():
            return [candidate, "-m", "vllm.entrypoints.cli.main", "serve"]
    command = shutil.which("vllm")
    return [command, "serve"] if command else None


def problems(kind: str, *, quant: dict | None, settings: dict | None) -> list[str]:
    """What stops the engine `kind` (eval.engine) from running here, each with its fix (the config checks ask
    before anything trains)."""
    if kind not in ("auto", "lorakit", "vllm"):
        return [f"eval.engine={kind!r}: use auto, lorakit or vllm"]
    if kind != "vllm":
        return []
    out = []
    if find((settings or {}).get("python")) is None:
        out.append("eval.engine=vllm: no vLLM found; run `bash scripts/setup_vllm.sh` (it makes ./.venv-vllm), set "
                   "eval.vllm.python to a Python with vLLM, or use eval.engine=lorakit")
    if quant:
        out.append("eval.engine=vllm serves the base unquantized here (bitsandbytes configs are lorakit's engine's); "
                   "add quant=none or use eval.engine=lorakit")
    return out


def _lora_rank(adapter: Path) -> int:
    config = json.loads((Path(adapter) / "adapter_config.json").read_text())
    return int(config.get("r", 8))


class VllmEngine:
    """The local engines' interface (lorakit.inference.engines) over a vLLM server."""

    name = "vllm"

    def __init__(self, base, *, quant: dict | None = None, batch_size: int = 64, cuda: bool,
                 settings: dict | None = None):
        self.base, self.tokenizer, self.eot_ids = base, base.tokenizer, base.eot_ids
        self.quant, self.batch_size, self.cuda = dict(quant or {}), batch_size, cuda
        self.settings = dict(settings or {})
        if found := problems("vllm", quant=self.quant, settings=self.settings):
            raise ConfigError("; ".join(found))
        self.command = find(self.settings.get("python"))
        self.adapters: dict[str, Path] = {}
        self.loads = 0
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.key = ""
        self._log: Path | None = None

    # the server's life

    def _args(self, port: int) -> list[str]:
        s = self.settings
        args = [*self.command, str(self.base.path), "--host", "127.0.0.1", "--port", str(port),
                "--served-model-name", "base", "--max-model-len", str(s.get("max_model_len") or self.base.context),
                "--seed", "0", "--disable-log-stats"]
        if not self.cuda:
            args += ["--dtype", "float32"]  # the dtype lorakit's engine decodes in on a CPU: the same answers
        if s.get("gpu_memory_utilization"):
            args += ["--gpu-memory-utilization", str(s["gpu_memory_utilization"])]
        ranks = [_lora_rank(p) for p in self.adapters.values()]
        args += ["--enable-lora", "--max-lora-rank", str(max([int(s.get("max_lora_rank") or 16), *ranks])),
                 "--max-loras", str(max(int(s.get("max_loras") or 4), len(self.adapters)))]
        if self.adapters:
            args += ["--lora-modules", *[f"{n}={p}" for n, p in self.adapters.items()]]
        if s.get("tool_call_parser"):  # tool_choice "auto": vLLM parses the model family's tool-call syntax
            args += ["--enable-auto-tool-choice", "--tool-call-parser", s["tool_call_parser"]]
        return args

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        import httpx

        port, self.key = free_port(), secrets.token_urlsafe(24)
        env = {**os.environ, "VLLM_API_KEY": self.key, "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
               "VLLM_CPU_KVCACHE_SPACE": str(self.settings.get("cpu_kvcache_gib") or 2)}
        self._log = Path(tempfile.mkstemp(prefix="lorakit-vllm-", suffix=".log")[1])
        log.info("starting vLLM for %s (log: %s)", self.base.name, self._log)
        self.proc = subprocess.Popen(self._args(port), stdout=self._log.open("ab"), stderr=subprocess.STDOUT,
                                     env=env)  # the key goes by the environment, never on a command line
        self.url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if (code := self.proc.poll()) is not None:
                self.proc = None
                raise RuntimeError(f"vLLM exited with {code} while starting:\n"
                                   f"{self._log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    self.loads += 1
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        self.release()
        raise RuntimeError(f"vLLM did not answer /health in {START_TIMEOUT_S} s (log: {self._log})")

    def release(self) -> None:
        """Stop the server (the next answer starts it again)."""
        if getattr(self, "proc", None) is not None and self.proc.poll() is None:  # None: __init__ refused
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None

    def __del__(self):
        self.release()

    def add_adapter(self, name: str, path: Path) -> None:
        self.adapters[name] = Path(path)
        if self.proc is not None and self.proc.poll() is None:
            self._post("/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path)})

    def remove_adapter(self, name: str) -> None:
        """Stop serving an adapter (vLLM frees its slot)."""
        if self.adapters.pop(name, None) is not None and self.proc is not None and self.proc.poll() is None:
            self._post("/v1/unload_lora_adapter", {"lora_name": name})

    # answers

    def _post(self, route: str, body: dict) -> dict:
        import httpx

        response = httpx.post(f"{self.url}{route}", json=body, timeout=None,
                              headers={"authorization": f"Bearer {self.key}"})
        if response.status_code >= 400:
            raise RuntimeError(f"vLLM {route}: {response.status_code} {response.text[:500]}")
        return response.json() if response.headers.get("content-type", "").startswith("application/json") else {}

    def _complete(self, model: str, prompts: list[str], max_new_tokens: int) -> list[str]:
        body = {"model": model, "prompt": prompts, "max_tokens": max_new_tokens, "temperature": 0,
                "stop_token_ids": sorted(self.eot_ids), "skip_special_tokens": True,
                "add_special_tokens": False}  # the prompts are rendered whole by lorakit's template
        choices = sorted(self._post("/v1/completions", body)["choices"], key=lambda c: c["index"])
        return [c["text"].strip() for c in choices]

    def generate(self, prompts: list[str], *, adapter: str | None, max_new_tokens: int, desc: str = "",
                 merge: str | None = None) -> list[str]:
        """Greedy answers of the base (adapter None) or of an adapter; `merge` is lorakit's engine's (ignored)."""
        return self.generate_mixed([(adapter, prompts)], max_new_tokens=max_new_tokens)[0]

    def generate_mixed(self, jobs: list[tuple[str | None, list[str]]], *, max_new_tokens: int) -> list[list[str]]:
        """Every candidate's answers at once: vLLM batches the requests of all of them together."""
        self.start()
        chunk = max(1, int(self.batch_size))
        work = [(adapter or "base", prompts[i:i + chunk]) for adapter, prompts in jobs for i in range(0, len(prompts),
                                                                                                   chunk)]
        with ThreadPoolExecutor(max_workers=min(16, max(1, len(work)))) as pool:
            answers = list(pool.map(lambda w: self._complete(w[0], w[1], max_new_tokens), work))
        out, at = [], 0
        for _, prompts in jobs:
            pieces = (len(prompts) + chunk - 1) // chunk
            out.append([a for piece in answers[at:at + pieces] for a in piece])
            at += pieces
        return out
