"""lorakit.serve through the official openai SDK over real HTTP on 127.0.0.1: the fine-tuning guides' calls
unchanged, chat with base and fine-tuned models, streaming, batching, errors, the key, and a restart mid-job."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import pytest

import openai
from helpers import pair_rows, serving, tool_picker_rows, write_jsonl
from helpers.fixtures import KEY, env_without_keys


def test_the_guides_fine_tuning_flow_trains_and_serves_the_model(server, tuned):
    client = server.client()
    uploaded, job = tuned
    assert uploaded.status == "processed" and uploaded.purpose == "fine-tune"
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:tiny-llama:guide:{job.id}"
    assert job.hyperparameters.n_epochs == 2 and job.trained_tokens > 0
    assert job.hyperparameters.batch_size == 4 and job.hyperparameters.learning_rate_multiplier == 1.0  # "auto" resolved

    events = list(reversed(client.fine_tuning.jobs.list_events(job.id, limit=100).data))
    messages = [e.message for e in events]
    assert messages[0].startswith("Validating training file") and messages[-1] == "The job has successfully completed"
    steps = [e.data for e in events if e.type == "metrics"]
    assert steps and steps[-1]["step"] == steps[-1]["total_steps"] == 20  # 40 examples / batch 4 x 2 epochs
    assert all(isinstance(s["train_loss"], float) for s in steps)

    models = {m.id: m for m in client.models.list()}
    assert models[job.fine_tuned_model].model_extra["parent"] == "tiny-llama"
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [20, 10]  # one per epoch, newest first
    assert checkpoints[1].fine_tuned_model_checkpoint in models
    metrics = checkpoints[0].metrics  # as OpenAI names them
    assert metrics.step == 20 and metrics.train_loss > 0 and 0 <= metrics.train_mean_token_accuracy <= 1
    assert [s["step"] for s in steps] == list(range(1, 21))  # as OpenAI: every step's metrics
    at = {s["step"]: s for s in steps}
    for checkpoint in checkpoints:  # a checkpoint's metrics are those of its own step
        assert checkpoint.metrics.train_loss == at[checkpoint.step_number]["train_loss"]

    reply = client.chat.completions.create(model=job.fine_tuned_model, max_tokens=5,
                                           messages=[{"role": "user", "content": "Set a timer for 5 minutes"}])
    assert reply.model == job.fine_tuned_model and reply.usage.completion_tokens <= 5
    assert reply.choices[0].finish_reason in {"stop", "length"}
    csv = client.files.content(job.result_files[0]).text.splitlines()
    assert csv[0] == "step,train_loss,valid_loss" and len(csv) == len(steps) + 1


def test_jobs_list_in_pages_and_a_running_job_can_be_cancelled(server, tuned, train_file):
    client = server.client()
    uploaded, first = tuned
    second = client.fine_tuning.jobs.create(training_file=uploaded.id, model="tiny-llama",
                                            hyperparameters={"n_epochs": 50})
    serving.wait_for(client, second.id, {"running"}, timeout=120)
    cancelled = client.fine_tuning.jobs.cancel(second.id)
    assert cancelled.status == "cancelled" and cancelled.fine_tuned_model is None
    time.sleep(1.5)  # the runner would have noticed a process that kept going
    assert client.fine_tuning.jobs.retrieve(second.id).status == "cancelled"
    assert "Fine-tuning job cancelled" in [e.message for e in client.fine_tuning.jobs.list_events(second.id).data]

    page = client.fine_tuning.jobs.list(limit=1)
    assert [j.id for j in page.data] == [second.id] and page.has_more  # newest first
    rest = client.fine_tuning.jobs.list(limit=10, after=second.id)
    assert first.id in [j.id for j in rest.data]


def test_a_paused_job_resumes_from_its_checkpoint_and_succeeds(server, tuned):
    client = server.client()
    uploaded, first = tuned
    job = client.fine_tuning.jobs.create(training_file=uploaded.id, model="tiny-llama", suffix="paused",
                                         hyperparameters={"n_epochs": 10, "batch_size": 8})  # 5 steps an epoch
    run = server.data_dir / "jobs" / job.id
    deadline = time.monotonic() + 180
    while not (run / "checkpoints" / "checkpoint-10" / "trainer_state.json").is_file():
        assert time.monotonic() < deadline and client.fine_tuning.jobs.retrieve(job.id).status in {
            "validating_files", "queued", "running"}
        time.sleep(0.05)
    paused = client.fine_tuning.jobs.pause(job.id)
    assert paused.status == "paused"
    time.sleep(1.5)  # the runner would have noticed a process that kept going
    assert client.fine_tuning.jobs.retrieve(job.id).status == "paused"
    with pytest.raises(openai.BadRequestError, match="only a running or queued job can be paused"):
        client.fine_tuning.jobs.pause(job.id)
    with pytest.raises(openai.BadRequestError, match="only a paused job can be resumed"):
        client.fine_tuning.jobs.resume(first.id)

    assert client.fine_tuning.jobs.resume(job.id).status == "queued"
    job = serving.wait_for(client, job.id, {"succeeded", "failed", "cancelled"})
    assert job.status == "succeeded", job.error
    log = (run / "train.log").read_text()
    resumed = sorted({int(line.rsplit("checkpoint-", 1)[1].split()[0]) for line in log.splitlines()
                      if "resuming from" in line})  # the log has the process's output and its own log file
    assert len(resumed) == 1 and resumed[0] >= 10  # from its last checkpoint, not from the start
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=200).data]
    assert "Fine-tuning job resumed" in messages and any(m.startswith("Fine-tuning job paused at step") for m in messages)
    steps = [e.data["step"] for e in client.fine_tuning.jobs.list_events(job.id, limit=200).data if e.type == "metrics"]
    assert max(steps) == 50 and min(steps) < resumed[0] < max(steps)  # one curve, before and after the pause


def test_an_invalid_training_file_fails_the_job_naming_its_lines(server, tmp_path):
    client = server.client()
    bad = write_jsonl(tmp_path / "bad.jsonl", [tool_picker_rows("train", 1)[0], "not json",
                                               {"messages": [{"role": "user", "content": "no reply"}]}])
    uploaded = client.files.create(file=open(bad, "rb"), purpose="fine-tune")
    assert uploaded.status == "error"
    assert "bad.jsonl:2: not_json" in uploaded.status_details and "bad.jsonl:3: no_assistant" in uploaded.status_details
    job = client.fine_tuning.jobs.create(training_file=uploaded.id, model="tiny-llama")
    job = serving.wait_for(client, job.id, {"failed", "succeeded"}, timeout=30)
    assert job.status == "failed" and job.error.code == "invalid_training_file" and job.error.param == "training_file"
    assert "bad.jsonl:2" in job.error.message and "bad.jsonl:3" in job.error.message
    with pytest.raises(openai.BadRequestError) as err:
        client.fine_tuning.jobs.create(training_file="file-nope", model="tiny-llama")
    assert err.value.body["param"] == "training_file"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.create(training_file=uploaded.id, model="gpt-4o-mini")


def test_a_dpo_job_on_openai_preference_pairs_continues_a_supervised_model_and_is_served(server, tuned, tmp_path):
    client = server.client()
    _, sft = tuned
    pairs = write_jsonl(tmp_path / "prefs.jsonl", pair_rows(16))
    uploaded = client.files.create(file=open(pairs, "rb"), purpose="fine-tune")
    assert uploaded.status == "processed"
    job = client.fine_tuning.jobs.create(
        training_file=uploaded.id, model=sft.fine_tuned_model, suffix="prefs",
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1, "batch_size": 8,
                                                           "learning_rate_multiplier": "auto"}}})
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.2 and job.model == sft.fine_tuned_model
    job = serving.wait_for(client, job.id, {"succeeded", "failed", "cancelled"})
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:tiny-llama:prefs:{job.id}"
    run = yaml_config(server, job.id)
    assert run["method"]["name"] == "dpo" and run["method"]["beta"] == 0.2 and "/jobs/" in run["init_from"]
    steps = [e.data for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data if e.type == "metrics"]
    assert steps and max(s["step"] for s in steps) == 2  # 16 pairs / batch 8 x 1 epoch
    assert all({"train_loss", "train_rewards_chosen", "train_rewards_margins"} <= set(s) for s in steps)
    [checkpoint] = client.fine_tuning.jobs.checkpoints.list(job.id).data
    last = next(s for s in steps if s["step"] == 2)
    assert checkpoint.metrics.train_loss == last["train_loss"]
    assert checkpoint.metrics.model_extra["train_rewards_accuracies"] == last["train_rewards_accuracies"]
    reply = client.chat.completions.create(model=job.fine_tuned_model, max_tokens=5,
                                           messages=[{"role": "user", "content": "Set a timer for 5 minutes"}])
    assert reply.model == job.fine_tuned_model and reply.choices[0].finish_reason in {"stop", "length"}

    # the SDK's client.models.delete: the model is served no more, nor its checkpoints' models (and the deletion is
    # kept for a restart)
    assert checkpoint.fine_tuned_model_checkpoint in {m.id for m in client.models.list()}
    deleted = client.models.delete(job.fine_tuned_model)
    assert deleted.id == job.fine_tuned_model and deleted.deleted
    assert not [m.id for m in client.models.list() if m.id.startswith(job.fine_tuned_model)]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model=job.fine_tuned_model, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.NotFoundError):
        client.models.delete(job.fine_tuned_model)
    with pytest.raises(openai.BadRequestError, match="is the base model of this server and cannot be deleted"):
        client.models.delete("tiny-llama")
    from lorakit.server.store import Store

    assert {job.fine_tuned_model, checkpoint.fine_tuned_model_checkpoint} <= Store(server.data_dir).deleted_models()


def yaml_config(server, job_id: str) -> dict:
    import yaml

    [config] = server.data_dir.glob(f"**/{job_id}/config.yaml")
    return yaml.safe_load(config.read_text())


def test_a_file_for_the_other_method_fails_the_job_and_bad_dpo_settings_are_refused(server, train_file, tmp_path):
    client = server.client()
    chat = client.files.create(file=open(train_file, "rb"), purpose="fine-tune")
    pairs = client.files.create(file=open(write_jsonl(tmp_path / "p.jsonl", pair_rows(4)), "rb"), purpose="fine-tune")
    tasks = client.files.create(file=open(write_jsonl(tmp_path / "t.jsonl", task_rows(4)), "rb"), purpose="fine-tune")
    assert tasks.status == "processed"
    dpo = client.fine_tuning.jobs.create(training_file=chat.id, model="tiny-llama", method={"type": "dpo"})
    sft = client.fine_tuning.jobs.create(training_file=pairs.id, model="tiny-llama")
    rft = client.fine_tuning.jobs.create(training_file=chat.id, model="tiny-llama",
                                         method={"type": "reinforcement", "reinforcement": {"grader": GRADER}})
    on_tasks = client.fine_tuning.jobs.create(training_file=tasks.id, model="tiny-llama")
    for job, says in ((dpo, "holds chat examples; a dpo job trains on preference pairs"),
                      (sft, "holds preference pairs; a supervised job trains on chat examples"),
                      (rft, "holds chat examples; a reinforcement job trains on tasks: one JSON object per line"),
                      (on_tasks, "holds tasks (every conversation ends in a user turn); a supervised job trains on chat")):
        job = serving.wait_for(client, job.id, {"failed", "succeeded"}, timeout=30)
        assert job.status == "failed" and job.error.code == "invalid_training_file" and says in job.error.message
    for method, param in (({"type": "dpo", "dpo": {"hyperparameters": {"beta": 0}}}, "beta"),
                          ({"type": "reinforcement"}, "method.reinforcement.grader"),
                          ({"type": "reinforcement", "reinforcement": {"grader": {**GRADER, "evaluation_metric": "cos"}}},
                           "grader"),
                          ({"type": "reinforcement", "reinforcement": {"grader": GRADER, "hyperparameters": {
                              "reasoning_effort": "max"}}}, "reasoning_effort")):
        with pytest.raises(openai.BadRequestError) as err:
            client.fine_tuning.jobs.create(training_file=pairs.id, model="tiny-llama", method=method)
        assert param in err.value.body["param"]


GRADER = {"type": "text_similarity", "name": "close", "input": "{{ sample.output_text }}",
          "reference": "{{ item.reference_answer }}", "evaluation_metric": "fuzzy_match"}


# the reward is 1 only where grade() runs in the sandbox: uid 65534, none of the host's files
SANDBOXED = {"type": "python", "name": "sandboxed", "source": (
    "import os\nfrom rapidfuzz import fuzz\n\ndef grade(sample, item):\n"
    "    inside = os.getuid() == 65534 and not os.path.exists('/etc/passwd')\n"
    "    return float(inside) * (1 + 0 * fuzz.ratio(sample['output_text'], item['reference_answer']))\n")}


def task_rows(n: int) -> list[dict]:
    return [{"messages": r["messages"][:-1], "reference_answer": r["messages"][-1]["content"]}
            for r in tool_picker_rows("train", n)]


def test_a_reinforcement_job_trains_on_tasks_with_its_grader_and_reports_the_rewards(server, tmp_path):
    client = server.client()
    # 4 tasks, 2 a step: each step generates 8 completions of up to 256 tokens, all of them on the random tiny model
    uploaded = client.files.create(file=open(write_jsonl(tmp_path / "tasks.jsonl", task_rows(4)), "rb"),
                                   purpose="fine-tune")
    assert uploaded.status == "processed"
    hp = {"n_epochs": 1, "batch_size": 2, "compute_multiplier": "auto", "eval_samples": "auto",
          "reasoning_effort": "high"}
    job = client.fine_tuning.jobs.create(training_file=uploaded.id, model="tiny-llama", suffix="rft", method={
        "type": "reinforcement", "reinforcement": {"grader": SANDBOXED, "hyperparameters": hp}})
    assert job.method.type == "reinforcement" and job.method.reinforcement.grader.name == "sandboxed"
    job = serving.wait_for(client, job.id, {"succeeded", "failed", "cancelled"})
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:tiny-llama:rft:{job.id}" and job.hyperparameters.batch_size == 2
    run = yaml_config(server, job.id)
    assert run["method"]["name"] == "reinforcement" and run["train"]["per_device_train_batch_size"] == 8  # 2 tasks x 4
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    steps = [e.data for e in events if e.type == "metrics"]
    assert max(s["step"] for s in steps) == 2 and all(s["train_reward_mean"] == 1 for s in steps)  # 4 tasks / 2
    assert any("reasoning_effort=high is accepted, and has no meaning" in e.message and e.level == "warn"
               for e in events)
    [checkpoint] = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert checkpoint.step_number == 2 and checkpoint.metrics.train_reward_mean == 1
    csv = client.files.content(job.result_files[0]).text.splitlines()
    assert csv[0] == "step,train_loss,valid_loss,train_reward_mean" and len(csv) == len(steps) + 1
    reply = client.chat.completions.create(model=job.fine_tuned_model, max_tokens=5,
                                           messages=task_rows(9)[8]["messages"])
    assert reply.model == job.fine_tuned_model


def test_streaming_gives_the_same_text_as_a_plain_request(server, tuned):
    client = server.client()
    model = tuned[1].fine_tuned_model
    asks = [dict(temperature=0, max_tokens=12), dict(temperature=0.9, top_p=0.9, seed=7, max_tokens=12),
            dict(temperature=0, max_tokens=12, stop=["a", "e"])]
    for ask in asks:
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Play some jazz"}]
        plain = client.chat.completions.create(model=model, messages=messages, **ask)
        chunks = list(client.chat.completions.create(model=model, messages=messages, stream=True,
                                                     stream_options={"include_usage": True}, **ask))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == plain.choices[0].message.content
        assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == plain.choices[0].finish_reason
        assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    stopped = client.chat.completions.create(model=model, messages=messages, **asks[2]).choices[0]
    assert "a" not in stopped.message.content and "e" not in stopped.message.content
    two = client.chat.completions.create(model="tiny-llama", messages=messages, n=2, max_tokens=4, temperature=0)
    assert [c.index for c in two.choices] == [0, 1] and two.choices[0].message.content == two.choices[1].message.content


def test_concurrent_requests_for_base_and_adapters_share_decoding_batches(server, tuned):
    client = server.client()
    models = ["tiny-llama", tuned[1].fine_tuned_model]
    before = server.health()["decoding"]
    replies = [None] * 12

    def ask(i):
        replies[i] = client.chat.completions.create(model=models[i % 2], max_tokens=24, temperature=0,
                                                    messages=[{"role": "user", "content": f"request {i}"}])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = server.health()["decoding"]
    assert all(r is not None and r.model == models[i % 2] for i, r in enumerate(replies))
    assert after["tokens"] - before["tokens"] == sum(r.usage.completion_tokens for r in replies)
    steps, rows = after["batches"] - before["batches"], after["rows"] - before["rows"]
    assert rows / steps > 2  # each decoding step held several requests' rows, base and adapter mixed


def test_requests_are_refused_with_openai_errors(server):
    client = server.client()
    with pytest.raises(openai.AuthenticationError):
        server.client(key="sk-wrong").models.list()
    response = httpx.get(f"{server.url}/v1/models")
    assert response.status_code == 401 and set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert httpx.get(f"{server.url}/health").status_code == 200
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["code"] == "model_not_found"
    bad = [([{"role": "wizard", "content": "hi"}], "messages[0].role"), ([], "messages"),
           ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "messages[0].content[0].type")]
    for messages, param in bad:
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="tiny-llama", messages=messages)
        assert err.value.status_code == 400 and err.value.body["param"] == param
    for extra, param in [({"temperature": 3}, "temperature"), ({"top_logprobs": 2}, "top_logprobs"),
                         ({"max_tokens": 10**6}, "messages")]:
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="tiny-llama", messages=[{"role": "user", "content": "hi"}], **extra)
        assert err.value.body["param"] == param
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}
    assert httpx.post(f"{server.url}/v1/chat/completions", content=b"{not json", headers=headers).status_code == 400
    big = json.dumps({"model": "tiny-llama", "messages": [{"role": "user", "content": "x" * (17 * 2**20)}]})
    too_big = httpx.post(f"{server.url}/v1/chat/completions", content=big, headers=headers, timeout=60)
    assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "request_too_large"
    chunked = httpx.post(f"{server.url}/v1/chat/completions", content=iter([big.encode()]), headers=headers, timeout=60)
    assert chunked.status_code == 413 and chunked.json()["error"] == too_big.json()["error"]  # counted while read


def test_the_key_is_in_no_log_and_no_file(server, tuned):
    found = [str(server.log)] if KEY in server.log.read_text(errors="replace") else []
    for path in server.data_dir.rglob("*"):
        if path.is_file() and KEY.encode() in path.read_bytes():
            found.append(str(path))
    assert found == []
    assert "Authorization" not in server.log.read_text(errors="replace")


def test_without_a_key_the_server_refuses_other_addresses(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "LORAKIT_API_KEY"}
    done = subprocess.run([sys.executable, "-m", "lorakit.serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2 and "refusing to listen on 0.0.0.0 without an API key" in done.stderr


def test_a_job_running_when_the_server_dies_is_failed_with_the_reason_after_a_restart(tmp_path, train_file, tiny_dir):
    data = tmp_path / "data"
    server = serving.start(data, "--model", "tiny-llama")
    try:
        client = server.client(key="anything")  # no key on loopback: any key is accepted
        uploaded = client.files.create(file=open(train_file, "rb"), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(training_file=uploaded.id, model="tiny-llama",
                                             hyperparameters={"n_epochs": 50})
        deadline = time.monotonic() + 120
        while not [e for e in client.fine_tuning.jobs.list_events(job.id).data if e.type == "metrics"]:
            assert time.monotonic() < deadline, "no training step reported"
            time.sleep(0.5)
    finally:
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
    pid = json.loads(sqlite3.connect(data / "lorakit.sqlite").execute(
        "SELECT private FROM jobs WHERE id = ?", (job.id,)).fetchone()[0])["pid"]
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{pid}") and "zombie" not in open(f"/proc/{pid}/status").read().lower():
        assert time.monotonic() < deadline, "the training process outlived the server"
        time.sleep(0.2)

    with serving.running(data, "--model", "tiny-llama") as again:
        client = again.client(key="anything")
        after = client.fine_tuning.jobs.retrieve(job.id)
        assert after.status == "failed" and after.error.code == "server_restarted"
        assert "at step" in after.error.message and "create the job again" in after.error.message
        assert client.files.retrieve(uploaded.id).filename == "train.jsonl"


def test_adapters_given_at_start_are_served_by_name_and_answer_as_the_job_model(server, tuned, tmp_path):
    job = tuned[1]
    run = server.data_dir / "jobs" / job.id
    messages = [{"role": "user", "content": "Remind me to call Anna at 5"}]
    expected = server.client().chat.completions.create(model=job.fine_tuned_model, messages=messages, max_tokens=8,
                                                       temperature=0).choices[0].message.content
    with serving.running(tmp_path / "data", "--model", "tiny-llama", "--adapters", f"mine={run}",
                         str(server.data_dir / "jobs")) as other:
        client = other.client(key="any")
        models = {m.id: m.model_extra.get("parent") for m in client.models.list()}
        assert models["mine"] == "tiny-llama" and models[str(run.resolve())] == "tiny-llama"  # named by its run folder
        for model in ("mine", str(run.resolve())):
            reply = client.chat.completions.create(model=model, messages=messages, max_tokens=8, temperature=0)
            assert reply.choices[0].message.content == expected
    refused = subprocess.run([sys.executable, "-m", "lorakit.serve", "--model", "tiny-llama", "--adapters",
                              str(tmp_path / "nothing"), "--data-dir", str(tmp_path / "d2")],
                             capture_output=True, text=True, env=env_without_keys(), timeout=120)
    assert refused.returncode == 2 and "no adapter in" in refused.stderr


def test_the_base_model_id_a_folder_or_a_name_gives(tmp_path):
    from lorakit.serve import base_id

    folder = tmp_path / "my-model"
    folder.mkdir()
    assert base_id(str(folder)) == ("my-model", str(folder))
    assert base_id(f"prod={folder}") == ("prod", str(folder))
    assert base_id("meta-llama/Llama-3.1-8B-Instruct") == ("meta-llama/Llama-3.1-8B-Instruct",) * 2  # a hub id as vLLM
    assert base_id("smollm2-135m") == ("smollm2-135m", "smollm2-135m")
