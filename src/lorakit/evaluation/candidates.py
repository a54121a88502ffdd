"""What can be compared: the base model, an adapter (a run folder, its adapter/, or a checkpoint), the base
model prompted with K training examples (`fewshot:K`), a model behind an OpenAI-compatible API
(`openai:<model id>`), or answers recorded earlier (`recorded:<file>`: lorakit.migrate's recorded.jsonl, an OpenAI
model's answers kept after it is gone). Every candidate is checked before any model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from lorakit.core.errors import UserError
from lorakit.core.runs import ADAPTER_CONFIG, RunFolder, find_adapter
from lorakit.models.adapters import AdapterError, check_fits

API = "openai:"  # a model behind an OpenAI-compatible API: openai:<model id> (candidates and judges)
RECORDED = "recorded:"  # answers read from a file: recorded:<path to recorded.jsonl>
FIX = ("give base, fewshot:K, openai:<model id>, recorded:<file>, a run folder (outputs/...), its adapter/ folder "
       "or a checkpoint inside it")


class CandidateError(UserError, ValueError):
    """A candidate that cannot be evaluated; the message names it and the fix."""


@dataclass(frozen=True)
class Candidate:
    name: str  # as the user wrote it; the report's label
    kind: str  # "base", "adapter", "fewshot", "api" or "recorded"
    adapter: Path | None = None
    shots: int = 0
    model: str | None = None  # kind "api": the model id at the endpoint; kind "recorded": the file

    @property
    def run(self) -> RunFolder | None:
        """The run folder the adapter belongs to (for its test split, config and loss curves), if any."""
        if self.adapter is None:
            return None
        for folder in (self.adapter.parent, self.adapter.parent.parent):
            if RunFolder(folder).config.is_file():
                return RunFolder(folder)
        return None


def parse(spec: str) -> Candidate:
    spec = str(spec).strip()
    if spec == "base":
        return Candidate("base", "base")
    if spec.startswith("fewshot:"):
        k = spec.removeprefix("fewshot:")
        if not k.isdigit() or int(k) < 1:
            raise CandidateError(f"candidate {spec!r}: K in fewshot:K must be a positive integer, e.g. fewshot:4")
        return Candidate(spec, "fewshot", shots=int(k))
    if spec.startswith(API):
        if not spec.removeprefix(API):
            raise CandidateError(f"candidate {spec!r}: name the model after openai:, e.g. openai:gpt-4o-mini")
        return Candidate(spec, "api", model=spec.removeprefix(API))
    if spec.startswith(RECORDED):
        recorded = Path(spec.removeprefix(RECORDED)).expanduser()
        if not recorded.is_file():
            raise CandidateError(f"candidate {spec!r}: {recorded} is not a file; give recorded:<path to a "
                                 "recorded.jsonl> (python -m lorakit.migrate writes one per job)")
        return Candidate(spec, "recorded", model=str(recorded))
    path = Path(spec).expanduser()
    adapter = find_adapter(path)
    if adapter is None:
        what = "does not exist" if not path.exists() else f"holds no adapter (no {ADAPTER_CONFIG})"
        raise CandidateError(f"candidate {spec!r}: {path} {what}; {FIX}")
    return Candidate(spec, "adapter", adapter=adapter.resolve())


def check_base(candidate: Candidate, model_name: str, model_config) -> None:
    """An adapter candidate must have been trained on this base model (lorakit.models.adapters.check_fits).

    Raises:
        CandidateError: naming both models and the fix.
    """
    run = candidate.run
    trained_on = ((yaml.safe_load(run.config.read_text()) or {}).get("model", {}).get("name_or_path")
                  if run is not None else None)
    try:
        check_fits(candidate.adapter, model_name, model_config, name=f"candidate {candidate.name!r}",
                   trained_on=trained_on, fix=f"compare it against its own base (model=... naming {trained_on!r}) "
                   "or drop it from the candidates" if trained_on else "compare it against that model (model=...)")
    except AdapterError as err:
        raise CandidateError(str(err)) from None
