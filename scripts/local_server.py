"""`python -m lorakit.serve` on a free loopback port, without a key, for the scripts that drive it over HTTP
(bench_jobs.py, page_screenshots.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from lorakit.core.distributed import free_port


def start(data_dir: Path, *args: str, log: Path) -> tuple[subprocess.Popen, str]:
    """The server process and its URL, once /health answers (its output in `log`)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LORAKIT_API_KEY"}  # loopback, no key
    proc = subprocess.Popen([sys.executable, "-m", "lorakit.serve", "--port", str(port), "--data-dir", str(data_dir),
                             *args], stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"lorakit.serve did not start; see {log}")
