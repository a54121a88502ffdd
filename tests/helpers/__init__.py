"""Helpers for the tests: compose the real config, write JSONL files, read the shipped example data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lorakit.config.compose import compose
from lorakit.core.paths import ROOT
from lorakit.models.loading import end_of_turn_ids

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


def pair_rows(n: int, *, offset: int = 0) -> list[dict]:
    """n tool_picker prompts as OpenAI preference pairs: the reference preferred over the same call to another tool."""
    pairs = []
    for row in tool_picker_rows("train", offset + n)[offset:]:
        reply = json.loads(row["messages"][-1]["content"])
        wrong = json.dumps({**reply, "tool": "search" if reply.get("tool") != "search" else "weather"})
        pairs.append({"input": {"messages": row["messages"][:-1]}, "preferred_output": [row["messages"][-1]],
                      "non_preferred_output": [{"role": "assistant", "content": wrong}]})
    return pairs


def tiny_trainer(run_dir: Path, tiny_dir: str, n_rows: int, *overrides: str, cuda: bool = False):
    """Prepare the first n_rows tool_picker examples in run_dir and build lorakit's trainer for the tiny model.

    overrides come first, so an experiment among them is composed before model=tiny-llama. Returns (trainer,
    tokenizer); nothing is trained yet.
    """
    from lorakit.models.loading import BaseModel, load_tokenizer
    from lorakit.stages import prepare
    from lorakit.training.trainer import build_trainer

    data = write_jsonl(run_dir / "train.jsonl", tool_picker_rows("train", n_rows))
    cfg = compose_cfg(*overrides, "model=tiny-llama", f"data.train_file={data}", "data.test_file=null", run_dir=run_dir)
    tokenizer = load_tokenizer(tiny_dir)
    prepare.run(cfg, tokenizer, end_of_turn_ids(tokenizer), run_dir)
    base = BaseModel("tiny-llama", tiny_dir, tokenizer, end_of_turn_ids(tokenizer))
    return build_trainer(cfg, run_dir, base, cuda=cuda, report_to="none"), tokenizer


def python_m(module: str, *args: str, cwd: Path, unset: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`python -m module args...` in cwd, offline, its output captured; `unset`: environment variables it runs
    without."""
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


def train_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m train args...`, with no WANDB_MODE and no key, so that lorakit itself must choose W&B's offline
    mode."""
    return python_m("train", *args, cwd=cwd, unset=("WANDB_MODE", "WANDB_API_KEY"))
