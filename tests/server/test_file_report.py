"""`GET /v1/files/{id}/report`: what the prepare stage finds in an upload, for the method that trains on it, the same
as `python -m train stages=[prepare]` writes for that file."""

from __future__ import annotations

import json

import httpx

from helpers import pair_rows, python_m, tool_picker_rows, write_jsonl
from helpers.fixtures import KEY


def report_of(server, path, purpose: str = "fine-tune") -> tuple[dict, httpx.Response]:
    uploaded = server.client().files.create(file=open(path, "rb"), purpose=purpose)
    return uploaded.model_dump(), httpx.get(f"{server.url}/v1/files/{uploaded.id}/report",
                                            headers={"Authorization": f"Bearer {KEY}"}, timeout=60)


def test_the_report_is_the_prepare_stages_for_that_file(server, tmp_path):
    rows = [json.dumps(r) for r in tool_picker_rows("train", 20)]
    rows[2], rows[5] = "{not json", json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    path = write_jsonl(tmp_path / "chat.jsonl", rows)
    meta, answer = report_of(server, path)
    report = answer.json()
    assert answer.status_code == 200 and report["method"] == "supervised" and report["filename"] == "chat.jsonl"
    run = tmp_path / "run"
    done = python_m("train", "model=tiny-llama", "stages=[prepare]", f"data.train_file={path}", "data.test_file=null",
                    "data.test_fraction=0", "data.val_fraction=0", f"hydra.run.dir={run}", "logger=none", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    written = json.loads((run / "data_report.json").read_text())
    for part in ("accounting", "tokens", "openai_cost", "decisions"):
        assert json.dumps(report[part]).replace("chat.jsonl", "F") == json.dumps(written[part]).replace(str(path), "F")
    assert [(f["line"], f["category"], f["message"]) for f in report["findings"]] == [
        (f["line"], f["category"], f["message"]) for f in written["findings"]] and len(report["findings"]) == 2
    assert str(server.data_dir) not in answer.text  # the server's own paths stay on the server
    again = httpx.get(f"{server.url}/v1/files/{meta['id']}/report", headers={"Authorization": f"Bearer {KEY}"})
    assert again.json() == report


def test_pairs_and_tasks_are_reported_for_their_method(server, tmp_path):
    _, pairs = report_of(server, write_jsonl(tmp_path / "pairs.jsonl", pair_rows(6)))
    assert pairs.json()["method"] == "dpo" and pairs.json()["accounting"]["used"]["train"] == 6
    tasks = [{"messages": r["messages"][:-1], "answer": r["messages"][-1]["content"]} for r in tool_picker_rows("train", 5)]
    _, answer = report_of(server, write_jsonl(tmp_path / "tasks.jsonl", tasks))
    report = answer.json()
    assert report["method"] == "reinforcement" and report["accounting"]["used"]["train"] == 5
    assert report["openai_cost"]["usd"] is None and "training time" in report["openai_cost"]["note"]


def test_only_fine_tune_uploads_have_a_report(server, tmp_path):
    _, answer = report_of(server, write_jsonl(tmp_path / "b.jsonl", [{"custom_id": "1"}]), "batch")
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_purpose"
    missing = httpx.get(f"{server.url}/v1/files/file-nope/report", headers={"Authorization": f"Bearer {KEY}"})
    assert missing.status_code == 404
