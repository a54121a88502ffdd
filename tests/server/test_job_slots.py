"""Where the server's jobs run: GPUs held per job, jobs at once, the order they start in, and the settings refused.

The GPUs are ids, as CUDA_VISIBLE_DEVICES names them: the allocation is the same with or without real GPUs behind
them (the CUDA run of a job on its GPUs is GPU_OWED work)."""

from __future__ import annotations

import os

import pytest

from lorakit.core.errors import ConfigError
from lorakit.server import job_command
from lorakit.server.job_slots import Slots, check_split, parse_gpus


def job(gpus: str | None = None) -> dict:
    return {"metadata": {"lorakit_gpus": gpus} if gpus is not None else None}


def test_each_job_holds_its_own_gpus_and_gives_them_back():
    slots = Slots(["0", "1", "2", "3"])
    assert slots.max_jobs == 4 and slots.need(job()) == 1 and slots.need(job("2")) == 2
    assert slots.take("a", 1) == ["0"] and slots.take("b", 2) == ["1", "2"]
    assert slots.take("c", 2) is None  # one GPU left: the two-GPU job waits
    assert slots.take("d", 1) == ["3"]
    slots.give("b")
    assert slots.take("c", 2) == ["1", "2"]


def test_max_jobs_caps_the_jobs_at_once_with_or_without_gpus():
    cpu = Slots([], max_jobs=2)
    assert cpu.need(job("4")) == 0  # no GPUs: nothing to hold
    assert cpu.take("a", 0) == [] and cpu.take("b", 0) == [] and cpu.take("c", 0) is None
    assert Slots([]).max_jobs == 1
    two_per_job = Slots(["0", "1", "2", "3", "4"], per_job=2)
    assert two_per_job.max_jobs == 2 and two_per_job.take("a", 2) == ["0", "1"]


def test_a_job_that_can_never_fit_is_named_and_settings_that_cannot_work_are_refused():
    slots = Slots(["0", "1"])
    assert slots.problem(job("3")) == 'metadata.lorakit_gpus asks for 3 GPUs and this server\'s jobs may use 2 (0,1)'
    assert "whole number" in slots.problem(job("two")) and "whole number" in slots.problem(job("0"))
    assert slots.problem(job("2")) is None and slots.problem(job()) is None
    with pytest.raises(ConfigError, match="--gpus-per-job 3 is more than the 2 GPU"):
        Slots(["0", "1"], per_job=3)
    with pytest.raises(ConfigError, match="at least 1"):
        Slots([], max_jobs=0)


def test_job_gpus_and_the_split_with_serving():
    assert parse_gpus("all", ["0", "1"]) == ["0", "1"] and parse_gpus("1", ["0", "1"]) == ["1"]
    assert parse_gpus("none", ["0", "1"]) == []
    with pytest.raises(ConfigError, match="GPU 2 is not among the GPUs this server sees"):
        parse_gpus("1,2", ["0", "1"])
    check_split(["0", "1"], ["0", "1"], vllm_share=0.5)  # vLLM takes half of GPU 0; jobs share the rest
    check_split(["1"], ["0", "1"], vllm_share=0.95)      # GPU 0 kept for serving
    with pytest.raises(ConfigError, match="--job-gpus 1"):
        check_split(["0", "1"], ["0", "1"], vllm_share=0.95)


def test_a_job_on_several_gpus_runs_under_accelerate_launch(tmp_path):
    body = {"hyperparameters": {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"},
            "method": {"type": "supervised"}, "seed": 1}
    files = {"training_file": tmp_path / "t.jsonl", "validation_file": None, "model_overrides": [],
             "learning_rate": 1e-4, "base_model": "m"}
    one = job_command.command(body, None, tmp_path, **files, gpus=1)
    two = job_command.command(body, None, tmp_path, **files, gpus=2)
    assert one[1:3] == ["-m", "train"]
    assert two[1:3] == ["-m", "accelerate.commands.launch"] and two[two.index("--num_processes") + 1] == "2"
    assert two[two.index("-m", 3):][:2] == ["-m", "train"] and two[-len(one) + 3:] == one[3:]
    assert int(two[two.index("--main_process_port") + 1]) > 0  # a free port of its own: jobs side by side never meet


def test_jobs_side_by_side_share_the_cores():
    cores = len(os.sched_getaffinity(0))
    assert Slots([]).threads() is None  # one job at a time: torch's own default
    assert Slots([], max_jobs=2).threads() == max(cores // 2, 1)
    assert Slots(["0", "1", "2", "3"]).threads() == max(cores // 4, 1)
