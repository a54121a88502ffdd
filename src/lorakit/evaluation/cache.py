"""Generations cached per candidate: re-running a comparison, or adding a candidate or test examples to it,
generates only what is new.

The key of a candidate's file holds everything its answers depend on: the base model's weights (their path and
size), the adapter's weights (sha256), the few-shot examples, the chat template, the decoding settings and the
end-of-turn tokens. Inside, answers are keyed by the sha256 of the rendered prompt.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path


def _sha(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _file_sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _weights_id(model_path: str) -> str:
    """The base weights' identity: local files by name, size and modification time; a hub id by itself."""
    path = Path(model_path)
    if not path.is_dir():
        return model_path
    files = sorted(p for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".json"})
    return json.dumps([(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in files])


def candidate_key(*, model_path: str, quant: dict, adapter: Path | None, shots: list | None, template: str | None,
                  max_new_tokens: int, eot_ids: set[int], engine: str = "lorakit") -> str:
    parts = {
        "base": _weights_id(model_path), "quant": quant,
        "adapter": _file_sha(adapter / "adapter_model.safetensors") if adapter else None,
        "shots": shots, "template": template, "max_new_tokens": max_new_tokens, "eot": sorted(eot_ids),
        "decoding": "greedy", **({"engine": engine} if engine != "lorakit" else {}),  # lorakit's: keys as before
    }
    return _sha(json.dumps(parts, sort_keys=True, default=str))[:24]


class GenerationCache:
    """{cache_dir}/generations/{key}.json: {prompt sha256: answer}."""

    def __init__(self, cache_dir: Path | str | None):
        self.root = Path(cache_dir) / "generations" if cache_dir else None

    def lookup(self, key: str, prompts: list[str]) -> tuple[dict[str, str], list[int]]:
        """(answers found, indices of the prompts still to generate)."""
        stored = self._load(key)
        missing = [i for i, p in enumerate(prompts) if _sha(p) not in stored]
        return stored, missing

    def complete(self, key: str, prompts: list[str], stored: dict[str, str], new: dict[int, str]) -> list[str]:
        """Add the newly generated answers to those lookup() found, save them, and return every prompt's answer."""
        stored.update({_sha(prompts[i]): text for i, text in new.items()})
        if self.root is not None and new:
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = self.root / f".{key}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(stored, ensure_ascii=False))
            tmp.replace(self.root / f"{key}.json")  # atomic: a crash never leaves half a file
        return [stored[_sha(p)] for p in prompts]

    def _load(self, key: str) -> dict[str, str]:
        if self.root is None or not (self.root / f"{key}.json").is_file():
            return {}
        return json.loads((self.root / f"{key}.json").read_text())
