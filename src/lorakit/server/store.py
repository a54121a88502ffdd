"""Files, fine-tuning jobs and their events, kept on disk under one data folder so that a restart loses nothing.

    data_dir/
      lorakit.sqlite   files, jobs (each as its OpenAI object plus lorakit's bookkeeping), job events, and the
                       fine-tuned models deleted (not served again after a restart)
      files/<id>       the uploaded bytes
      jobs/<id>/       each job's run folder (python -m train writes adapter/, train.log, ... there)
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (id TEXT PRIMARY KEY, created_at INTEGER, body TEXT);
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, created_at INTEGER, body TEXT, private TEXT);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE, job_id TEXT, body TEXT);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id, seq);
CREATE TABLE IF NOT EXISTS deleted_models (id TEXT PRIMARY KEY, deleted_at INTEGER);
"""


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


class Store:
    def __init__(self, data_dir: Path):
        self.root = Path(data_dir)
        (self.root / "files").mkdir(parents=True, exist_ok=True)
        (self.root / "jobs").mkdir(parents=True, exist_ok=True)
        (self.root / "reports").mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.root / "lorakit.sqlite", check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def _run(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # files
    def file_path(self, file_id: str) -> Path:
        return self.root / "files" / file_id

    def report_path(self, file_id: str) -> Path:
        """The upload's data report (lorakit.server.file_report), made when it is first asked for."""
        return self.root / "reports" / f"{file_id}.json"

    def put_file(self, body: dict) -> None:
        self._run("INSERT OR REPLACE INTO files VALUES (?, ?, ?)", (body["id"], body["created_at"], json.dumps(body)))

    def file(self, file_id: str) -> dict | None:
        rows = self._run("SELECT body FROM files WHERE id = ?", (file_id,))
        return json.loads(rows[0][0]) if rows else None

    def files(self) -> list[dict]:
        return [json.loads(b) for (b,) in self._run("SELECT body FROM files ORDER BY created_at DESC, rowid DESC")]

    def delete_file(self, file_id: str) -> None:
        self._run("DELETE FROM files WHERE id = ?", (file_id,))
        self.file_path(file_id).unlink(missing_ok=True)
        self.report_path(file_id).unlink(missing_ok=True)

    # jobs: the OpenAI object, and lorakit's own fields (run folder, process id) apart from it
    def run_dir(self, job_id: str) -> Path:
        return self.root / "jobs" / job_id

    def put_job(self, body: dict, private: dict | None = None) -> None:
        with self._lock:
            if private is None:
                row = self._db.execute("SELECT private FROM jobs WHERE id = ?", (body["id"],)).fetchone()
                private = json.loads(row[0]) if row else {}
            self._db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?)",
                             (body["id"], body["created_at"], json.dumps(body), json.dumps(private)))

    def job(self, job_id: str) -> tuple[dict, dict] | None:
        rows = self._run("SELECT body, private FROM jobs WHERE id = ?", (job_id,))
        return (json.loads(rows[0][0]), json.loads(rows[0][1])) if rows else None

    def jobs(self) -> list[dict]:
        """Newest first."""
        return [json.loads(b) for (b,) in self._run("SELECT body FROM jobs ORDER BY created_at DESC, rowid DESC")]

    # fine-tuned models deleted through DELETE /v1/models/{id}
    def delete_model(self, model_id: str) -> None:
        self._run("INSERT OR REPLACE INTO deleted_models VALUES (?, ?)", (model_id, int(time.time())))

    def deleted_models(self) -> set[str]:
        return {m for (m,) in self._run("SELECT id FROM deleted_models")}

    # events
    def add_event(self, job_id: str, message: str, *, level: str = "info", data: dict | None = None,
                  kind: str = "message") -> None:
        event = {"id": new_id("ftevent"), "object": "fine_tuning.job.event", "created_at": int(time.time()),
                 "level": level, "message": message, "data": data or {}, "type": kind}
        self._run("INSERT INTO events (id, job_id, body) VALUES (?, ?, ?)", (event["id"], job_id, json.dumps(event)))

    def events(self, job_id: str) -> list[dict]:
        """Newest first (as OpenAI lists them)."""
        return [json.loads(b) for (b,) in self._run("SELECT body FROM events WHERE job_id = ? ORDER BY seq DESC",
                                                     (job_id,))]


def page(items: list[dict], after: str | None, limit: int) -> dict:
    """OpenAI's cursor paging: the items after the one with id `after`, at most `limit`, and has_more."""
    start = 0
    if after:
        ids = [it["id"] for it in items]
        start = ids.index(after) + 1 if after in ids else len(items)
    chunk = items[start : start + limit]
    return {"object": "list", "data": chunk, "has_more": start + limit < len(items),
            "first_id": chunk[0]["id"] if chunk else None, "last_id": chunk[-1]["id"] if chunk else None}
