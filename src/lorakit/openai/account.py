"""An OpenAI fine-tuning account brought home, its inventory (`python -m lorakit.migrate`, step 1): every job of
the account (all pages, every status) with what OpenAI resolved for it (method, hyperparameters, grader, base model,
suffix, seed, status, fine-tuned model), its events, its checkpoints' models and metrics, its result files, and its
training and validation files downloaded byte for byte.

One folder per job, `DIR/<job id>/`: `job.json` and the files under their uploaded names. A file the account no
longer has is listed in `job.json` under `missing`. Re-running downloads only what is not on disk yet; the job's
record is refreshed (its status may have moved on).

Works against any server of OpenAI's API (OpenAI itself, lorakit.serve), through the official SDK.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from lorakit.core.errors import ApiError

log = logging.getLogger(__name__)

JOB_FILE = "job.json"
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def local_name(filename: str, file_id: str, taken: set[str]) -> str:
    """A downloaded file's name in the job's folder: its uploaded name made safe (no folders, no hidden files),
    with its id added when another file of the job has the same name."""
    name = _UNSAFE.sub("_", Path(filename or "").name).lstrip(".") or file_id
    if name in taken or name == JOB_FILE:
        stem, dot, ext = name.rpartition(".")
        name = f"{stem}-{file_id}.{ext}" if dot else f"{name}-{file_id}"
    return name


def _dump(item) -> dict:
    return item.model_dump(mode="json", exclude_none=False) if hasattr(item, "model_dump") else dict(item)


def _download(client, file_id: str, folder: Path, taken: set[str]) -> dict:
    """One file of a job: {"id", "filename", "path", "bytes"} once on disk, or {"id", "missing": why}."""
    import openai

    try:
        meta = client.files.retrieve(file_id)
        name = local_name(meta.filename, file_id, taken)
        taken.add(name)
        path = folder / name
        if not (path.is_file() and path.stat().st_size == meta.bytes):  # a finished download is not fetched again
            partial = path.with_name(path.name + ".part")
            partial.write_bytes(client.files.content(file_id).content)
            partial.replace(path)
    except openai.NotFoundError:
        return {"id": file_id, "missing": "the account no longer has this file (deleted, or expired)"}
    except openai.PermissionDeniedError as err:
        raise ApiError(f"this key cannot read the account's files ({err.status_code}, {file_id}): use a key with the "
                       "files permission (read) as well as fine-tuning's") from None
    entry = {"id": file_id, "filename": meta.filename, "path": name, "bytes": path.stat().st_size,
             "purpose": meta.purpose}
    csv = decoded_csv(path.read_bytes()) if meta.purpose == "fine-tune-results" else None
    if csv is not None:  # OpenAI serves its results CSV base64-encoded: the CSV itself beside the bytes as served
        entry["decoded"] = f"{Path(name).stem}.decoded.csv"
        (folder / entry["decoded"]).write_bytes(csv)
    return entry


def decoded_csv(data: bytes) -> bytes | None:
    """The CSV a results file holds base64-encoded (as OpenAI serves step_metrics.csv), else None (plain already,
    or not base64)."""
    import base64
    import binascii

    if data.lstrip().startswith(b"step"):
        return None
    try:
        text = base64.b64decode(b"".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    return text if text.lstrip().startswith(b"step") else None


def _record(client, job, folder: Path) -> dict:
    """The job's record: OpenAI's job object, its events and checkpoints, and its files as downloaded."""
    record = {"job": _dump(job), "events": [_dump(e) for e in client.fine_tuning.jobs.list_events(job.id, limit=100)],
              "checkpoints": [_dump(c) for c in client.fine_tuning.jobs.checkpoints.list(job.id, limit=100)]}
    taken: set[str] = set()
    files = {}
    for role in ("training_file", "validation_file"):
        if getattr(job, role, None):
            files[role] = _download(client, getattr(job, role), folder, taken)
    for i, result in enumerate(job.result_files or []):
        files[f"result_files[{i}]"] = _download(client, result, folder, taken)
    record["files"] = files
    record["missing"] = [f"{role}: {f['id']}: {f['missing']}" for role, f in files.items() if "missing" in f]
    return record


def inventory(client, out: Path) -> list[dict]:
    """Every job of the account recorded in out/<job id>/ (job.json and its files); returns the records.

    Raises:
        ApiError: the key cannot list the account's fine-tuning jobs (no key, no access, wrong server).
    """
    import openai

    try:
        jobs = list(client.fine_tuning.jobs.list(limit=100))  # the SDK follows every page
    except openai.AuthenticationError as err:
        raise ApiError(f"the API key was refused ({err.status_code}): set OPENAI_API_KEY to a key of the account "
                       "to migrate") from None
    except openai.PermissionDeniedError as err:
        raise ApiError(f"this key cannot read the account's fine-tuning jobs ({err.status_code}): use a key with "
                       "the fine-tuning permission (read) on the project that ran them") from None
    except openai.APIConnectionError as err:
        raise ApiError(f"cannot reach {client.base_url} ({err}): check OPENAI_BASE_URL and the network") from None
    records = []
    for job in jobs:
        folder = out / job.id
        folder.mkdir(parents=True, exist_ok=True)
        record = _record(client, job, folder)
        (folder / JOB_FILE).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
        for line in record["missing"]:
            log.warning("%s: %s", job.id, line)
        records.append(record)
    log.info("%d fine-tuning job(s) recorded in %s", len(records), out)
    return records
