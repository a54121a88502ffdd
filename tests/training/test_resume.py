"""A run killed mid-epoch continues from its last checkpoint when the same command runs again, and ends as an
uninterrupted run would; a finished run is not trained again; a folder of other settings is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from helpers import tool_picker_rows, write_jsonl


def _command(run_dir, train_file, *extra: str) -> list[str]:
    return [sys.executable, "-m", "train", "model=tiny-llama", f"data.train_file={train_file}", "data.test_file=null",
            "stages=[prepare,train]", "train.num_train_epochs=3", "train.save_steps=4", "train.logging_steps=1",
            "train.eval_strategy=no", f"hydra.run.dir={run_dir}", *extra]


def _losses(run_dir) -> dict[int, float]:
    return {h["step"]: h["loss"] for h in json.loads((run_dir / "train_log.json").read_text()) if "loss" in h}


@pytest.fixture(scope="module")
def train_file(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("resume") / "train.jsonl", tool_picker_rows("train", 48))


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_as_an_uninterrupted_one(tmp_path, train_file, tiny_dir):
    whole = tmp_path / "whole"
    subprocess.run(_command(whole, train_file), check=True, capture_output=True, timeout=600)
    expected = _losses(whole)
    total = max(expected)

    run = tmp_path / "killed"
    proc = subprocess.Popen(_command(run, train_file), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (run / "checkpoints" / "checkpoint-12" / "trainer_state.json").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # mid-epoch, before the adapter is saved
    proc.wait()
    assert not (run / "adapter").exists()
    saved = sorted(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("checkpoint-*")
                   if (p / "trainer_state.json").is_file())
    assert len(saved) <= 3 and saved[-1] < total  # the last two kept (a third while the oldest is being pruned)

    again = subprocess.run(_command(run, train_file), capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"resuming from {run / 'checkpoints' / f'checkpoint-{saved[-1]}'}" in again.stdout
    progress = [json.loads(line) for line in (run / "progress.jsonl").read_text().splitlines()]
    restart = max(i for i, p in enumerate(progress) if set(p) == {"step", "max_steps", "time"})  # the resumed start
    assert progress[restart]["step"] == saved[-1]
    assert [p["step"] for p in progress[restart + 1:] if "loss" in p] == list(range(saved[-1] + 1, total + 1))
    resumed = _losses(run)
    assert sorted(resumed) == list(range(1, total + 1))  # the loss curve goes on: no step twice, none missing
    for step in range(saved[-1] + 1, total + 1):
        assert resumed[step] == pytest.approx(expected[step], rel=1e-3, abs=1e-4), step

    third = subprocess.run(_command(run, train_file), capture_output=True, text=True, timeout=600)
    assert third.returncode == 0 and "was trained already" in third.stdout
    assert _losses(run) == resumed

    original = train_file.read_text()
    train_file.write_text("".join(original.splitlines(keepends=True)[:-8]))  # the same file name, other data
    other = subprocess.run(_command(run, train_file, "train.learning_rate=0.5"), capture_output=True, text=True,
                           timeout=600)
    train_file.write_text(original)
    assert other.returncode == 2 and "train.learning_rate: 0.001 -> 0.5" in other.stdout + other.stderr
    assert "data.train_file: the file's contents changed" in other.stdout + other.stderr
    never = subprocess.run(_command(run, train_file, "resume=never", "+train.max_steps=2"), capture_output=True,
                           text=True, timeout=600)
    assert never.returncode == 0 and max(_losses(run)) == 2  # trained anew, not resumed


@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory, train_file, tiny_dir):
    """A tiny run of 4 steps with checkpoints at steps 2 and 4 (written through checkpoints/.staging)."""
    run = tmp_path_factory.mktemp("checkpointed") / "run"
    args = ["+train.max_steps=4", "train.save_steps=2", "train.save_total_limit=2"]
    subprocess.run(_command(run, train_file, *args), check=True, capture_output=True, timeout=600)
    return run, args


def _truncate(path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("name", ["adapter_model.safetensors", "optimizer.pt", "trainer_state.json"])
def test_a_damaged_checkpoint_file_is_found(checkpointed, tmp_path, name):
    import shutil

    from lorakit.training.resume import damage

    run, _ = checkpointed
    original = run / "checkpoints" / "checkpoint-4"
    assert damage(original) is None
    assert not list((run / "checkpoints" / ".staging").glob("checkpoint-*"))  # each one renamed into place whole
    copy = shutil.copytree(original, tmp_path / "checkpoint-4")
    _truncate(copy / name)
    assert damage(copy).startswith(name)


def test_a_run_whose_newest_checkpoint_is_damaged_resumes_from_the_one_before(checkpointed, train_file, tmp_path):
    import shutil

    run, args = checkpointed
    crashed = shutil.copytree(run, tmp_path / "crashed")
    shutil.rmtree(crashed / "adapter")  # as if killed after checkpoint-4 was saved
    (crashed / "train_log.json").unlink()
    _truncate(crashed / "checkpoints" / "checkpoint-4" / "adapter_model.safetensors")
    again = subprocess.run(_command(crashed, train_file, *args), capture_output=True, text=True, timeout=600)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out[-3000:]  # before: SafetensorError on every re-run
    assert "checkpoint-4 is damaged (adapter_model.safetensors:" in out and "set aside as broken-checkpoint-4" in out
    assert f"resuming from {crashed / 'checkpoints' / 'checkpoint-2'}" in out
    assert (crashed / "adapter" / "adapter_config.json").is_file()
    progress = [json.loads(line) for line in (crashed / "progress.jsonl").read_text().splitlines()]
    restart = max(i for i, p in enumerate(progress) if set(p) == {"step", "max_steps", "time"})
    assert progress[restart]["step"] == 2 and [p["step"] for p in progress[restart + 1:] if "loss" in p] == [3, 4]
