"""Code a user sends runs only here: inside bubblewrap (`bwrap`, the sandbox Flatpak uses; Debian's `bubblewrap`).

What the code inside has, and nothing more:
- new user, PID, network, IPC, UTS and cgroup namespaces: uid 65534 with no capabilities, no new privileges and
  no further user namespaces; it sees only its own processes (its own /proc) and has no network (a network
  namespace of its own holds only a down loopback). When the server runs as root, bwrap itself runs as uid 65534
  (setpriv), so the tree is unprivileged outside too.
- a read-only file system of /usr (the system's libraries), the Python runtime, /etc/ld.so.cache and what the caller
  binds (the python graders' libraries), a minimal /dev, and a private tmpfs at /tmp (its home and working folder,
  the only place it can write). No /home, /root, /etc, /var, host /proc or /sys, no data dir.
- an environment of PATH, HOME, LANG and what the caller sets: no key.
- limits for the whole tree: memory (swap included) and the number of processes and threads in a cgroup of its own
  where one can be made (cgroups.py; else memory is limited per process and the count by RLIMIT_NPROC); the size of
  /tmp; what the caller's program sets per process before it runs the code (address space, file size, CPU time);
  the caller's wall clock. The tree dies with the process that started it (--die-with-parent), when `close` is
  called, or at exit; `kill_strays` kills what the code left running between two tasks.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

from lorakit.core import cgroups
from lorakit.core.errors import UserError

NOBODY = 65534
# bwrap's own environment (its process is the sandbox's pid 1, whose /proc/1/environ the code inside can read)
BARE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
MAX_LINE = 4 * 2**20  # bytes of one line from the program; a longer one is refused, not held
FIX = ("install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap; "
       "scripts/setup.sh does it when run as root); on Ubuntu 24.04+ also allow it user namespaces "
       "(sysctl kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile for bwrap)")
log = logging.getLogger(__name__)
_live: weakref.WeakSet = weakref.WeakSet()
_lock = threading.Lock()


class SandboxUnavailable(UserError, RuntimeError):
    """No sandbox can be made on this machine; the message says why and how to get one."""


@dataclass(frozen=True)
class Limits:
    memory_mb: int = 2048    # the whole tree where a cgroup can be made (OpenAI's python graders get 2 GB), else each process
    processes: int = 64      # processes and threads of the tree together (a fork bomb stops here)
    tmp_mb: int = 256        # the private /tmp, its only writable place (held in memory)
    cpu_s: int = 600         # CPU seconds per process


def python_executable() -> str:
    """The interpreter itself (a virtual environment's python is a link to it, and the environment is not bound)."""
    return os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)


def _which(program: str) -> str:
    return shutil.which(program, path=BARE_ENV["PATH"]) or program


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    if os.path.exists("/etc/ld.so.cache"):
        args += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    for prefix in {os.path.realpath(sys.base_prefix), os.path.dirname(os.path.dirname(python_executable()))}:
        if not prefix.startswith("/usr"):  # a Python outside /usr (conda, pyenv, a built one): its runtime
            args += ["--ro-bind", prefix, prefix]
    return args


