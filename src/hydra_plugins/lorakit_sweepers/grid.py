"""The grid sweeper (hydra/sweeper=grid, the default): Hydra's basic sweeper that first says how many jobs it will run,
refuses more than max_runs, runs the first job alone and estimates the time of the rest from it.

    python -m train -m +experiment=quickstart lora.r=8,16,32 train.learning_rate=1e-4,3e-4,1e-3   # 9 jobs
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from lorakit.sweeps.trials import check_size, estimate, job_seconds, pinned

log = logging.getLogger("lorakit.sweeps")


class GridSweeper(BasicSweeper):
    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None):
        super().__init__(max_batch_size=max_batch_size, params=params)

    def sweep(self, arguments: list[str]) -> Any:
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        # swept keys in sorted order: the same jobs get the same numbers (folders) whatever the order on the command line
        overrides = sorted(parser.parse_overrides([*self._parse_config(), *arguments]), key=lambda o: o.get_key_element())
        sweep_dir = Path(self.config.hydra.sweep.dir).resolve()
        jobs = pinned([list(job) for job in itertools.chain.from_iterable(self.split_arguments(overrides, None))],
                             sweep_dir)
        check_size(len(jobs), self.config.get("max_runs"), "the product of the swept values")
        done = sum(job_seconds(sweep_dir / str(i)) is not None for i in range(len(jobs)))
        log.info("sweep of %d job(s) in %s%s; the time estimate follows the first job", len(jobs), sweep_dir,
                 f" ({done} finished earlier: skipped unless their settings changed)" if done else "")
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        # The first job runs alone: it prepares the data the others reuse, it times the sweep, and a broken setting
        # shows after one job rather than after all of them.
        size = self.max_batch_size or len(jobs)
        batches = [jobs[:1], *(jobs[i:i + size] for i in range(1, len(jobs), size))]
        returns, start = [], 0
        for batch in batches:
            self.validate_batch_is_legal(batch)
            returns.append(self.launcher.launch(batch, initial_job_idx=start))
            todo = [job for i, job in enumerate(jobs[1:], 1) if job_seconds(sweep_dir / str(i)) is None]
            if start == 0 and todo and (first_s := job_seconds(sweep_dir / "0")) is not None:
                log.info("sweep: %s", estimate(jobs[0], first_s, todo))
            start += len(batch)
        return returns
