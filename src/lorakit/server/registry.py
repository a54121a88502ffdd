"""The models one server answers for: its base model and every adapter of that base, each by an id.

Adapters come from `--adapters` (run folders, adapter folders, checkpoints, or folders holding runs; named by
their run folder, or `name=path`), from `--aliases` (a folder lorakit.migrate wrote: each migrated job's old `ft:`
id served from the adapter its run.sh trained) and from fine-tuning jobs as they succeed
(`ft:<base>:<suffix>:<job id>`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from lorakit.core.runs import ADAPTER_CONFIG, find_adapter
from lorakit.models.adapters import AdapterError, check_fits
from lorakit.server.api_errors import APIError

log = logging.getLogger("lorakit.server")


@dataclass(frozen=True)
class Served:
    id: str
    adapter: Path | None  # None: the base model
    internal: str | None  # the PEFT adapter name (PEFT names cannot hold dots or slashes)
    created: int


def find_adapters(spec: str) -> list[tuple[str, Path]]:
    """(id, adapter folder) for one --adapters value: `name=path`, a run/adapter/checkpoint folder, or a folder
    whose runs (up to 3 levels down) all count."""
    name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
    folder = Path(path).expanduser()
    direct = find_adapter(folder)
    if direct is not None:
        return [(name or _run_name(folder), direct)]
    if name:
        raise AdapterError(f"--adapters {spec}: {folder} holds no adapter (no {ADAPTER_CONFIG})")
    found = sorted({p.parent for depth in ("*", "*/*", "*/*/*") for p in folder.glob(f"{depth}/adapter/{ADAPTER_CONFIG}")})
    if not found:
        raise AdapterError(f"--adapters {spec}: no adapter in {folder} (a run folder, its adapter/, a checkpoint, "
                             "or a folder holding runs)")
    return [(_run_name(p.parent), p) for p in found]


def find_aliases(folder: Path) -> list[tuple[str, Path]]:
    """(old ft: id, local adapter) for each job of a lorakit.migrate folder whose run.sh has trained it; the jobs
    not trained yet are logged with the command that trains them."""
    found = []
    for record in sorted(Path(folder).glob("*/job.json")):
        model = json.loads(record.read_text()).get("job", {}).get("fine_tuned_model")
        if not model:
            continue
        adapter = find_adapter(record.parent / "local")
        if adapter is None:
            log.warning("--aliases: %s is not served: its local model is not trained yet (bash %s)", model,
                        record.parent / "run.sh")
        else:
            found.append((model, adapter))
    if not any(Path(folder).glob("*/job.json")):
        raise AdapterError(f"--aliases {folder}: no job.json under it; give the folder python -m lorakit.migrate "
                             "--out wrote")
    return found


def _run_name(path: Path) -> str:
    """A run folder as the user names it: its path from the working folder, without a trailing /adapter."""
    path = path.resolve()
    if path.name == "adapter":
        path = path.parent
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class Registry:
    def __init__(self, base_id: str, aliases: list[str], model_name: str, model_config):
        self.base = Served(base_id, None, None, int(time.time()))
        self.aliases = {a for a in aliases if a} - {base_id}
        self.model_name, self.model_config = model_name, model_config
        self._served: dict[str, Served] = {}
        self._lock = threading.Lock()

    def add(self, model_id: str, adapter: Path, created: int | None = None) -> Served:
        """Serve an adapter of this base under model_id.

        Raises:
            AdapterError: the adapter was trained on another base model.
        """

        check_fits(Path(adapter), self.model_name, self.model_config, name=f"model {model_id!r}",
                   fix="serve it with the base it was trained on (--model)")
        with self._lock:
            if model_id in self._served or model_id == self.base.id:
                raise AdapterError(f"model id {model_id!r} is given twice; name one of them: --adapters name=path")
            served = Served(model_id, Path(adapter), f"a{len(self._served)}", created or int(time.time()))
            self._served[model_id] = served
        return served

    def get(self, model_id) -> Served:
        if not isinstance(model_id, str) or not model_id:
            raise APIError(400, "you must provide a model parameter", param="model", code="missing_model")
        if model_id == self.base.id or model_id in self.aliases:
            return self.base
        with self._lock:
            served = self._served.get(model_id)
        if served is None:
            raise APIError(404, f"The model `{model_id}` does not exist or you do not have access to it. This server "
                           f"has: {', '.join(m.id for m in self.all())}", param="model", code="model_not_found")
        return served

    def remove(self, model_id) -> Served:
        """Stop serving a fine-tuned model (or an adapter given at start); the base model cannot be removed.

        Raises:
            APIError: 404 for a model not served, 400 for the base model or an alias of it.
        """
        served = self.get(model_id)
        if served is self.base:
            raise APIError(400, f"{model_id} is the base model of this server and cannot be deleted; delete a "
                           "fine-tuned model (ft:...)", param="model", code="invalid_model")
        with self._lock:
            self._served.pop(served.id, None)
        return served

    def all(self) -> list[Served]:
        with self._lock:
            return [self.base, *self._served.values()]

    def objects(self) -> list[dict]:
        return [self.object(m) for m in self.all()]

    def object(self, m: Served) -> dict:
        out = {"id": m.id, "object": "model", "created": m.created, "owned_by": "lorakit"}
        if m.adapter is not None:
            out["parent"] = self.base.id
            out["root"] = self.base.id
        return out
