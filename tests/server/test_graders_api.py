"""OpenAI's grader endpoints on lorakit.serve, through the official SDK over real HTTP on 127.0.0.1:
client.fine_tuning.alpha.graders.run / .validate, as OpenAI's docs call them."""

from __future__ import annotations

import os
import threading
import time

import httpx
import pytest

import openai
from helpers import serving

EXACT = {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}",
         "reference": "{{ item.answer }}", "operation": "eq"}


def test_run_grades_a_sample_with_each_kind_of_grader(server):
    graders = server.client().fine_tuning.alpha.graders
    result = graders.run(grader=EXACT, model_sample="Paris", item={"answer": "Paris"})
    assert result.reward == 1.0 and result.metadata.name == "exact" and result.metadata.type == "string_check"
    assert not any(v for k, v in result.metadata.errors.model_dump().items() if isinstance(v, bool))
    assert graders.run(grader=EXACT, model_sample="Lyon", item={"answer": "Paris"}).reward == 0.0

    multi = {"type": "multi", "name": "contact", "calculate_output": "(name + email) / 2",
             "graders": {"name": {"type": "text_similarity", "name": "name", "input": "{{ sample.output_json.name }}",
                                  "reference": "{{ item.name }}", "evaluation_metric": "fuzzy_match"},
                         "email": {**EXACT, "name": "email", "input": "{{ sample.output_json.email }}",
                                   "reference": "{{ item.email }}"}}}
    result = graders.run(grader=multi, model_sample='{"name": "Jon Doe", "email": "jd@example.org"}',
                         item={"name": "John Doe", "email": "jd@example.org"})
    assert result.sub_rewards == {"name": pytest.approx(14 / 15), "email": 1.0}
    assert result.reward == pytest.approx((14 / 15 + 1) / 2)

    missing = graders.run(grader=EXACT, model_sample="Paris", item={"city": "Paris"})
    assert missing.reward == 0.0 and missing.metadata.errors.invalid_variable_error


def test_a_python_grader_runs_outside_the_server_process_and_its_errors_are_reported(server):
    graders = server.client().fine_tuning.alpha.graders
    source = ("import os\n\ndef grade(sample, item):\n    if sample['output_text'] == 'boom':\n"
              "        raise RuntimeError('no city')\n    return float(os.getpid())\n")
    grader = {"type": "python", "name": "where", "source": source}
    pid = graders.run(grader=grader, model_sample="Paris", item={}).reward
    assert pid > 0 and pid != server.proc.pid
    failed = graders.run(grader=grader, model_sample="boom", item={})
    assert failed.reward == 0.0 and failed.metadata.errors.python_grader_runtime_error
    assert "RuntimeError: no city" in failed.metadata.errors.python_grader_runtime_error_details
    assert server.health()["status"] == "ok"


def test_a_model_grader_is_answered_by_a_served_model(server):
    graders = server.client().fine_tuning.alpha.graders
    grader = {"type": "label_model", "name": "judge", "model": "tiny-llama", "labels": ["good", "bad"],
              "passing_labels": ["good"], "input": [{"role": "user", "content": "Grade: {{ sample.output_text }}"}]}
    result = graders.run(grader=grader, model_sample="Paris", item={})
    assert result.reward == 0.0 and result.metadata.errors.model_grader_parse_error  # a random tiny model's reply
    with pytest.raises(openai.BadRequestError, match="'gpt-4o' is not served here"):
        graders.validate(grader={**grader, "model": "gpt-4o"})


def test_validate_answers_the_grader_back_or_every_problem(server):
    graders = server.client().fine_tuning.alpha.graders
    assert graders.validate(grader=EXACT).grader.name == "exact"
    bad = {"type": "multi", "name": "m", "calculate_output": "a + open('x')",
           "graders": {"a": {**EXACT, "operation": "equals", "reference": "{{ answer }}"}}}
    with pytest.raises(openai.BadRequestError) as err:
        graders.validate(grader=bad)
    text = str(err.value)
    assert "3 problem(s) with the grader" in text
    assert "grader.graders.a.operation: 'equals' is not one of eq, ne, like, ilike" in text
    assert "grader.graders.a.reference: {{ answer }} is not a variable" in text
    assert "grader.calculate_output: only the functions" in text
    with pytest.raises(openai.BadRequestError, match="'python_code' is not a grader type"):
        graders.run(grader={"type": "python_code", "name": "p"}, model_sample="x")
    with pytest.raises(openai.AuthenticationError):
        server.client(key="sk-wrong").fine_tuning.alpha.graders.validate(grader=EXACT)


def test_a_hostile_python_grader_leaves_the_server_and_its_data_untouched(server):
    data = server.data_dir.resolve()
    source = f"""import glob, os

def grade(sample, item):
    found = 0
    for path in ({str(data / "lorakit.sqlite")!r}, {str(data / "files")!r}):
        found += os.path.exists(path)
        try:
            open(path + "-injected", "w").write("x")
            found += 1
        except OSError:
            pass
    seen = b"".join(open(p, "rb").read() for p in glob.glob("/proc/*/environ"))
    return float(found + ({server.key!r}.encode() in seen))
"""
    client = server.client()
    files_before = [f.id for f in client.files.list().data]
    result = client.fine_tuning.alpha.graders.run(grader={"type": "python", "name": "h", "source": source},
                                                  model_sample="x", item={})
    assert result.reward == 0.0 and result.metadata.error_message is None  # before: the data dir, the key
    assert not list(data.glob("*-injected")) and [f.id for f in client.files.list().data] == files_before
    assert server.health()["status"] == "ok"


