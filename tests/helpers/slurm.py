"""A real single-node SLURM cluster for the tests: scripts/start_slurm.sh (slurm-wlm and munge from Debian's
packages, as root); where it cannot start, a skip naming why (a failure in CI, which must run these tests)."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from lorakit.core.paths import ROOT


def cluster() -> None:
    """Start the cluster (a running one is left as it is), or skip / fail with the reason."""
    cannot = pytest.fail if os.environ.get("CI") else pytest.skip
    if os.geteuid() != 0 or not (shutil.which("sinfo") or shutil.which("apt-get")):
        cannot("a single-node SLURM needs root and apt-get here (scripts/start_slurm.sh)")
    started = subprocess.run(["bash", str(ROOT / "scripts" / "start_slurm.sh")], capture_output=True, text=True,
                             timeout=900)
    if started.returncode != 0:
        cannot(f"scripts/start_slurm.sh failed: {(started.stderr or started.stdout)[-1500:]}")


def queue() -> list[tuple[str, str, str]]:
    """(job id, name, state) of every job SLURM holds now."""
    out = subprocess.run(["squeue", "-h", "-o", "%i|%j|%T"], capture_output=True, text=True, timeout=30).stdout
    return [tuple(line.split("|")) for line in out.splitlines() if line.strip()]
