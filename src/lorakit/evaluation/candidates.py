"""What can be compared: the base model, an adapter (a run folder, its adapter/, or a checkpoint), the base
model prompted with K training examples (`fewshot:K`), a model behind an OpenAI-compatible API
(`openai:<model id>`), or answers recorded earlier (`recorded:<file>`: lorakit.migrate's recorded.jsonl, an OpenAI
model's answers kept after it is gone). Every candidate is checked before any model is loaded.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import yaml

from lorakit.core.errors import UserError
from lorakit.core.runs import ADAPTER_CONFIG, RunFolder, find_adapter

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


def _safetensors_shapes(path: Path) -> dict[str, list[int]]:
    with path.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


def check_base(candidate: Candidate, model_name: str, model_config) -> None:
    """An adapter must have been trained on this base model: same model name where its run recorded one, and
    weight shapes that fit the base (hidden size, layer count).

    Raises:
        CandidateError: naming both models and the fix.
    """
    run = candidate.run
    if run is not None:
        trained_on = (yaml.safe_load(run.config.read_text()) or {}).get("model", {}).get("name_or_path")
        if trained_on and trained_on != model_name:
            raise CandidateError(
                f"candidate {candidate.name!r} was trained on {trained_on!r}, not on {model_name!r}; compare it "
                f"against its own base (model=... naming {trained_on!r}) or drop it from the candidates")
    weights = candidate.adapter / "adapter_model.safetensors"
    if not weights.is_file():
        raise CandidateError(f"candidate {candidate.name!r}: {weights} is missing; the adapter was not saved completely")
    hidden, layers = model_config.hidden_size, model_config.num_hidden_layers
    for key, shape in _safetensors_shapes(weights).items():
        layer = re.search(r"\.layers\.(\d+)\.", key)
        bad_layer = layer and int(layer.group(1)) >= layers
        bad_width = key.endswith("lora_A.weight") and re.search(r"(q|k|v|gate|up)_proj", key) and shape[-1] != hidden
        if bad_layer or bad_width:
            raise CandidateError(
                f"candidate {candidate.name!r} does not fit {model_name!r} ({key} has shape {shape}; the base has "
                f"{layers} layers of width {hidden}): it was trained on another base model; compare it against "
                "that model (model=...)")
