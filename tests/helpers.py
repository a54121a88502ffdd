"""Helpers for the tests: compose the real config, write JSONL files, read the shipped example data."""

from __future__ import annotations

import json
from pathlib import Path

from lorakit.config import ROOT, compose

TOOL_PICKER = ROOT / "data" / "tool_picker"


def compose_cfg(*overrides: str, run_dir: Path | str = "/tmp/lorakit-unused"):
    """Compose conf/config.yaml with overrides, as `python -m train` would."""
    return compose(*overrides, f"run_dir={run_dir}")


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def tool_picker_rows(split: str, n: int) -> list[dict]:
    lines = (TOOL_PICKER / f"{split}.jsonl").read_text().splitlines()[:n]
    return [json.loads(line) for line in lines]
