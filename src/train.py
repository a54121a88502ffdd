"""lorakit's command line: prepare, train and evaluate a LoRA adapter in one run.

Usage:
    python -m train +experiment=quickstart
    python -m train +experiment=quickstart data.train_file=my/train.jsonl data.test_file=my/test.jsonl
    python -m train +experiment=quickstart stages=[prepare]          # check the data only

The configuration lives in conf/ (Hydra); the pipeline in lorakit.stages.pipeline.
"""

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lorakit import methods
from lorakit.config.compose import register_resolvers
from lorakit.core import distributed
from lorakit.core.errors import UserError
from lorakit.core.paths import CONF_DIR
from lorakit.stages.pipeline import run
from lorakit.sweeps import gpus
from lorakit.sweeps.trials import SweepJob, objective

register_resolvers()
methods.load_plugins()  # methods registered from LORAKIT_METHODS or entry points: method=<name> composes


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Returns optimized_metric (default: the first evaluated metric) for a sweeper to rank or optimize."""
    hydra_cfg = HydraConfig.get()
    sweep = None
    if hydra_cfg.mode == RunMode.MULTIRUN:
        sweep = SweepJob(Path(hydra_cfg.sweep.dir).resolve(), dict(o.lstrip("+").split("=", 1)
                                                                 for o in hydra_cfg.overrides.task if "=" in o))
        if "Joblib" in str(hydra_cfg.launcher.get("_target_")):  # jobs side by side (hydra/launcher=gpus): one GPU each
            gpus.claim()
    try:
        run(cfg, sweep)
        # rank 0 alone reports (the others would read train_log.json while rank 0 writes it)
        return objective(Path(cfg.run_dir), cfg.get("optimized_metric")) if distributed.is_main() else None
    except UserError as err:  # the user's input is wrong: say what and how to fix it, no traceback
        logging.getLogger("lorakit").error("%s", err)
        if not sweep:
            sys.exit(2)
    except Exception:  # noqa: BLE001 - in a sweep one failed job must not stop the others
        if not sweep:
            raise
        logging.getLogger("lorakit").exception("this job failed")
    return None  # a sweep goes on; the job's log holds the error and the leaderboard lists it


if __name__ == "__main__":
    main()
