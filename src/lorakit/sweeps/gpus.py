"""One GPU per job when a sweep runs several jobs side by side on one machine (hydra/launcher=gpus).

Each job process takes the first GPU no other lorakit job holds (a lock file per GPU, held for the life of the
process, so a worker that runs several jobs keeps its GPU) and sets CUDA_VISIBLE_DEVICES to it before CUDA starts.
With more jobs than GPUs a job waits for a free one. Any GPU list in CUDA_VISIBLE_DEVICES is respected.
"""

from __future__ import annotations

import fcntl
import logging
import os
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)
LOCK_DIR = Path(tempfile.gettempdir()) / f"lorakit-gpus-{os.getuid()}"
_held: list = []  # the open lock file of this process's GPU


def visible() -> list[str]:
    """The GPUs this process may use: CUDA_VISIBLE_DEVICES, else every GPU nvidia-smi lists (no torch: CUDA must
    not start before the choice)."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [d.strip() for d in given.split(",") if d.strip()]
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def claim(devices: list[str] | None = None, lock_dir: Path = LOCK_DIR, wait_s: float = 10.0) -> str | None:
    """Take a free GPU of `devices` (default: visible()) for this process; returns its id, or None without GPUs."""
    if _held:
        return os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = visible() if devices is None else devices
    if len(devices) <= 1:
        return devices[0] if devices else None
    lock_dir.mkdir(parents=True, exist_ok=True)
    waited = False
    while True:
        for device in devices:
            handle = open(lock_dir / f"gpu-{device}.lock", "w")  # noqa: SIM115 - held until the process exits
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            _held.append(handle)
            os.environ["CUDA_VISIBLE_DEVICES"] = device
            log.info("this job runs on GPU %s (of %s)", device, ",".join(devices))
            return device
        if not waited:
            log.info("all %d GPUs are held by other lorakit jobs: waiting for one to be free", len(devices))
            waited = True
        time.sleep(wait_s)