def _command(program: list[str], binds: list[tuple[str, str]], limits: Limits, env: dict[str, str],
             *, drop_root: bool) -> list[str]:
    bwrap = [_which("bwrap"), "--unshare-all", "--unshare-user", "--uid", str(NOBODY),
             "--gid", str(NOBODY), "--disable-userns", "--hostname", "sandbox", "--die-with-parent",
             "--new-session", "--cap-drop", "ALL", *_system_binds(), "--proc", "/proc", "--dev", "/dev",
             "--size", str(limits.tmp_mb * 2**20), "--tmpfs", "/tmp", "--chdir", "/tmp", "--clearenv"]
    for source, target in binds:
        bwrap += ["--ro-bind", source, target]
    bwrap += ["--remount-ro", "/"]  # the sandbox's own root, which holds the mount points: read-only too
    for name, value in {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8", **env}.items():
        bwrap += ["--setenv", name, value]
    bwrap += ["--", *program]
    if drop_root:
        bwrap = [_which("setpriv"), f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                 *bwrap]
    return bwrap


def _trial(binds: tuple[tuple[str, str], ...], drop_root: bool) -> str | None:
    """Why a sandbox with these binds cannot start (None when it can): a Python inside runs and sees no network."""
    probe = "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), timeout=1)\nexcept OSError:\n    print('ok')"
    try:
        done = subprocess.run(_command([python_executable(), "-I", "-c", probe], list(binds), Limits(), {},
                                       drop_root=drop_root), capture_output=True, text=True, timeout=60, env=BARE_ENV,
                              cwd="/")
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    return None if done.stdout.strip() == "ok" else (done.stderr.strip() or done.stdout.strip())[-500:]


@functools.lru_cache(maxsize=8)
def mode(binds: tuple[tuple[str, str], ...] = ()) -> bool:
    """Whether bwrap runs as uid 65534 (the server is root and the binds can be read by it), else as the server's
    user. Raises SandboxUnavailable when no sandbox with these binds can start here."""
    if shutil.which("bwrap", path=BARE_ENV["PATH"]) is None:
        raise SandboxUnavailable(f"code a user sends runs only in a sandbox, and bwrap is not installed: {FIX}")
    root = os.geteuid() == 0 and shutil.which("setpriv", path=BARE_ENV["PATH"]) is not None
    why = _trial(binds, drop_root=root)
    if why is None:
        return root
    if root and _trial(binds, drop_root=False) is None:
        log.warning("the sandbox runs as root outside it (uid 65534 inside, no capabilities): uid %d cannot read "
                    "the Python or its libraries (%s); its process limit then comes from a cgroup alone", NOBODY, why)
        return False
    raise SandboxUnavailable(f"code a user sends runs only in a sandbox, and bwrap cannot start one here ({why}): {FIX}")


def _descendants(root: int) -> set[int]:
    """The processes under `root`, from /proc (what they left running, reparented to the sandbox's init, included)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                stat = Path(f"/proc/{entry.name}/stat").read_text()
                children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    out, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


class Sandbox:
    """One program running in a sandbox, its standard input and output piped to the caller."""

    def __init__(self, program: list[str], binds: list[tuple[str, str]], limits: Limits, env: dict[str, str]):
        drop_root = mode(tuple(binds))
        self.limit = cgroups.create(limits.memory_mb * 2**20, limits.processes)
        argv = _command(program, binds, limits, env, drop_root=drop_root)
        if self.limit is not None:  # the tree starts inside its cgroup: this shell joins it, then becomes bwrap
            joins = " && ".join(f"echo $$ > {shlex.quote(str(p))}" for p in self.limit.procs_files)
            argv = ["/bin/sh", "-c", f'{joins} && exec "$@"', "sh", *argv]
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.DEVNULL, bufsize=0, start_new_session=True, env=BARE_ENV,
                                         cwd="/")
        except BaseException:
            if self.limit is not None:
                self.limit.close()
            raise
        os.set_blocking(self.proc.stdin.fileno(), False)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.kept: set[int] = set()
        self._buffer = b""
        with _lock:
            _live.add(self)

    def send(self, line: bytes, timeout: float) -> bool:
        """Write one line to the program; False when it does not take it in time or has ended."""
        data, deadline = memoryview(line + b"\n"), time.monotonic() + timeout
        while data:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([], [self.proc.stdin], [], left)[1]:
                return False
            try:
                data = data[os.write(self.proc.stdin.fileno(), data):]
            except BlockingIOError:
                continue
            except OSError:
                return False
        return True

    def receive(self, timeout: float, cancelled=lambda: False) -> bytes | None:
        """The program's next line (at most MAX_LINE bytes); None past the timeout, when `cancelled()` turns true,
        when the line is longer, or when the program has ended."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or cancelled() or len(self._buffer) > MAX_LINE:
                return None
            if not select.select([self.proc.stdout], [], [], min(left, 0.1))[0]:
                continue
            try:
                chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:  # the pipe closed: the program has ended, and bwrap ends with its exit status
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=10)
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def tree(self) -> set[int]:
        return self.limit.pids() if self.limit is not None else _descendants(self.proc.pid) | {self.proc.pid}

    def keep_current(self) -> None:
        """The processes running now are the program's own: kill_strays spares them."""
        self.kept = self.tree()

    def kill_strays(self) -> int:
        """Kill every process of the tree but the kept ones (what the code started and left running); how many."""
        killed: set[int] = set()
        for _ in range(50):  # a process forking while it is killed shows up in the next look
            strays = self.tree() - self.kept - killed
            if not strays:
                break
            for pid in strays:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            killed |= strays
        return len(killed)

    def oom_killed(self) -> bool:
        return self.limit is not None and self.limit.oom_killed()

    def close(self) -> None:
        """Kill the whole tree and remove its cgroup."""
        tree = self.tree() if self.proc.poll() is None else set()
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        for pid in tree - {self.proc.pid}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                pipe.close()
        if self.limit is not None:
            self.limit.close()
        with _lock:
            _live.discard(self)


def close_all() -> None:
    """Stop every sandbox still running (the server stopping)."""
    with _lock:
        running = list(_live)
    for sandbox in running:
        sandbox.close()


atexit.register(close_all)
