"""A cgroup per sandbox, on this machine's real cgroup file system: its limits as asked, its processes, and nothing
left behind once closed."""

from __future__ import annotations

import subprocess

import pytest

from lorakit.core import cgroups


def test_a_tree_limit_holds_its_processes_and_is_removed_when_closed():
    limit = cgroups.create(256 * 2**20, 16)
    if limit is None:
        pytest.skip("no cgroup can be made here (not root, no delegated cgroup)")
    try:
        memory = "memory.max" if limit.version == 2 else "memory.limit_in_bytes"
        assert int((limit.dirs[0] / memory).read_text()) == 256 * 2**20
        assert (limit.dirs[-1] / "pids.max").read_text().strip() == "16"
        script = " && ".join(f"echo $$ > {p}" for p in limit.procs_files) + " && exec sleep 60"
        child = subprocess.Popen(["/bin/sh", "-c", script])
        for _ in range(100):
            if child.pid in limit.pids():
                break
            subprocess.run(["sleep", "0.05"])
        assert limit.pids() == {child.pid}
    finally:
        limit.close()
    assert child.wait(timeout=10) == -9  # killed with its cgroup
    assert not any(d.exists() for d in limit.dirs)
