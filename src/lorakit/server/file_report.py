"""An upload's data report: what the prepare stage would say of the file as a job's training file (every finding
with its line, category and fix; where every record goes; token counts; the hosted-cost estimate), with the method
that trains on what the file holds. `GET /v1/files/{file_id}/report` (files_api) answers it; the fine-tuning page
shows it.

It is made when first asked for, in the server's process with its tokenizer (lorakit.data.examine, as the prepare
stage does: no validation split is held out, as for a job without a validation file), and kept beside the upload.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from lorakit import methods
from lorakit.config.compose import compose
from lorakit.core.paths import quoted
from lorakit.data.examine import examine
from lorakit.data.reading import DataError
from lorakit.data.splits import select
from lorakit.data.template import TemplateError
from lorakit.server.api_errors import APIError

_COMPOSING = threading.Lock()  # Hydra's compose keeps global state: one at a time


def method_for(kind: str | None) -> methods.Method:
    """The method that trains on what an upload holds ("chat", "pairs" or "tasks"; None: chat)."""
    kind = kind or "chat"
    return next(m for m in map(methods.get, methods.names()) if m.data == kind)


def build(state, meta: dict, path: Path) -> dict:
    """The report of one checked upload (`meta`: its file object), the server's path to it replaced by its name.

    Raises:
        APIError: 400 when the file cannot be read at all, or the model's chat template renders none of it.
    """
    method = method_for(meta.get("lorakit_kind"))
    overrides = [f"method={method.name}", *state.runner.model_overrides, f"data.train_file={quoted(path)}",
                 "data.test_file=null", "data.test_fraction=0", "data.val_fraction=0",
                 "data.num_proc=1"]  # tokenized in this thread: no worker processes forked from the server
    with _COMPOSING:
        cfg = compose(*overrides)
    tasks = method.data == "tasks"  # the grader's fields are checked when a job names its grader
    try:
        selection = select(cfg.data, cfg.seed, state.tokenizer, task_fields=set() if tasks else None)
        report = examine(cfg, selection, method.encode, state.tokenizer, state.eot_ids, tasks=tasks).report
    except (DataError, TemplateError) as err:
        raise APIError(400, str(err).replace(str(path), meta["filename"]), param="file_id",
                       code="invalid_file") from None
    text = json.dumps(report, ensure_ascii=False).replace(json.dumps(str(path))[1:-1], json.dumps(meta["filename"])[1:-1])
    return {"id": meta["id"], "object": "file.data_report", "filename": meta["filename"], "method": method.name,
            **json.loads(text)}


def report(state, meta: dict) -> dict:
    """The upload's report, made once and kept (written whole or not at all)."""
    if meta["purpose"] != "fine-tune":
        raise APIError(400, f"{meta['id']} has purpose {meta['purpose']!r}: a data report is made for the uploads of "
                       "purpose 'fine-tune'", param="file_id", code="invalid_purpose")
    kept = state.store.report_path(meta["id"])
    if kept.is_file():
        return json.loads(kept.read_text())
    made = build(state, meta, state.store.file_path(meta["id"]))
    partial = kept.with_suffix(f".{threading.get_ident()}.part")
    partial.write_text(json.dumps(made, ensure_ascii=False))
    partial.replace(kept)
    return made
