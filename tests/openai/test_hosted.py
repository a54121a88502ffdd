"""backend=openai against lorakit.serve through the official SDK: the pipeline trains and evaluates through the
API, uploads OpenAI's training format, and Ctrl-C without a terminal leaves the job running."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from helpers import pair_rows, tool_picker_rows, write_jsonl
from helpers.fixtures import KEY, env_without_keys


def test_backend_openai_runs_the_pipeline_against_the_server(server, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", tool_picker_rows("train", 40))
    test = write_jsonl(tmp_path / "test.jsonl", tool_picker_rows("test", 8))
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "train", "backend=openai", f"backend.base_url={server.url}/v1", "backend.model=tiny-llama",
         "backend.poll_s=0.5", "backend.suffix=hosted", "model=tiny-llama", f"data.train_file={train}",
         f"data.test_file={test}", f"hydra.run.dir={run}"],
        capture_output=True, text=True, env=env_without_keys(OPENAI_API_KEY=KEY), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    job = json.loads((run / "job.json").read_text())
    assert job["status"] == "succeeded" and job["fine_tuned_model"] == f"ft:tiny-llama:hosted:{job['job_id']}"
    metrics = json.loads((run / "metrics.json").read_text())
    compared = json.loads((run / "compare.json").read_text())
    assert set(metrics) == {"base", "tuned"} and set(metrics["base"]) == set(metrics["tuned"]) == set(compared["metrics"])
    assert compared["n_examples"] == 8 and compared["generated"] == {"base": 8, "tuned": 8}  # through the API
    assert "base model loads: 0" in (run / "train.log").read_text()  # no local model was loaded to answer
    uploaded = [json.loads(line) for line in (run / "data" / "openai_train.jsonl").read_text().splitlines()]
    assert uploaded and all(set(r) == {"messages"} for r in uploaded)
    epochs = json.loads((run / "data_report.json").read_text())["tokens"]["epochs"]  # decided from the file's size
    assert f"training tokens ({epochs} epochs)" in (run / "train.log").read_text()
    assert KEY not in (run / "train.log").read_text() and KEY not in (run / "config.yaml").read_text()


def test_backend_openai_method_dpo_uploads_openai_preference_pairs_and_creates_a_dpo_job(server, tmp_path):
    train = write_jsonl(tmp_path / "pairs.jsonl", pair_rows(20))
    run = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "train", "backend=openai", f"backend.base_url={server.url}/v1", "backend.model=tiny-llama",
         "backend.poll_s=0.5", "backend.n_epochs=1", "method=dpo", "method.beta=0.3", "model=tiny-llama",
         f"data.train_file={train}", "data.test_fraction=0.2", "eval.max_new_tokens=4", f"hydra.run.dir={run}"],
        capture_output=True, text=True, env=env_without_keys(OPENAI_API_KEY=KEY), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    uploaded = [json.loads(line) for line in (run / "data" / "openai_train.jsonl").read_text().splitlines()]
    assert uploaded and all(set(r) == {"input", "preferred_output", "non_preferred_output"} for r in uploaded)
    assert all(r["non_preferred_output"][0]["role"] == "assistant" for r in uploaded)
    job = server.client().fine_tuning.jobs.retrieve(json.loads((run / "job.json").read_text())["job_id"])
    assert job.status == "succeeded" and job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.3
    assert set(json.loads((run / "metrics.json").read_text())) == {"base", "tuned"}


def test_backend_openai_method_reinforcement_uploads_the_task_lines_and_sends_the_grader(tmp_path, tokenizer):
    """The hosted job's method and upload for method=reinforcement (the server's side of the same request, a job
    to succeeded, is tests/commands/test_serve.py's reinforcement job)."""
    from helpers import compose_cfg
    from lorakit import methods
    from lorakit.models.loading import end_of_turn_ids
    from lorakit.openai.hosted import openai_files
    from lorakit.stages import prepare

    tasks = [{"messages": r["messages"][:-1], "reference_answer": r["messages"][-1]["content"], "id": i}
             for i, r in enumerate(tool_picker_rows("train", 10))]
    grader = tmp_path / "grader.yaml"
    grader.write_text("{type: text_similarity, name: close, input: '{{ sample.output_text }}', "
                      "reference: '{{ item.reference_answer }}', evaluation_metric: fuzzy_match}\n")
    cfg = compose_cfg("backend=openai", "backend.model=tiny-llama", "backend.batch_size=2", "method=reinforcement",
                      f"method.grader={grader}", f"data.train_file={write_jsonl(tmp_path / 't.jsonl', tasks)}",
                      "data.test_fraction=0.2", run_dir=tmp_path / "run")
    prepare.run(cfg, tokenizer, end_of_turn_ids(tokenizer), tmp_path / "run")
    files = openai_files(tmp_path / "run")
    uploaded = [json.loads(line) for line in files["train"].read_text().splitlines()]
    assert len(uploaded) == 8 and all(r in tasks for r in uploaded)  # each task line as given
    assert methods.of(cfg).openai_method(cfg) == {"type": "reinforcement", "reinforcement": {
        "grader": {"type": "text_similarity", "name": "close", "input": "{{ sample.output_text }}",
                   "reference": "{{ item.reference_answer }}", "evaluation_metric": "fuzzy_match"},
        "hyperparameters": {"n_epochs": None, "batch_size": 2, "learning_rate_multiplier": "auto"}}}


def test_training_records_are_openai_format_with_tool_arguments_as_json_strings():
    from lorakit.openai.records import prompt_messages, training_record

    call = {"type": "function", "id": "c1", "function": {"name": "weather", "arguments": {"city": "Oslo"}}}
    row = {"file": "x.jsonl", "line": 3, "record": 2, "tools": [{"type": "function", "function": {"name": "weather"}}],
           "messages": [{"role": "user", "content": "Weather in Oslo?"},
                        {"role": "assistant", "content": "", "tool_calls": [call], "weight": 1},
                        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                        {"role": "assistant", "content": "Sunny."}]}
    record = training_record(row)
    assert set(record) == {"messages", "tools"}
    sent = record["messages"][1]
    assert sent["tool_calls"][0]["function"]["arguments"] == '{"city": "Oslo"}' and sent["content"] is None
    assert sent["weight"] == 1 and record["messages"][2] == {"role": "tool", "content": "sunny", "tool_call_id": "c1"}
    assert [m["role"] for m in prompt_messages(row["messages"])] == ["user", "assistant", "tool"]


def test_ctrl_c_while_following_a_hosted_job_asks_nothing_without_a_terminal_and_leaves_it_running(server, tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", tool_picker_rows("train", 40))
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "train", "backend=openai", f"backend.base_url={server.url}/v1", "backend.model=tiny-llama",
         "backend.poll_s=0.5", "backend.n_epochs=50", "model=tiny-llama", "stages=[prepare,train]",
         f"data.train_file={train}", f"hydra.run.dir={run}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env_without_keys(OPENAI_API_KEY=KEY))
    deadline = time.monotonic() + 120
    while not ((run / "job.json").is_file() and json.loads((run / "job.json").read_text())["status"] == "running"):
        assert time.monotonic() < deadline and proc.poll() is None, "the hosted job did not start"
        time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out = proc.communicate(timeout=60)[0]
    job_id = json.loads((run / "job.json").read_text())["job_id"]
    client = server.client()
    try:
        assert proc.returncode != 0 and f"job {job_id} keeps running" in out, out[-3000:]
        assert client.fine_tuning.jobs.retrieve(job_id).status == "running"
    finally:
        client.fine_tuning.jobs.cancel(job_id)
