"""Bayesian search (hydra/sweeper=optuna, set by the conf/hparams_search configs) on Optuna's ask/tell interface with
a SQLite study in the sweep folder, so a search that was stopped continues where it was when the command is re-run.

    python -m train -m +experiment=quickstart +hparams_search=lora_optuna

hydra.sweeper.params holds the search space in Hydra's sweep syntax:
    interval(1e-5, 1e-3)               a float, uniform          tag(log, interval(1e-5, 1e-3))   log-uniform
    tag(int, interval(4, 64))          an integer                tag(log, int, interval(4, 64))   log-uniform integer
    choice(8, 16, 32) / range(4, 16)   one of these values
Each trial is one job (folder <sweep>/<trial number>); the job returns optimized_metric; a failed job is a failed
trial and the search goes on. On a re-run, trials that were interrupted run again in their own folders (resuming
from their checkpoints) and new trials are asked until n_trials have ended.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lorakit.sweeps.trials import check_size, direction, estimate, job_seconds, pinned

log = logging.getLogger("lorakit.sweeps")


def distribution(override: Override):
    """An Optuna distribution for a sweep override (choice, range, interval with tags log / int)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if override.is_choice_sweep() or override.is_range_sweep():
        return CategoricalDistribution(list(override.sweep_iterator()))
    if override.is_interval_sweep():
        value = override.value()
        log_scale = "log" in value.tags
        if "int" in value.tags:
            return IntDistribution(int(value.start), int(value.end), log=log_scale)
        return FloatDistribution(value.start, value.end, log=log_scale)
    raise ValueError(f"{override.input_line}: not a search range; use choice(...), range(...) or interval(...)")


class OptunaSweeper(Sweeper):
    def __init__(self, params: dict[str, str] | None = None, n_trials: int = 20, direction: str | None = None,
                 n_jobs: int = 1, storage: str | None = None, study_name: str | None = None, sampler: Any = None):
        self.params = dict(params or {})
        self.n_trials, self.direction, self.n_jobs = int(n_trials), direction, max(int(n_jobs), 1)
        self.storage, self.study_name, self.sampler = storage, study_name, sampler

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context,
                                                                task_function=task_function)

    def _space(self, arguments: list[str]) -> tuple[dict, list[str]]:
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*(f"{k}={v}" for k, v in self.params.items()), *arguments])
        space = {o.get_key_element(): distribution(o) for o in overrides if o.is_sweep_override()}
        fixed = [o.input_line for o in overrides if not o.is_sweep_override()]
        if not space:
            raise SystemExit("the Optuna sweeper has no search space: set hydra.sweeper.params (see conf/hparams_search)")
        return space, fixed

    def _run(self, study, trials: list, fixed: list[str]) -> list:
        from optuna.trial import TrialState

        jobs = pinned([[*fixed, *(f"{k}={v}" for k, v in t.params.items())] for t in trials], self.sweep_dir)
        self.validate_batch_is_legal(jobs)
        results = self.launcher.launch(jobs, initial_job_idx=trials[0].number)
        for trial, result in zip(trials, results, strict=True):
            try:
                value = result.return_value
            except Exception as err:  # noqa: BLE001 - a job that raised is a failed trial, not a failed search
                log.error("trial %d failed: %s", trial.number, err)
                value = None
            if isinstance(value, (int, float)):
                study.tell(trial.number, float(value))
            else:
                study.tell(trial.number, state=TrialState.FAIL)
        return results

    def sweep(self, arguments: list[str]) -> Any:
        import optuna
        from optuna.trial import TrialState

        space, fixed = self._space(arguments)
        sweep_dir = self.sweep_dir = Path(self.config.hydra.sweep.dir).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        check_size(self.n_trials, self.config.get("max_runs"), "hydra.sweeper.n_trials")
        study = optuna.create_study(storage=self.storage or f"sqlite:///{sweep_dir / 'optuna.db'}",
                                    study_name=self.study_name or sweep_dir.name,
                                    direction=direction(self.config.get("optimized_metric"), self.direction),
                                    load_if_exists=True)
        # a seeded sampler starting over would ask the same values as before: its seed moves on with the study
        study.sampler = self._sampler(len(study.get_trials(deepcopy=False)))
        interrupted = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        ended = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)))
        log.info("Optuna search of %d trial(s) in %s over %s%s", self.n_trials, sweep_dir, ", ".join(space),
                 f" ({ended} ended and {len(interrupted)} interrupted earlier: continuing)" if ended + len(interrupted)
                 else "")
        returns = [self._run(study, [trial], fixed) for trial in interrupted]  # in their own folders: they resume
        ended += len(interrupted)
        while ended < self.n_trials:
            trials = [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - ended))]
            returns.append(self._run(study, trials, fixed))
            ended += len(trials)
            first_s = job_seconds(sweep_dir / str(trials[0].number))
            if ended == len(trials) and first_s is not None and ended < self.n_trials:
                log.info("sweep: %s", estimate([], first_s, [[]] * (self.n_trials - ended)))
        self._report(study, sweep_dir)
        return returns

    def _sampler(self, trials_before: int):
        import optuna

        if self.sampler is None:
            return optuna.samplers.TPESampler()
        spec = OmegaConf.create(self.sampler) if isinstance(self.sampler, dict) else self.sampler
        if spec.get("seed") is not None:
            return instantiate(spec, seed=int(spec.seed) + trials_before)
        return instantiate(spec)

    def _report(self, study, sweep_dir: Path) -> None:
        try:
            best = study.best_trial
        except ValueError:
            log.error("no trial of %s succeeded; see the jobs' logs in %s", study.study_name, sweep_dir)
            return
        result = {"name": "optuna", "study": study.study_name, "best_trial": best.number, "best_value": best.value,
                  "best_params": best.params, "folder": str(sweep_dir / str(best.number))}
        (sweep_dir / "optimization_results.yaml").write_text(yaml.safe_dump(result, sort_keys=False))
        log.info("best trial %d: %s = %s with %s (%s)", best.number,
                 self.config.get("optimized_metric") or "the first evaluated metric",
                 best.value, best.params, result["folder"])

