"""The shared driver of scripts/bench_dpo.py and scripts/bench_grpo.py: TRL's plain trainer (B0), B0 with some of
its config fields changed, and lorakit's, each run in its own process, timed from loading the model to the last
step, with its peak memory (CPU: resident; CUDA: torch's allocated)."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def compose_run(args, work: Path, train_file: Path, *overrides: str):
    """The run's config: the training file alone (nothing held out), args.steps steps of args.batch, seed 0."""
    from lorakit.config.compose import compose

    return compose(*overrides, f"model={args.model}", f"data.train_file={train_file}", "data.test_file=null",
                   "data.test_fraction=0", "data.val_fraction=0", f"+train.max_steps={args.steps}",
                   f"train.per_device_train_batch_size={args.batch}", "train.logging_steps=1",
                   "train.save_strategy=no", "seed=0", f"run_dir={work}")


def measure(args, make_cfg: Callable, examples: int, b0: Callable, lorakit: Callable,
            before_train: Callable | None = None) -> tuple:
    """Build this process's variant (args.run: "lorakit" or "b0" with args.fields) and train it:
    (trainer, seconds, peak bytes, before_train's result)."""
    import torch
    from omegaconf import open_dict

    from lorakit.config.compose import cuda_available
    from lorakit.models.loading import load_base

    cuda = cuda_available()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_cfg(args, Path(tmp))
        with open_dict(cfg):
            cfg.data.n = examples
        base = load_base(cfg.model)
        fields = dict(f.split("=", 1) for f in args.fields)
        fields = {k: json.loads(v) if v not in ("true", "false") else v == "true" for k, v in fields.items()}
        start = time.perf_counter()
        trainer = lorakit(cfg, base, cuda) if args.run == "lorakit" else b0(cfg, base, cuda, fields)
        extra = before_train(trainer) if before_train is not None else None
        trainer.train()
        seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return trainer, seconds, peak, extra


def run_variants(script: str, common: list[str], variant_specs: list[str], show: Callable[[str, dict], None]) -> dict:
    """B0, each --variant (name:field=value,...) and lorakit, one process each: {name: its RESULT}."""
    variants = [("b0", []), *[(v.split(":")[0], v.split(":", 1)[1].split(",")) for v in variant_specs],
                ("lorakit", [])]
    results = {}
    for name, fields in variants:
        run = "lorakit" if name == "lorakit" else "b0"
        out = subprocess.run([sys.executable, script, *common, "--run", run, "--fields", *fields], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        results[name] = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
        show(name, results[name])
    return results