def test_the_inputs_that_answered_500_get_a_4xx_naming_the_field(server):
    graders = server.client().fine_tuning.alpha.graders
    exact = {**EXACT, "name": "a"}
    deep = {"type": "multi", "name": "m", "graders": {"a": exact}, "calculate_output": "-" * 990 + "a"}
    for call in (lambda grader: graders.validate(grader=grader),
                 lambda grader: graders.run(grader=grader, model_sample="x", item={"answer": "x"})):
        with pytest.raises(openai.BadRequestError, match="nests operators or calls more than 50 deep"):
            call(deep)
    scorer = {"type": "score_model", "name": "s", "model": "tiny-llama", "input": [{"role": "user", "content": "x"}],
              "sampling_params": {"max_completions_tokens": "abc"}}
    with pytest.raises(openai.BadRequestError, match="max_completions_tokens: 'abc'; must be a whole number"):
        graders.run(grader=scorer, model_sample="x")
    forged = ("import os\n\ndef grade(sample, item):\n    for fd in os.listdir('/proc/self/fd'):\n        try:\n"
              "            os.write(int(fd), b'{\"score\": NaN}\\n')\n        except OSError:\n            pass\n"
              "    return 1.0\n")
    result = graders.run(grader={"type": "python", "name": "f", "source": forged}, model_sample="x")
    assert result.reward == 0.0 and "not an answer" in result.metadata.error_message
    too_many = {"type": "multi", "name": "m", "graders": {f"g{i}": {**exact, "name": f"g{i}"} for i in range(9)},
                "calculate_output": "g0"}
    with pytest.raises(openai.BadRequestError, match="a multi grader combines at most 8"):
        graders.validate(grader=too_many)
    with pytest.raises(openai.BadRequestError, match="more than 50 deep"):  # before: 500 at job creation too
        server.client().fine_tuning.jobs.create(training_file="file-x", model="tiny-llama", method={
            "type": "reinforcement", "reinforcement": {"grader": deep}})
    assert "Traceback" not in server.log.read_text()


def test_a_deep_upload_is_an_error_file_and_no_bytes_stay_without_their_row(server, tmp_path):
    client = server.client()
    path = tmp_path / "deep.jsonl"
    path.write_text("[" * 10000 + "]" * 10000 + "\n")
    uploaded = client.files.create(file=open(path, "rb"), purpose="fine-tune")
    assert uploaded.status == "error" and "nested too deep" in uploaded.status_details  # before: 500
    on_disk = {p.name for p in (server.data_dir / "files").iterdir()}
    assert on_disk == {f.id for f in client.files.list().data}  # before: 23 files on disk for 22 rows


def test_a_task_without_the_graders_field_fails_its_job_at_validation_naming_line_and_field(server, tmp_path):
    client = server.client()
    path = tmp_path / "tasks.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "2+2?"}], "answer": "4"}\n'
                    '{"messages": [{"role": "user", "content": "3+3?"}]}\n')
    uploaded = client.files.create(file=open(path, "rb"), purpose="fine-tune")
    grader = {"type": "string_check", "name": "exact", "input": "{{ sample.output_text }}",
              "reference": "{{ item.answer }}", "operation": "eq"}
    job = client.fine_tuning.jobs.create(training_file=uploaded.id, model="tiny-llama",
                                         method={"type": "reinforcement", "reinforcement": {"grader": grader}})
    failed = serving.wait_for(client, job.id, {"failed", "succeeded", "cancelled"}, timeout=60)
    assert failed.status == "failed" and failed.error.code == "invalid_training_file"  # before: training_failed
    assert "tasks.jsonl:2" in failed.error.message and "item.answer" in failed.error.message
    assert str(server.data_dir.parent) not in failed.error.message


def test_string_graders_do_not_wait_behind_python_ones_and_grading_stops_when_the_client_leaves(server):
    sleeper = {"type": "python", "name": "slow", "source": "import time\n\ndef grade(s, i):\n    time.sleep(6)\n"
                                                           "    return 1.0\n"}
    multi = {"type": "multi", "name": "m", "calculate_output": "(a + b + c) / 3",
             "graders": {n: {**sleeper, "name": n} for n in "abc"}}
    done: list[str] = []
    url = f"{server.url}/v1/fine_tuning/alpha/graders/run"
    auth = {"authorization": f"Bearer {server.key}"}

    def slow() -> None:
        httpx.post(url, json={"grader": multi, "model_sample": "x"}, headers=auth, timeout=120)
        done.append("slow")

    holders = [threading.Thread(target=slow) for _ in range(4)]  # every python slot, 18 s each
    for t in holders:
        t.start()
    time.sleep(1)
    quick = server.client().fine_tuning.alpha.graders.run(grader=EXACT, model_sample="Paris", item={"answer": "Paris"})
    done.append("quick")
    assert quick.reward == 1.0 and done[0] == "quick"  # before: it waited 88 s behind them
    marker = f"lorakit-abandoned-{time.time_ns()}"
    lingering = {"type": "python", "name": "l", "source": "import subprocess\n\ndef grade(s, i):\n"
                 f"    subprocess.run(['/bin/sh', '-c', 'sleep 60 # {marker}'])\n    return 1.0\n"}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up after 3 s
        httpx.post(url, json={"grader": lingering, "model_sample": "x"}, headers=auth, timeout=3)
    deadline = time.monotonic() + 60
    while _running(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _running(marker) == []  # before: graded on, 60 s, after its client had gone
    for t in holders:
        t.join()


def _running(marker: str) -> list[str]:
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                out.append(pid)
        except OSError:
            pass
    return out
