"""Jobs side by side on one machine: with --max-jobs 2 two jobs train at once and a third waits its turn."""

from __future__ import annotations

import subprocess
import sys
import time

from helpers import serving, tool_picker_rows, write_jsonl
from helpers.fixtures import env_without_keys


def metric_times(client, job_id: str) -> list[int]:
    return [e.created_at for e in client.fine_tuning.jobs.list_events(job_id, limit=1000).data if e.type == "metrics"]


def test_two_jobs_train_at_once_and_a_third_waits_then_runs(tmp_path, tiny_dir):
    with serving.running(tmp_path / "data", "--model", "tiny-llama", "--max-jobs", "2") as server:
        client = server.client("no key on loopback")
        upload = client.files.create(file=open(write_jsonl(tmp_path / "t.jsonl", tool_picker_rows("train", 24)), "rb"),
                                     purpose="fine-tune")
        jobs = [client.fine_tuning.jobs.create(training_file=upload.id, model="tiny-llama", suffix=f"j{n}",
                                               hyperparameters={"n_epochs": 6}).id for n in range(3)]
        seen = []
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            statuses = tuple(client.fine_tuning.jobs.retrieve(j).status for j in jobs)
            seen.append(statuses)
            if all(s in {"succeeded", "failed", "cancelled"} for s in statuses):
                break
            time.sleep(0.3)
        assert seen[-1] == ("succeeded",) * 3, seen[-1]
        assert ("running", "running", "queued") in seen, sorted(set(seen))  # two at once, the third waiting
        assert not any(s.count("running") > 2 for s in seen)
        first, second, third = (metric_times(client, j) for j in jobs)
        assert min(second) <= max(first) and min(first) <= max(second)  # their steps interleave
        finished = [client.fine_tuning.jobs.retrieve(j).finished_at for j in jobs[:2]]
        assert min(third) >= min(finished)  # the third trained once one of them was done
        for j in jobs:
            model = client.fine_tuning.jobs.retrieve(j).fine_tuned_model
            assert client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}],
                                                  max_tokens=2).choices[0].message.content is not None


def test_a_gpu_setting_that_cannot_work_is_refused_before_the_model_loads(tmp_path):
    refused = subprocess.run([sys.executable, "-m", "lorakit.serve", "--model", "tiny-llama", "--job-gpus", "3",
                              "--data-dir", str(tmp_path / "d")], capture_output=True, text=True, timeout=120,
                             env=env_without_keys())
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "--job-gpus 3: GPU 3 is not among the GPUs this server sees (none" in refused.stderr
