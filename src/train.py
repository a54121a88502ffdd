"""lorakit's command line: prepare, train and evaluate a LoRA adapter in one run.

Usage:
    python -m train +experiment=quickstart
    python -m train +experiment=quickstart data.train_file=my/train.jsonl data.test_file=my/test.jsonl
    python -m train +experiment=quickstart stages=[prepare]          # check the data only

The configuration lives in conf/ (Hydra); the pipeline in lorakit.pipeline.
"""

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from lorakit.config import CONF_DIR, ConfigError, register_resolvers
from lorakit.data.prepare import DataError, TemplateError
from lorakit.evaluation.candidates import CandidateError
from lorakit.hosted import HostedJobError
from lorakit.models import ModelNotFoundError
from lorakit.oom import OutOfMemory
from lorakit.pipeline import run

USER_ERRORS = (ConfigError, DataError, TemplateError, ModelNotFoundError, OutOfMemory, CandidateError, HostedJobError)
register_resolvers()


@hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict | None:
    try:
        return run(cfg)
    except USER_ERRORS as err:  # the user's input is wrong: say what and how to fix it, no traceback
        logging.getLogger("lorakit").error("%s", err)
        if HydraConfig.get().mode == RunMode.RUN:
            sys.exit(2)
        raise  # in a sweep, the launcher records the failed job and moves on


if __name__ == "__main__":
    main()
