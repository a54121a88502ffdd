"""One run on two processes through `accelerate launch` (DDP over gloo on CPU): the same losses as one process at
the same effective batch, with rank 0 alone preparing, saving and logging."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import tool_picker_rows, write_jsonl
from lorakit.core.distributed import free_port

COMMON = ["model=tiny-llama", "data.train_file=train.jsonl", "train.num_train_epochs=1", "stages=[prepare,train]",
          "train.logging_steps=1", "train.per_device_train_batch_size=4", "data.val_fraction=0.1"]


def _losses(run) -> list[float]:
    return [row["loss"] for row in json.loads((run / "train_log.json").read_text()) if "loss" in row]


def test_two_processes_train_like_one_at_the_same_effective_batch(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", tool_picker_rows("train", 40))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    accelerate = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                  "--main_process_port", str(free_port())]
    two = subprocess.run([*accelerate, "-m", "train", *COMMON, f"hydra.run.dir={tmp_path / 'two'}"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=600)
    log = two.stdout + two.stderr
    assert two.returncode == 0, log[-3000:]
    assert "2 processes (gloo) train this run together" in log
    assert log.count("trained 4 steps") == 1 and log.count("prepare took") == 1  # rank 0 alone prepares and reports
    one = subprocess.run([sys.executable, "-m", "train", *COMMON, "train.gradient_accumulation_steps=2",
                          f"hydra.run.dir={tmp_path / 'one'}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert one.returncode == 0, (one.stdout + one.stderr)[-3000:]
    # 32 training examples, 8 per optimizer step either way: 4 per process x 2 processes, or 4 x 2 accumulated
    assert len(_losses(tmp_path / "two")) == len(_losses(tmp_path / "one")) == 4
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), rel=1e-3)
    assert (tmp_path / "two" / "adapter" / "adapter_model.safetensors").is_file()
