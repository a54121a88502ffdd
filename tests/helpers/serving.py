"""Start `python -m lorakit.serve` as users do (its own process, real HTTP on 127.0.0.1) for the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from lorakit.core.distributed import free_port


class Server:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path, data_dir: Path, key: str | None):
        self.proc, self.port, self.log, self.data_dir, self.key = proc, port, log, data_dir, key
        self.url = f"http://127.0.0.1:{port}"

    def client(self, key: str | None = "default"):
        from openai import OpenAI

        return OpenAI(base_url=f"{self.url}/v1", api_key=self.key if key == "default" else key, max_retries=0)

    def health(self) -> dict:
        return httpx.get(f"{self.url}/health", timeout=5).json()


def start(data_dir: Path, *args: str, key: str | None = None, timeout: float = 180) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LORAKIT_API_KEY"}
    if key:
        env["LORAKIT_API_KEY"] = key
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir.parent / f"{data_dir.name}-server.log"
    out = log.open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "lorakit.serve", "--port", str(port), "--data-dir", str(data_dir),
                             *args], stdout=out, stderr=subprocess.STDOUT, env=env)
    server = Server(proc, port, log, data_dir, key)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"lorakit.serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if server.health()["status"] == "ok":
                return server
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"lorakit.serve did not start in {timeout} s:\n{log.read_text()[-3000:]}")


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.proc.kill()


@contextmanager
def running(data_dir: Path, *args: str, key: str | None = None, timeout: float = 180):
    server = start(data_dir, *args, key=key, timeout=timeout)
    try:
        yield server
    finally:
        stop(server)


def wait_for(client, job_id: str, statuses: set[str], timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} is still {job.status} after {timeout} s")
