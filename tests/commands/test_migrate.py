"""`python -m lorakit.migrate` against lorakit.serve acting as an OpenAI account (it serves files, fine-tuning jobs
and `ft:` models through OpenAI's API): supervised and DPO jobs made with the SDK are brought home (every job
listed, files byte for byte, what was deleted named), the tuned model's answers are recorded equal to the
server's own, an interrupted recording resumes without asking anything twice, and a 429 is retried."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from helpers import pair_rows, serving, tool_picker_rows, write_jsonl
from helpers.fixtures import env_without_keys

CHAT_REQUESTS = '"POST /v1/chat/completions HTTP/1.1" 200'


def migrate(server, out, *args: str, base_url: str | None = None) -> subprocess.CompletedProcess:
    env = env_without_keys(OPENAI_API_KEY=server.key, OPENAI_BASE_URL=base_url or f"{server.url}/v1")
    return subprocess.run([sys.executable, "-m", "lorakit.migrate", "--out", str(out), *args], env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def account(server, tuned, tmp_path_factory):
    """The account: the session's supervised job, one with a validation file, and a DPO job whose validation file
    was deleted afterwards."""
    client = server.client()
    tmp = tmp_path_factory.mktemp("account")
    train = write_jsonl(tmp / "train.jsonl", tool_picker_rows("train", 16))
    valid = write_jsonl(tmp / "valid.jsonl", tool_picker_rows("test", 6))
    files = {name: client.files.create(file=open(path, "rb"), purpose="fine-tune") for name, path in
             (("train", train), ("valid", valid))}
    supervised = client.fine_tuning.jobs.create(training_file=files["train"].id, validation_file=files["valid"].id,
                                                model="tiny-llama", suffix="home", hyperparameters={"n_epochs": 1})
    pairs = write_jsonl(tmp / "prefs.jsonl", pair_rows(8))
    held_out = write_jsonl(tmp / "prefs_valid.jsonl", pair_rows(4, offset=8))
    pair_file = client.files.create(file=open(pairs, "rb"), purpose="fine-tune")
    pair_valid = client.files.create(file=open(held_out, "rb"), purpose="fine-tune")
    dpo = client.fine_tuning.jobs.create(training_file=pair_file.id, validation_file=pair_valid.id, model="tiny-llama",
                                         method={"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 1,
                                                                                            "batch_size": 8}}})
    supervised = serving.wait_for(client, supervised.id, {"succeeded", "failed", "cancelled"})
    dpo = serving.wait_for(client, dpo.id, {"succeeded", "failed", "cancelled"})
    assert supervised.status == dpo.status == "succeeded", (supervised.error, dpo.error)
    client.files.delete(pair_valid.id)
    return {"supervised": supervised, "dpo": dpo, "train": train, "valid": valid, "pairs": pairs}


def test_the_account_comes_home_with_its_files_and_the_tuned_models_answers(server, account, tmp_path):
    out = tmp_path / "home"
    done = migrate(server, out, "--yes", "--concurrency", "1")  # one at a time: answers as the server gives them alone
    assert done.returncode == 0, done.stderr[-3000:]
    assert server.key not in done.stdout + done.stderr
    client = server.client()
    index = {j["id"]: j for j in json.loads((out / "index.json").read_text())["jobs"]}
    assert set(index) == {j.id for j in client.fine_tuning.jobs.list(limit=100)}  # every job, every status
    job = account["supervised"]
    record = json.loads((out / job.id / "job.json").read_text())
    assert record["job"]["fine_tuned_model"] == job.fine_tuned_model and record["job"]["seed"] == job.seed
    assert record["events"] and record["checkpoints"]
    assert (out / job.id / "train.jsonl").read_bytes() == account["train"].read_bytes()
    assert (out / job.id / "valid.jsonl").read_bytes() == account["valid"].read_bytes()
    assert (out / job.id / "step_metrics.csv").read_text().startswith("step,train_loss")
    dpo = index[account["dpo"].id]
    assert dpo["method"] == "dpo" and "validation_file" in dpo["missing"][0]  # deleted: named, not silently gone
    assert (out / dpo["id"] / "prefs.jsonl").read_bytes() == account["pairs"].read_bytes()
    assert "method=dpo" in (out / dpo["id"] / "run.sh").read_text()

    recorded = [json.loads(line) for line in (out / job.id / "recorded.jsonl").read_text().splitlines()]
    assert len(recorded) == 6 == index[job.id]["recorded"]
    for line in recorded:  # the request as sent, the answer equal to the server's own for it
        assert line["request"]["model"] == job.fine_tuned_model and line["request"]["temperature"] == 0
        assert line["request"]["messages"][-1]["role"] == "user"  # the conversation without its final reply
        again = client.chat.completions.create(**line["request"])
        assert line["answer"] == (again.choices[0].message.content or "").strip()

    asked = server.log.read_text().count(CHAT_REQUESTS)
    train_mtime = (out / job.id / "train.jsonl").stat().st_mtime_ns
    again = migrate(server, out, "--yes")
    assert again.returncode == 0, again.stderr[-3000:]
    assert server.log.read_text().count(CHAT_REQUESTS) == asked  # nothing asked twice
    assert (out / job.id / "train.jsonl").stat().st_mtime_ns == train_mtime  # nor downloaded twice

    path = out / job.id / "recorded.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2]) + lines[2][:40])  # interrupted after two answers, in the third's write
    resumed = migrate(server, out, "--yes", "--concurrency", "1")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert server.log.read_text().count(CHAT_REQUESTS) == asked + 4
    assert sorted(json.loads(line)["id"] for line in path.read_text().splitlines()) == sorted(r["id"] for r in recorded)


class _Throttled(BaseHTTPRequestHandler):
    """In front of the server: the first chat request gets 429 (Retry-After 0), a results CSV is served
    base64-encoded (as OpenAI serves it), everything else goes through."""
    target, refused = "", 0

    def _forward(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if method == "POST" and self.path.endswith("/chat/completions") and not type(self).refused:
            type(self).refused += 1
            self.send_response(429)
            self.send_header("retry-after", "0")
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "Rate limit reached", "type": "requests", "code": null}}')
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() in {"authorization", "content-type"}}
        answer = httpx.request(method, self.target + self.path, content=body, headers=headers, timeout=120)
        content = answer.content
        if self.path.endswith("/content") and content.startswith(b"step,"):  # a results CSV, as OpenAI serves it
            content = base64.b64encode(content)
        self.send_response(answer.status_code)
        self.send_header("content-type", answer.headers.get("content-type", "application/json"))
        self.end_headers()
        self.wfile.write(content)

    def do_GET(self):  # noqa: N802 - http.server's names
        self._forward("GET")

    def do_POST(self):  # noqa: N802
        self._forward("POST")

    def log_message(self, *args):
        pass


def test_a_rate_limited_request_is_retried_and_a_base64_results_file_decoded(server, account, tmp_path):
    _Throttled.target = server.url
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Throttled)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        done = migrate(server, tmp_path / "home", "--yes", base_url=f"http://127.0.0.1:{proxy.server_port}/v1")
    finally:
        proxy.shutdown()
    assert done.returncode == 0, done.stderr[-3000:]
    assert _Throttled.refused == 1
    job = account["supervised"]
    assert len((tmp_path / "home" / job.id / "recorded.jsonl").read_text().splitlines()) == 6
    served = server.client().files.content(job.result_files[0]).content
    assert (tmp_path / "home" / job.id / "step_metrics.csv").read_bytes() == base64.b64encode(served)  # as served
    assert (tmp_path / "home" / job.id / "step_metrics.decoded.csv").read_bytes() == served


def test_nothing_is_spent_unasked(server, account, tmp_path):
    done = migrate(server, tmp_path / "home")  # no --yes, and nobody at a terminal to ask
    assert done.returncode == 2 and "add --yes" in done.stderr
    asked = re.search(r"Recording asks (\d+) request\(s\) of the tuned models: about \$", done.stdout)
    assert asked and int(asked[1]) >= 6  # the supervised job's 6 validation prompts at least
    assert "no rate in conf/pricing/openai.yaml for tiny-llama" in done.stdout
    assert not list((tmp_path / "home").glob("*/recorded.jsonl"))


def test_the_cost_estimate_uses_the_dated_fine_tuned_rates():
    from omegaconf import OmegaConf

    from lorakit.core.paths import CONF_DIR
    from lorakit.openai.recording import Plan, estimate

    request = {"messages": [{"role": "user", "content": "x" * 396}]}  # 4,000 characters with the JSON around it
    plan = Plan("ftjob-1", "ft:gpt-4o-mini-2024-07-18:org::abc", "gpt-4o-mini-2024-07-18", [request] * 1000, [],
                expected_output_chars=400_000)
    cost = estimate([plan], OmegaConf.load(CONF_DIR / "pricing" / "openai.yaml"))
    prompt_tokens = len(json.dumps(request["messages"])) / 4 * 1000
    assert cost["requests"] == 1000 and not cost["unpriced_models"]
    assert cost["usd"] == round((prompt_tokens * 0.30 + 100_000 * 1.20) / 1e6, 4)


def test_run_sh_retrains_compares_with_the_recorded_answers_and_the_old_id_is_served(server, account, tmp_path):
    out = tmp_path / "home"
    done = migrate(server, out, "--yes", "--base", "tiny-llama", "--margin", "0.1")
    assert done.returncode == 0, done.stderr[-3000:]
    job = account["supervised"]
    script = out / job.id / "run.sh"
    text = script.read_text()
    assert "method=supervised" in text and "train.num_train_epochs=1" in text and "model=tiny-llama" in text
    assert "recorded:" in text and "eval.margin=${MARGIN:-0.1}" in text
    ran = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900,
                         env=env_without_keys(MARGIN="0.2"))
    assert ran.returncode == 0, ran.stderr[-3000:]
    result = json.loads((out / job.id / "compare" / "compare.json").read_text())
    assert result["reference"].startswith("recorded:") and result["n_examples"] == 6
    verdicts = result["non_inferiority"]
    assert verdicts and {v["b"] for v in verdicts} == {str(out.resolve() / job.id / "local")}
    assert all(v["margin"] == 0.2 and v["verdict"] in {"non-inferior", "inferior", "inconclusive"} for v in verdicts)
    assert "Non-inferiority" in (out / job.id / "compare" / "compare.html").read_text()

    with serving.running(tmp_path / "data", "--model", "tiny-llama", "--aliases", str(out)) as local:
        client = local.client(key="local")
        assert job.fine_tuned_model in {m.id for m in client.models.list()}  # the id client code already uses
        reply = client.chat.completions.create(model=job.fine_tuned_model, max_tokens=4,
                                               messages=[{"role": "user", "content": "Set a timer"}])
        assert reply.model == job.fine_tuned_model


def test_lines_lorakit_would_drop_are_named_with_file_and_line(tmp_path, tiny_dir):
    from lorakit.migrate import check_files
    from lorakit.models.loading import load_tokenizer

    rows = [*tool_picker_rows("train", 3), {"messages": [{"role": "user", "content": "no reply"}, {"role": "wizard",
                                                                                                  "content": "?"}]}]
    write_jsonl(tmp_path / "train.jsonl", rows)
    problems = check_files(tmp_path, {"training_file": {"path": "train.jsonl"}}, load_tokenizer(tiny_dir))
    assert len(problems) == 1 and "train.jsonl:4" in problems[0]
    write_jsonl(tmp_path / "train.jsonl", rows[:3])
    assert check_files(tmp_path, {"training_file": {"path": "train.jsonl"}}, load_tokenizer(tiny_dir)) == []


def test_a_retired_model_is_reported_and_the_rest_go_on(server, account, tmp_path):
    prompts = write_jsonl(tmp_path / "prompts.jsonl", tool_picker_rows("test", 2))
    client = server.client()
    client.models.delete(account["dpo"].fine_tuned_model)  # as OpenAI retires one: its requests get 404
    done = migrate(server, tmp_path / "home", "--yes", "--prompts", str(prompts), "--no-record")
    assert done.returncode == 0 and not list((tmp_path / "home").glob("*/recorded.jsonl"))  # --no-record: nothing asked
    done = migrate(server, tmp_path / "home", "--yes", "--prompts", str(prompts))
    assert done.returncode == 1  # not everything could be recorded: index.json says what
    index = {j["id"]: j for j in json.loads((tmp_path / "home" / "index.json").read_text())["jobs"]}
    assert "no longer answers (retired or deleted)" in index[account["dpo"].id]["recording_failed"]
    assert index[account["supervised"].id]["recorded"] == 2 and not index[account["supervised"].id]["recording_failed"]


def _records(job: dict, files: dict) -> list[dict]:
    return [{"job": {"status": "succeeded", "seed": 7, "model": "gpt-4.1-mini-2025-04-14", "hyperparameters": None,
                     "fine_tuned_model": f"ft:gpt-4.1-mini-2025-04-14:org::{job['id']}", **job}, "files": files,
             "missing": []}]


def _train_overrides(script: str) -> list[str]:
    import shlex

    [line] = [line for line in script.splitlines() if " -m train " in line]
    return [o.replace("hydra.run.dir=", "run_dir=", 1) for o in shlex.split(line)[3:]]


def test_run_sh_maps_a_reinforcement_job_and_its_grader_onto_a_valid_local_run(tmp_path):
    """A reinforcement job as OpenAI returns it (resolved hyperparameters, reasoning_effort, its grader): run.sh's
    training command composes into a configuration `python -m train` accepts, with the grader and generations. A
    job whose grader cannot run here gets no run.sh, says why, and the others go on."""
    from lorakit.config.compose import compose
    from lorakit.config.validation import validate
    from lorakit.migrate import write_scripts

    grader = {"type": "string_check", "name": "tool", "input": "{{sample.output_text}}", "reference": "{{item.tool}}",
              "operation": "eq"}
    job = {"id": "ftjob-rft", "method": {"type": "reinforcement", "reinforcement": {"grader": grader, "hyperparameters": {
        "n_epochs": 2, "batch_size": 2, "learning_rate_multiplier": 0.5, "compute_multiplier": 2.0, "eval_interval": 5,
        "eval_samples": 3, "reasoning_effort": "medium", "a_later_knob": 1}}}}  # a field lorakit has no setting for
    folder = tmp_path / job["id"]
    folder.mkdir()
    rows = [{"messages": r["messages"][:-1], "tool": json.loads(r["messages"][-1]["content"])["tool"]}
            for r in tool_picker_rows("train", 8)]
    write_jsonl(folder / "tasks.jsonl", rows)
    unrunnable = {"id": "ftjob-bad", "method": {"type": "reinforcement", "reinforcement": {"grader": {
        "type": "string_check", "name": "x", "input": "{{sample.output_text}}", "operation": "sounds_like"}}}}
    (tmp_path / "ftjob-bad").mkdir()
    write_jsonl(tmp_path / "ftjob-bad" / "tasks.jsonl", rows)
    records = _records(job, {"training_file": {"path": "tasks.jsonl"}}) + _records(unrunnable, {"training_file": {
        "path": "tasks.jsonl"}})
    checks, unscripted = write_scripts(records, tmp_path, "tiny-llama", 0.05, None)
    assert set(checks) == {job["id"]} and not (tmp_path / "ftjob-bad" / "run.sh").exists()
    assert "no run.sh: its grader cannot run here" in unscripted["ftjob-bad"] and "operation" in unscripted["ftjob-bad"]
    script = (folder / "run.sh").read_text()
    assert "no recorded answers to compare with" in script  # none recorded, no validation file: nothing to compare
    overrides = _train_overrides(script)
    assert {"method=reinforcement", "method.num_generations=8", "train.per_device_train_batch_size=16",
            "+method.num_generations_eval=3", "train.num_train_epochs=2", "seed=7"} <= set(overrides)
    assert json.loads((folder / "local" / "grader.json").read_text()) == grader
    cfg = compose(*overrides)
    validate(cfg, cuda=False)  # what `python -m train` checks before it loads anything
    assert cfg.method.grader == str(folder.resolve() / "local" / "grader.json") and cfg.method.num_generations == 8


def test_free_text_answers_get_the_pairwise_judge_json_answers_do_not(tmp_path):
    from lorakit.migrate import write_scripts

    sentences = ["The meeting moved to Tuesday because the room was booked.", "Water boils at a lower temperature "
                 "up a mountain.", "She left early to catch the last train home.", "Bake it for twenty minutes."]
    chat = [{"messages": [{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": s}]}
            for i, s in enumerate(sentences)]
    for name, rows in (("ftjob-text", chat), ("ftjob-json", tool_picker_rows("test", 4))):
        (tmp_path / name).mkdir()
        write_jsonl(tmp_path / name / "train.jsonl", rows)
        write_jsonl(tmp_path / name / "valid.jsonl", rows)
        write_jsonl(tmp_path / name / "recorded.jsonl", [{"id": str(i), "request": {"messages": r["messages"][:-1]},
                                                          "answer": r["messages"][-1]["content"]}
                                                         for i, r in enumerate(rows)])
        write_scripts(_records({"id": name}, {"training_file": {"path": "train.jsonl"},
                                              "validation_file": {"path": "valid.jsonl"}}),
                      tmp_path, "tiny-llama", 0.05, None, judge="openai:gpt-5 mini")
    assert "JUDGE" not in (tmp_path / "ftjob-json" / "run.sh").read_text()  # exact metrics settle JSON answers
    script = tmp_path / "ftjob-text" / "run.sh"
    dumper = tmp_path / "args.py"  # run.sh as written, with a Python that prints its arguments instead of running
    dumper.write_text(f"#!{sys.executable}\nimport json, sys\nprint(json.dumps(sys.argv[1:]))\n")
    dumper.chmod(0o755)
    script.write_text(script.read_text().replace(sys.executable, str(dumper)))

    def compare_args(**env) -> list[str]:
        ran = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env_without_keys(**env))
        assert ran.returncode == 0, ran.stderr
        return json.loads(ran.stdout.splitlines()[-1])

    assert compare_args()[-2:] == ["eval.judge.model=openai:gpt-5 mini", "eval.judge.mode=pairwise"]  # --judge
    assert compare_args(JUDGE="smollm2-135m")[-2:] == ["eval.judge.model=smollm2-135m", "eval.judge.mode=pairwise"]
    assert compare_args(JUDGE="", MARGIN="0.2")[-1] == "eval.margin=0.2"  # JUDGE empty: no judge


class _Refused(BaseHTTPRequestHandler):
    """OpenAI's answer to a restricted key without the fine-tuning read scope, whatever is asked."""

    def do_GET(self):  # noqa: N802 - http.server's names
        self.send_response(403)
        self.send_header("content-type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": {"message": "You have insufficient permissions for this operation. Missing '
                         b'scopes: api.fine_tuning.jobs.read.", "type": "invalid_request_error", "code": null}}')

    def log_message(self, *args):
        pass


def test_a_refused_key_is_named_with_its_fix_and_never_shown(server, tmp_path):
    wrong = "sk-wrong-" + "x" * 24
    done = subprocess.run([sys.executable, "-m", "lorakit.migrate", "--out", str(tmp_path / "a")], capture_output=True,
                          text=True, timeout=120, env=env_without_keys(OPENAI_API_KEY=wrong,
                                                                       OPENAI_BASE_URL=f"{server.url}/v1"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "the API key was refused (401): set OPENAI_API_KEY to a key of the account" in done.stderr
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Refused)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        restricted = migrate(server, tmp_path / "b", base_url=f"http://127.0.0.1:{proxy.server_port}/v1")
    finally:
        proxy.shutdown()
    assert restricted.returncode == 2 and "Traceback" not in restricted.stderr
    assert "cannot read the account's fine-tuning jobs (403): use a key with the fine-tuning permission" in \
        restricted.stderr
    for ran in (done, restricted):
        assert wrong not in ran.stdout + ran.stderr and server.key not in ran.stdout + ran.stderr


def test_an_account_with_more_jobs_than_a_page_comes_home_whole(tmp_path, tiny_dir):
    """101 jobs: more than the 100 a page of OpenAI's job list holds."""
    with serving.running(tmp_path / "data", "--model", "tiny-llama", key="k-many") as srv:
        client = srv.client()
        upload = client.files.create(file=open(write_jsonl(tmp_path / "t.jsonl", tool_picker_rows("train", 4)), "rb"),
                                     purpose="fine-tune")
        made = [client.fine_tuning.jobs.create(training_file=upload.id, model="tiny-llama").id for _ in range(101)]
        for job_id in made:
            client.fine_tuning.jobs.cancel(job_id)
        assert client.fine_tuning.jobs.list(limit=100).has_more
        done = migrate(srv, tmp_path / "home", "--no-record")
    assert done.returncode == 0, done.stderr[-3000:]
    index = json.loads((tmp_path / "home" / "index.json").read_text())["jobs"]
    assert sorted(j["id"] for j in index) == sorted(made) and {j["status"] for j in index} == {"cancelled"}
    assert all((tmp_path / "home" / job_id / "t.jsonl").is_file() for job_id in made)


def test_a_results_file_served_base64_encoded_is_decoded_beside_its_bytes():
    from lorakit.openai.account import decoded_csv

    csv = b"step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n1,2.31,0.4,,\n2,1.97,0.5,2.01,0.48\n"
    encoded = base64.b64encode(csv)
    assert decoded_csv(encoded) == csv and decoded_csv(encoded[:40] + b"\n" + encoded[40:] + b"\n") == csv
    assert decoded_csv(csv) is None  # plain already (lorakit.serve's)
    assert decoded_csv(base64.b64encode(b"{not a csv}")) is None and decoded_csv(b"\x00\x01 binary") is None
