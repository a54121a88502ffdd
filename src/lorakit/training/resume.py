"""Runs that survive a crash: the trainer keeps checkpoints (adapter, optimizer, scheduler, RNG, step) in
run_dir/checkpoints, and the same command in the same run folder continues from the last one.

    python -m train +experiment=quickstart hydra.run.dir=outputs/my-run     # killed at step 120 of 300
    python -m train +experiment=quickstart hydra.run.dir=outputs/my-run     # trains steps 121..300 only

resume=auto (the default): continue from the last checkpoint; a run whose adapter was saved is not trained again.
resume=never: start over (the old checkpoints and adapter are removed). A folder that holds a run of another
training configuration is refused rather than continued with settings it was not started with.

A checkpoint is written into checkpoints/.staging/ and renamed into place once whole (AtomicCheckpoints), so a
crash mid-write leaves no half checkpoint that looks complete; before resuming, the newest checkpoint's files are
checked (JSON parses, safetensors and torch zip files are whole) and a damaged one is set aside as
broken-checkpoint-N, the run continuing from the older one that save_total_limit=2 keeps.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
import zipfile
from pathlib import Path

import yaml

from lorakit.core.errors import ConfigError
from lorakit.core.runs import RunFolder, holds_adapter

log = logging.getLogger(__name__)
# what a resumed run must share with the run it continues (the rest, e.g. stages, eval or logger, may change)
TRAINING_KEYS = ("data", "train", "lora", "quant", "model", "seed", "backend")
MODES = ("auto", "never")


STAGING = ".staging"  # under checkpoints/: where a checkpoint is written before it is renamed into place


def _safetensors_problem(path: Path) -> str | None:
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{path.name}: truncated ({size} bytes)"
        (n,) = struct.unpack("<Q", head)
        try:
            header = json.loads(f.read(n)) if n <= size else None
        except (ValueError, UnicodeDecodeError):
            header = None
    if not isinstance(header, dict):
        return f"{path.name}: its header is damaged"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    return None if size == 8 + n + end else f"{path.name}: {size:,} bytes where its header describes {8 + n + end:,}"


def damage(checkpoint: Path) -> str | None:
    """What is wrong with a checkpoint's files, or None when each one is whole: JSON files parse, safetensors files
    hold every tensor their header lists, torch files (optimizer, scheduler, RNG) are whole zip archives."""
    if not (checkpoint / "trainer_state.json").is_file():
        return "no trainer_state.json"
    for path in sorted(checkpoint.iterdir()):
        try:
            if path.suffix == ".json":
                json.loads(path.read_text())
            elif path.suffix == ".safetensors" and (problem := _safetensors_problem(path)):
                return problem
            elif path.suffix in (".pt", ".pth", ".bin"):
                with zipfile.ZipFile(path) as archive:
                    if (bad := archive.testzip()) is not None:
                        return f"{path.name}: {bad} fails its checksum"
        except (ValueError, UnicodeDecodeError, zipfile.BadZipFile, OSError, EOFError) as err:
            return f"{path.name}: {type(err).__name__}: {err}"
    return None


def _checkpoints(folder: RunFolder) -> list[Path]:
    """The run's checkpoints, newest first."""
    if not folder.checkpoints.is_dir():
        return []
    found = [p for p in folder.checkpoints.iterdir() if re.fullmatch(r"checkpoint-\d+", p.name)]
    return sorted(found, key=lambda p: -int(p.name.split("-")[1]))


def last_checkpoint(folder: RunFolder) -> Path | None:
    """The newest checkpoint whose files are whole, if any."""
    return next((p for p in _checkpoints(folder) if damage(p) is None), None)


def set_aside_damaged(folder: RunFolder) -> None:
    """Rename the damaged checkpoints newer than the last whole one to broken-checkpoint-N (kept for a look, out of
    the Trainer's way: its rotation would otherwise delete the new ones), saying what is wrong with each."""
    for path in _checkpoints(folder):
        problem = damage(path)
        if problem is None:
            return
        target = path.with_name(f"broken-{path.name}")
        shutil.rmtree(target, ignore_errors=True)
        path.rename(target)
        log.warning("%s is damaged (%s): set aside as %s; continuing from the checkpoint before it", path, problem,
                    target.name)


class AtomicCheckpoints:
    """Trainer mixin: a checkpoint is written whole into checkpoints/.staging/ and then renamed into place, so a
    checkpoint-N folder is never a half-written one; old ones are rotated (save_total_limit) after the rename."""

    def _save_checkpoint(self, model, trial):
        from transformers.trainer_utils import rotate_checkpoints
        real = self._get_output_dir(trial=trial)
        staging = os.path.join(real, STAGING)
        name = f"checkpoint-{self.state.global_step}"
        if self.args.should_save:
            shutil.rmtree(os.path.join(staging, name), ignore_errors=True)  # left by a crash mid-write
        self._get_output_dir = lambda trial=None: staging  # the Trainer writes (and rotates) there
        try:
            super()._save_checkpoint(model, trial)
        finally:
            del self._get_output_dir
        self.accelerator.wait_for_everyone()  # every process wrote its part (RNG states)
        if self.args.should_save:
            target = os.path.join(real, name)
            shutil.rmtree(target, ignore_errors=True)
            os.rename(os.path.join(staging, name), target)
            rotate_checkpoints(output_dir=real, save_total_limit=self.args.save_total_limit,
                               best_model_checkpoint=self.state.best_model_checkpoint, use_mtime=False)
        self.accelerator.wait_for_everyone()


def finished(folder: RunFolder) -> bool:
    """The train stage ended: its adapter and loss history were saved."""
    return holds_adapter(folder.adapter) and folder.train_log.is_file()


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
    set_aside_damaged(folder)
    checkpoint = last_checkpoint(folder)
    if checkpoint is None and any(folder.checkpoints.glob("broken-checkpoint-*")):
        log.warning("no whole checkpoint is left in %s: training starts over", folder.checkpoints)
    if checkpoint is not None:
        log.info("resuming from %s (resume=never starts over)", checkpoint)
    return False, checkpoint
