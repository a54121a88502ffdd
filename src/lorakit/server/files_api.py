"""`/v1/files`: upload (multipart, purpose `fine-tune`), list, retrieve, content, delete.

A `fine-tune` upload is read and checked with the prepare stage's checks at once; its file object's `status`
is `processed`, or `error` with `status_details` naming every unusable line and the fix. A job given a file with
errors fails the way OpenAI's do (`invalid_training_file`, the same lines in the message).

`GET /v1/files/{id}/report` (lorakit's own) gives the whole data report of a `fine-tune` upload, as the prepare
stage writes it (lorakit.server.file_report).
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import FileResponse

from lorakit.data.checks import SpecialTokens
from lorakit.data.reading import DataError, listing, read_file
from lorakit.data.tasks import read_tasks
from lorakit.server import file_report
from lorakit.server.api_errors import APIError
from lorakit.server.store import new_id, page

PURPOSES = {"fine-tune", "fine-tune-results", "batch", "assistants", "user_data", "evals", "vision"}


def check_training_file(path, filename: str, tokenizer) -> tuple[int, str | None, str | None]:
    """(examples, "chat", "pairs" or "tasks", None), or (0, what the usable lines hold, what is wrong: one
    `file:line: category: problem` per unusable line). A file is read as reinforcement tasks when more of its lines
    are usable as tasks than as chat examples (every conversation ending in a user turn)."""
    special = SpecialTokens(tokenizer)
    try:
        read = read_file(path, "auto", None, special)
        tasks = read_tasks(path, special=special)
    except (DataError, UnicodeDecodeError, ValueError) as err:
        return 0, None, str(err).replace(str(path), filename)
    except RecursionError:
        return 0, None, f"{filename}: JSON nested too deep to read; no training record nests like this"
    if len(tasks.examples) > len(read.examples):
        read = tasks
    kind = "tasks" if read is tasks else "pairs" if any(ex.rejected is not None for ex in read.examples) else "chat"
    errors = [f for f in read.findings if f.drops]
    if errors:
        return 0, kind, (f"{len({f.record for f in errors})} unusable record(s) in {filename}:\n"
                         + listing(errors).replace(str(path), filename))
    if not read.examples:
        return 0, None, f"{filename}: no examples; the file is empty"
    return len(read.examples), kind, None


async def _receive(file: UploadFile, path, purpose: str, tokenizer) -> dict:
    """Write the upload to `path` and check it: its file object, less the id."""
    size = 0
    with path.open("wb") as out:
        while chunk := await file.read(1 << 20):
            out.write(chunk)
            size += len(chunk)
    body = {"object": "file", "bytes": size, "created_at": int(time.time()), "filename": file.filename or "upload.jsonl",
            "purpose": purpose, "status": "processed", "status_details": None, "expires_at": None}
    if purpose == "fine-tune":
        examples, kind, problem = await asyncio.to_thread(check_training_file, path, body["filename"], tokenizer)
        body["status"], body["status_details"] = ("error", problem) if problem else ("processed", None)
        body["lorakit_examples"], body["lorakit_kind"] = examples, kind
    return body


def router(state) -> APIRouter:
    api = APIRouter()
    store = state.store

    @api.post("/v1/files")
    async def upload(file: UploadFile = File(...), purpose: str = Form(...)):  # noqa: B008 - FastAPI's form fields
        if purpose not in PURPOSES:
            raise APIError(400, f"'purpose' must be one of {sorted(PURPOSES)}", param="purpose", code="invalid_value")
        file_id = new_id("file")
        path = store.file_path(file_id)
        try:  # the bytes are kept only with their row: a refused or failed upload leaves nothing behind
            body = await _receive(file, path, purpose, state.tokenizer)
            body = {"id": file_id, **body}
            store.put_file(body)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return body

    @api.get("/v1/files")
    async def list_files(purpose: str | None = None, after: str | None = None, limit: int = 10000):
        files = [f for f in store.files() if purpose is None or f["purpose"] == purpose]
        return page(files, after, max(1, min(limit, 10000)))

    def _get(file_id: str) -> dict:
        body = store.file(file_id)
        if body is None:
            raise APIError(404, f"No such File object: {file_id}", param="file_id", code="file_not_found")
        return body

    @api.get("/v1/files/{file_id}")
    async def retrieve(file_id: str):
        return _get(file_id)

    @api.get("/v1/files/{file_id}/content")
    async def content(file_id: str):
        body = _get(file_id)
        return FileResponse(store.file_path(file_id), filename=body["filename"], media_type="application/octet-stream")

    @api.get("/v1/files/{file_id}/report")
    async def data_report(file_id: str):
        """lorakit's own: what the prepare stage finds in the file (lorakit.server.file_report)."""
        return await asyncio.to_thread(file_report.report, state, _get(file_id))

    @api.delete("/v1/files/{file_id}")
    async def delete(file_id: str):
        _get(file_id)
        store.delete_file(file_id)
        return {"id": file_id, "object": "file", "deleted": True}

    return api
