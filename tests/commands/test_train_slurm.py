"""Sweeps on a real SLURM cluster (single-node, scripts/start_slurm.sh): `python -m train -m hydra/launcher=slurm`
runs every job of a grid as a SLURM job, the leaderboard collects them, a re-run skips the finished ones, and a
job cancelled with scancel mid-way resumes from its checkpoint on the re-run.

What the real cluster showed: submitit tells a finished job by its result file, and a job that ended without one
(cancelled, killed) only by asking `sacct`. This single-node cluster keeps no accounting (no slurmdbd), so sacct
answers nothing and the sweep command waits on the cancelled job; here it is stopped as a user would stop it
(a cluster with accounting, as real ones have, reports the job cancelled and the sweep goes on)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time

from helpers import slurm, tool_picker_rows, write_jsonl
from lorakit.sweeps.trials import sweep_name

# the cluster's node has no GPU and a few GB: the job's asks fit it (a real cluster's defaults: conf/hydra/launcher)
ON_THIS_NODE = ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=null", "hydra.launcher.mem_gb=3",
                "hydra.launcher.cpus_per_task=1", "hydra.launcher.timeout_min=20"]
GRID = ["model=tiny-llama", "data.train_file=train.jsonl", "stages=[prepare,train]", "logger=none",
        "optimized_metric=validation_loss", "train.save_steps=5", "train.num_train_epochs=2,100"]  # job 1: 600 steps


COMMAND = [sys.executable, "-m", "train", "-m", *GRID, *ON_THIS_NODE]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def test_a_grid_runs_as_slurm_jobs_skips_finished_ones_and_resumes_a_cancelled_one(tmp_path):
    slurm.cluster()
    write_jsonl(tmp_path / "train.jsonl", tool_picker_rows("train", 24))
    sweep = tmp_path / "outputs" / "multirun" / sweep_name(COMMAND[4:])  # the folder python -m train picks
    proc = subprocess.Popen(COMMAND, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen, cancelled = set(), None
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        jobs = [j for j in slurm.queue() if j[1] == "train"]
        seen |= {(j[0], j[2]) for j in jobs}
        progress = sweep / "1" / "progress.jsonl"
        saved = (sweep / "1" / "checkpoints").is_dir() and any((sweep / "1" / "checkpoints").iterdir())
        if cancelled is None and saved and progress.is_file() and len(progress.read_text().splitlines()) >= 8:
            # job 0 ran alone first: job 1 runs now (the launcher names its jobs after hydra's job name, "train")
            [(cancelled, _, _)] = [j for j in jobs if j[2] == "RUNNING"]
            subprocess.run(["scancel", cancelled], check=True, timeout=30)
        if cancelled and not jobs:  # SLURM has ended it
            break
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.5)
    proc.terminate()  # the sweep waits on the cancelled job (no sacct here: see above)
    proc.communicate(timeout=60)
    assert any(state == "RUNNING" for _, state in seen), seen  # squeue showed the sweep's jobs running
    assert cancelled, "job 1 never reached step 8 with a checkpoint while SLURM ran it"
    steps = [json.loads(line)["step"] for line in (sweep / "1" / "progress.jsonl").read_text().splitlines()]
    assert max(steps) < 500 and not (sweep / "1" / "adapter").exists()
    first = (sweep / "0" / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns

    again = subprocess.run(COMMAND, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=1200)
    log = again.stdout + again.stderr
    assert again.returncode == 0, log[-3000:]
    assert "1 finished earlier" in log, log[:3000]  # job 0: not trained again
    assert (sweep / "0" / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns == first
    trained = (sweep / "1" / "train.log").read_text()
    assert "resuming from" in trained, trained[-2000:]
    steps = [json.loads(line)["step"] for line in (sweep / "1" / "progress.jsonl").read_text().splitlines()]
    assert max(steps) == 500
    rows = list(csv.DictReader((sweep / "sweep_summary.csv").open()))
    assert [r["status"] for r in rows] == ["succeeded", "succeeded"] and {r["rank"] for r in rows} == {"1", "2"}
