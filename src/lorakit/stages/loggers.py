"""Experiment loggers: none, or Weights & Biases (offline when no API key is configured).

One W&B run holds the config, the data summary, the training curves (through the Trainer's W&B callback,
which reuses the active run) and the evaluation metrics and predictions.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lorakit.config.compose import redact
from lorakit.sweeps.trials import SweepJob

log = logging.getLogger(__name__)


def _has_wandb_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


class RunLogger:
    """Start with `RunLogger(cfg, run_dir)`, log with `log_dict`, always end with `finish()`."""

    def __init__(self, cfg: DictConfig, run_dir: Path, sweep: SweepJob | None = None):
        """A sweep's jobs share a W&B group (the sweep folder's name) and log their swept values as config."""
        self.run = None
        if cfg.logger.type != "wandb":
            return
        import wandb

        mode = cfg.logger.mode or ("online" if _has_wandb_credentials() else "offline")
        os.environ["WANDB_MODE"] = mode  # the Trainer's callback reads it too
        self.run = wandb.init(
            project=cfg.logger.project, entity=cfg.logger.entity, name=cfg.logger.name or run_dir.name,
            tags=list(cfg.logger.tags), dir=str(run_dir), mode=mode,
            group=sweep.sweep_dir.name if sweep else None, job_type="sweep" if sweep else None,
            config={**redact(OmegaConf.to_container(cfg, resolve=True)), **({"swept": sweep.overrides} if sweep else {})},
        )
        log.info("W&B run %s (%s) in %s", self.run.id, mode, self.run.dir)

    @property
    def report_to(self) -> str:
        """The Trainer's `report_to` value."""
        return "wandb" if self.run else "none"

    def log_dict(self, prefix: str, values: dict) -> None:
        """Record flat numeric values under `prefix/` in the run summary."""
        if self.run:
            flat = {f"{prefix}/{k}": v for k, v in _flatten(values).items() if isinstance(v, (int, float))}
            self.run.summary.update(flat)

    def log_predictions(self, rows: list[dict]) -> None:
        if self.run:
            import wandb

            columns = ["line", "reference", "base", "tuned"]
            self.run.log({"eval/predictions": wandb.Table(columns=columns, data=[[r[c] for c in columns] for r in rows])})

    def log_comparison(self, result: dict, rows: list[dict]) -> None:
        """The comparison as W&B tables (compare/summary, compare/tests, compare/judge, compare/examples) and
        every value with its interval in the run summary."""
        if not self.run:
            return
        import wandb

        summary = [[c, m, s["value"], s["ci_low"], s["ci_high"]] for c, ms in result["candidates"].items()
                   for m, s in ms.items()]
        tests = [[t[k] for k in ("metric", "a", "b", "difference", "ci_low", "ci_high", "test", "p_value")]
                 for t in result["tests"]]
        names = list(result["outputs"])
        examples = [[f"{r.get('file')}:{r.get('line')}", result["references"][i], *(result["outputs"][n][i] for n in names)]
                    for i, r in enumerate(rows)]
        tables = {
            "compare/summary": wandb.Table(columns=["candidate", "metric", "value", "ci_low", "ci_high"], data=summary),
            "compare/tests": wandb.Table(columns=["metric", "a", "b", "difference", "ci_low", "ci_high", "test",
                                                  "p_value"], data=tests),
            "compare/examples": wandb.Table(columns=["example", "reference", *names], data=examples),
        }
        judge = result.get("judge") or {}
        if judge.get("pairwise"):
            tables["compare/judge"] = wandb.Table(
                columns=["b", "a", "win", "tie", "loss", "unparseable", "position_consistency", "win_rate", "p_value"],
                data=[[p["b"], p["a"], p["win"], p["tie"], p["loss"], p["unparseable"], p["position_consistency"],
                       p["win_rate"]["value"], p["p_value"]] for p in judge["pairwise"]])
        self.run.log(tables)
        self.log_dict("compare", result["candidates"])

    def finish(self, failed: bool = False) -> None:
        if self.run:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, f"{key}/"))
        else:
            out[key] = v
    return out
