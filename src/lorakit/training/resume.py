"""Runs that survive a crash: the trainer keeps checkpoints (adapter, optimizer, scheduler, RNG, step) in
run_dir/checkpoints, and the same command in the same run folder continues from the last one.

    python -m train +experiment=quickstart hydra.run.dir=outputs/my-run     # killed at step 120 of 300
    python -m train +experiment=quickstart hydra.run.dir=outputs/my-run     # trains steps 121..300 only

resume=auto (the default): continue from the last checkpoint; a run whose adapter was saved is not trained again.
resume=never: start over (the old checkpoints and adapter are removed). A folder that holds a run of another
training configuration is refused rather than continued with settings it was not started with.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import yaml

from lorakit.config import ConfigError
from lorakit.runs import RunFolder

log = logging.getLogger(__name__)
# what a resumed run must share with the run it continues (the rest, e.g. stages, eval or logger, may change)
TRAINING_KEYS = ("data", "train", "lora", "quant", "model", "seed", "backend")
MODES = ("auto", "never")


def last_checkpoint(folder: RunFolder) -> Path | None:
    """The newest complete checkpoint (its trainer state written last), if any."""
    if not folder.checkpoints.is_dir():
        return None
    done = [p for p in folder.checkpoints.iterdir() if re.fullmatch(r"checkpoint-\d+", p.name)
            and (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def finished(folder: RunFolder) -> bool:
    """The train stage ended: its adapter and loss history were saved."""
    return (folder.adapter / "adapter_config.json").is_file() and folder.train_log.is_file()


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new)) for d in _differences(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def check(run_dir: Path, resolved: dict, mode: str, files: dict[str, str | None] | None = None) -> None:
    """Before config.yaml is overwritten: a folder with checkpoints or a trained adapter may only be continued by
    the same training configuration, on data files with the same contents (`files`: their sha256 now).

    Raises:
        ConfigError: naming the settings that differ and the two ways out.
    """
    if mode not in MODES:
        raise ConfigError(f"resume={mode!r}: use resume=auto (continue a run in the same folder) or resume=never")
    folder = RunFolder(run_dir)
    if mode == "never" or not folder.config.is_file() or not (last_checkpoint(folder) or finished(folder)):
        return
    old = yaml.safe_load(folder.config.read_text()) or {}
    changed = _differences({k: old.get(k) for k in TRAINING_KEYS}, {k: resolved.get(k) for k in TRAINING_KEYS})
    before = (json.loads(folder.identity.read_text()) if folder.identity.is_file() else {}).get("files") or {}
    changed += [f"data.{k}: the file's contents changed since this run started" for k, sha in (files or {}).items()
                if k in before and before[k] != sha]
    if changed:
        raise ConfigError(f"{run_dir} holds a run trained with other settings, so it cannot be continued:\n  - "
                          + "\n  - ".join(changed[:20]) + "\nuse another hydra.run.dir for the new settings, or "
                          "resume=never to train this folder over from the start")


def plan(run_dir: Path, mode: str) -> tuple[bool, Path | None]:
    """(already trained: skip training, checkpoint to continue from or None). resume=never clears the folder's
    checkpoints and adapter first."""
    folder = RunFolder(run_dir)
    if mode == "never":
        for path in (folder.checkpoints, folder.adapter):
            if path.is_dir():
                shutil.rmtree(path)
        return False, None
    if finished(folder):
        log.info("%s was trained already (adapter saved): not training it again (resume=never starts over)",
                 folder.adapter)
        return True, None
    checkpoint = last_checkpoint(folder)
    if checkpoint is not None:
        log.info("resuming from %s (resume=never starts over)", checkpoint)
    return False, checkpoint
