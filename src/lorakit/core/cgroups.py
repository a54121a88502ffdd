"""Limits for a whole process tree: a cgroup of its own, with a memory limit (swap included) and a process limit
that count every process of the tree together, which per-process rlimits cannot.

The cgroup is made under the one this process is in: cgroup v2 (the unified hierarchy), or v1's memory and pids
hierarchies (hosts and containers that still mount them). It can be made by root, or by a user whose cgroup is
delegated to them (`systemd-run --user --scope -p Delegate=yes python -m lorakit.serve`); elsewhere `create`
returns None (the reason is logged at debug level).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import signal
import time
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "pids")
_names = itertools.count()
log = logging.getLogger(__name__)


def _own_path(controller: str | None) -> str | None:
    """This process's cgroup path in the hierarchy of `controller` (None: the v2 unified one)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        if (controller is None and names == "") or (controller is not None and controller in names.split(",")):
            return path.lstrip("/")
    return None


def _write(path: Path, value: str) -> None:
    path.write_text(value)


class TreeLimit:
    """One cgroup (one directory per v1 hierarchy) holding one process tree."""

    def __init__(self, dirs: list[Path], version: int):
        self.dirs, self.version = dirs, version

    @property
    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.dirs]

    def pids(self) -> set[int]:
        """The processes in it (every v1 hierarchy's directory holds the same ones: one is read)."""
        with contextlib.suppress(OSError):
            return {int(p) for p in self.procs_files[-1].read_text().split()}
        return set()

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the tree for the memory limit."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        with contextlib.suppress(OSError, StopIteration, ValueError):
            text = (self.dirs[0] / name).read_text()
            return int(next(line for line in text.splitlines() if line.startswith("oom_kill ")).split()[1]) > 0
        return False

    def close(self) -> None:
        """Kill whatever is left in it and remove it."""
        for _ in range(100):
            pids = self.pids()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            removed = True
            for d in self.dirs:
                try:
                    d.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    removed = False
            if removed:
                return
            time.sleep(0.01)
        log.warning("could not remove the sandbox cgroup %s", self.dirs)


def _v2(memory: int, processes: int) -> TreeLimit:
    base = ROOT / (_own_path(None) or "")
    enabled = (base / "cgroup.subtree_control").read_text().split()
    if not all(c in enabled for c in CONTROLLERS):
        try:
            _write(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in CONTROLLERS))
        except OSError as err:
            if err.errno != errno.EBUSY:
                raise
            # cgroup v2 lets a cgroup with processes in it hand no controllers down: this process moves to a leaf
            leaf = base / "lorakit-server"
            leaf.mkdir(exist_ok=True)
            _write(leaf / "cgroup.procs", str(os.getpid()))
            _write(base / "cgroup.subtree_control", " ".join(f"+{c}" for c in CONTROLLERS))
    path = base / f"lorakit-sandbox-{os.getpid()}-{next(_names)}"
    path.mkdir()
    limit = TreeLimit([path], 2)
    try:
        _write(path / "memory.max", str(memory))
        if (path / "memory.swap.max").exists():
            _write(path / "memory.swap.max", "0")
        _write(path / "pids.max", str(processes))
    except OSError:
        limit.close()
        raise
    return limit


def _v1(memory: int, processes: int) -> TreeLimit:
    name = f"lorakit-sandbox-{os.getpid()}-{next(_names)}"
    dirs = []
    for controller in CONTROLLERS:
        own = _own_path(controller)
        base = ROOT / controller / (own or "")
        if own is None or not base.is_dir():
            base = ROOT / controller
        dirs.append(base / name)
    limit = TreeLimit([], 1)
    try:
        for d in dirs:
            d.mkdir()
            limit.dirs.append(d)
        _write(dirs[0] / "memory.limit_in_bytes", str(memory))
        if (dirs[0] / "memory.memsw.limit_in_bytes").exists():  # swap accounting on: no swapping past the limit
            _write(dirs[0] / "memory.memsw.limit_in_bytes", str(memory))
        _write(dirs[1] / "pids.max", str(processes))
    except OSError:
        limit.close()
        raise
    return limit


def version() -> int | None:
    """2 or 1 for the hierarchy that has the memory and pids controllers here, None when neither has both."""
    if (ROOT / "cgroup.controllers").exists():
        return 2 if all(c in (ROOT / "cgroup.controllers").read_text().split() for c in CONTROLLERS) else None
    return 1 if all((ROOT / c / "cgroup.procs").exists() for c in CONTROLLERS) else None


def create(memory: int, processes: int) -> TreeLimit | None:
    """A new cgroup limiting its tree to `memory` bytes and `processes` tasks; None where none can be made."""
    kind = version()
    if kind is None:
        return None
    try:
        return _v2(memory, processes) if kind == 2 else _v1(memory, processes)
    except OSError as err:
        log.debug("no cgroup for the sandbox: %s", err)
        return None
