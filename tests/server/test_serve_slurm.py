"""`lorakit.serve --executor slurm` against a real single-node SLURM (scripts/start_slurm.sh): each job is a SLURM
job; a server killed with -9 and started again follows a job SLURM still runs to its end; a paused job resumes
from its checkpoint."""

from __future__ import annotations

import time
from pathlib import Path

from helpers import serving, slurm, tool_picker_rows, write_jsonl
from helpers.fixtures import KEY

SLURM_STATE = Path("/var/spool/slurm-lorakit")  # scripts/start_slurm.sh: what slurmctld and slurmd keep
ON_THIS_NODE = ("--model", "tiny-llama", "--executor", "slurm", "--slurm-gpus-per-job", "0", "--slurm-mem-gb", "3",
                "--slurm-cpus-per-job", "1", "--slurm-time-min", "30")


def names_in_queue() -> dict[str, str]:
    return {name: state for _, name, state in slurm.queue()}


def wait_until(check, what: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.5)
    raise TimeoutError(what)


def test_jobs_run_on_slurm_outlive_the_server_and_a_paused_one_resumes(tmp_path, tiny_dir):
    slurm.cluster()
    data = tmp_path / "data"
    server = serving.start(data, *ON_THIS_NODE, key=KEY)
    try:
        client = server.client()
        upload = client.files.create(file=open(write_jsonl(tmp_path / "t.jsonl", tool_picker_rows("train", 24)), "rb"),
                                     purpose="fine-tune")
        short, long = (client.fine_tuning.jobs.create(training_file=upload.id, model="tiny-llama",
                                                      hyperparameters={"n_epochs": n}).id for n in (2, 50))
        queued = wait_until(lambda: {f"lorakit-{short}", f"lorakit-{long}"} <= set(names_in_queue()) and names_in_queue(),
                            "both jobs in squeue")
        assert set(queued.values()) <= {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING"}
        done = serving.wait_for(client, short, {"succeeded", "failed", "cancelled"})
        assert done.status == "succeeded", done.error
        assert client.chat.completions.create(model=done.fine_tuned_model, max_tokens=2,
                                              messages=[{"role": "user", "content": "hi"}]).choices
        wait_until(lambda: any(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(long, limit=100).data),
                   "the long job's first steps")
        server.proc.kill()  # kill -9: no shutdown at all
        server.proc.wait()
        assert names_in_queue().get(f"lorakit-{long}") == "RUNNING"  # SLURM runs it on
        server = serving.start(data, *ON_THIS_NODE, key=KEY)
        client = server.client()
        finished = serving.wait_for(client, long, {"succeeded", "failed", "cancelled"}, timeout=600)
        assert finished.status == "succeeded", finished.error
        events = [e.message for e in client.fine_tuning.jobs.list_events(long, limit=1000).data]
        assert any("following SLURM job" in m for m in events)
        steps = [e.data["step"] for e in client.fine_tuning.jobs.list_events(long, limit=1000).data if e.type == "metrics"]
        assert max(steps) == 300 and len(steps) == len(set(steps))  # every step once, none twice after the restart
        assert client.chat.completions.create(model=finished.fine_tuned_model, max_tokens=2,
                                              messages=[{"role": "user", "content": "hi"}]).choices

        paused = client.fine_tuning.jobs.create(training_file=upload.id, model="tiny-llama",
                                                hyperparameters={"n_epochs": 50}).id
        checkpoints = data / "jobs" / paused / "checkpoints"
        wait_until(lambda: checkpoints.is_dir() and any(checkpoints.glob("checkpoint-*")), "a checkpoint")
        assert client.fine_tuning.jobs.pause(paused).status == "paused"
        wait_until(lambda: f"lorakit-{paused}" not in names_in_queue(), "scancel of the paused job")
        client.fine_tuning.jobs.resume(paused)
        resumed = serving.wait_for(client, paused, {"succeeded", "failed", "cancelled"}, timeout=600)
        assert resumed.status == "succeeded", resumed.error
        assert "resuming from" in (data / "jobs" / paused / "train.log").read_text()
        files = [p for root in (SLURM_STATE, data) for p in root.rglob("*") if p.is_file()] + [server.log]
        kept = [p for p in files if KEY.encode() in p.read_bytes()]
        assert not kept, kept  # the key: in no job environment SLURM or submitit keep, no run file, no server log
    finally:
        serving.stop(server)
