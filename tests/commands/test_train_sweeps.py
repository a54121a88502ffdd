"""Sweeps through the real command line on the tiny model: a grid that ranks its jobs, survives a failing job and
trains nothing when run again; an Optuna search that reports its best trial and continues when run again; a DPO
sweep through submitit's processes."""

from __future__ import annotations

import csv
import json
import re

import pytest
import yaml

from helpers import pair_rows, tool_picker_rows, train_cli, write_jsonl
from lorakit.sweeps.trials import estimate, identity, metrics_of, sweep_name

GRID = ["model=tiny-llama", "data.train_file=train.jsonl", "train.num_train_epochs=1", "eval.max_new_tokens=4",
        "optimized_metric=validation_loss", "lora.r=4,8", "train.learning_rate=1e-3,3e-3"]


def _adapters(sweep) -> dict[str, float]:
    return {p.parent.parent.name: p.stat().st_mtime_ns for p in sweep.glob("*/adapter/adapter_model.safetensors")
            if not p.parent.parent.is_symlink()}  # not best/


def test_a_grid_ranks_its_jobs_survives_a_failure_and_trains_nothing_when_run_again(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", tool_picker_rows("train", 40))
    sweep = tmp_path / "outputs" / "multirun" / sweep_name(GRID)  # the same command finds the same folder
    (sweep / "2").mkdir(parents=True)
    (sweep / "2" / "data").write_text("a file where job 2 writes its data folder: a forced failure")

    out = train_cli("-m", *GRID, "logger=wandb", cwd=tmp_path)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert "sweep of 4 job(s)" in log and "the 3 job(s) still to run should take about" in log
    rows = list(csv.DictReader((sweep / "sweep_summary.csv").open()))
    assert [(r["lora.r"], r["train.learning_rate"]) for r in rows if r["status"] == "failed"] == [("8", "0.001")]
    assert "NotADirectoryError" in rows[-1]["error"] and rows[-1]["rank"] == ""
    done = [r for r in rows if r["status"] == "succeeded"]
    losses = {r["folder"]: json.loads((tmp_path / r["folder"] / "train_log.json").read_text())[-2]["eval_loss"]
              for r in done}
    assert [float(r["validation_loss"]) for r in done] == sorted(losses.values())  # by the loss each run wrote
    assert [r["rank"] for r in done] == ["1", "2", "3"]
    assert (sweep / "best").resolve() == (tmp_path / done[0]["folder"]).resolve()
    # the data was prepared once and hard-linked into each job
    [store] = [p for p in (sweep / "prepared").iterdir() if p.is_dir()]
    shared = store / "data" / "train.jsonl"
    assert all((sweep / n / "data" / "train.jsonl").stat().st_ino == shared.stat().st_ino for n in ("0", "1", "3"))
    # one W&B group per sweep, the swept values in each run's config
    for n in ("0", "1", "3"):
        [records] = (sweep / n / "wandb").glob("offline-run-*/*.wandb")
        assert sweep.name.encode() in records.read_bytes() and b"swept" in records.read_bytes()

    before = _adapters(sweep)
    out = train_cli("-m", *reversed(GRID), cwd=tmp_path)  # the same sweep, written in another order: nothing is trained
    log = out.stdout + out.stderr
    assert out.returncode == 0 and "3 finished earlier" in log, log[-3000:]
    assert log.count("ran to its end earlier with the same config") == 3 and "trained 8 steps" not in log
    assert _adapters(sweep) == before and len(list((tmp_path / "outputs" / "multirun").iterdir())) == 1
    assert list(csv.DictReader((sweep / "sweep_summary.csv").open())) == rows  # job 2 failed again, the same way

    out = train_cli("-m", *GRID, "max_runs=3", cwd=tmp_path)
    assert out.returncode != 0 and "would run 4 jobs" in out.stderr and "max_runs=4" in out.stderr


SEARCH = ["model=tiny-llama", "data.train_file=train.jsonl", "train.num_train_epochs=1", "stages=[prepare,train]",
          "+hparams_search=lora_optuna", "optimized_metric=validation_loss"]


def test_an_optuna_search_reports_its_best_trial_and_continues_when_run_again(tmp_path):
    import optuna
    from optuna.trial import TrialState

    write_jsonl(tmp_path / "train.jsonl", tool_picker_rows("train", 40))
    out = train_cli(*SEARCH, "hydra.sweeper.n_trials=2", cwd=tmp_path)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    [sweep] = (tmp_path / "outputs" / "multirun").iterdir()
    study = optuna.load_study(study_name=sweep.name, storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert study.direction == optuna.study.StudyDirection.MINIMIZE  # a loss is minimized without being told
    values = {t.number: t.value for t in study.trials}
    assert len(values) == 2 and all(t.state == TrialState.COMPLETE for t in study.trials)
    for number, value in values.items():  # each trial's value is the loss its own run wrote
        assert value == metrics_of(sweep / str(number))["validation_loss"]
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert best["best_value"] == min(values.values()) and values[best["best_trial"]] == best["best_value"]
    assert f"best trial {best['best_trial']}" in out.stdout + out.stderr

    # a search killed during a trial leaves it running in the study; the same command finishes it in its own
    # folder, then asks for new trials up to the new total, and does not train the ended ones again
    interrupted = study.ask(study.trials[0].distributions)
    before = _adapters(sweep)
    out = train_cli(*SEARCH, "hydra.sweeper.n_trials=4", cwd=tmp_path)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-3000:]
    assert "2 ended and 1 interrupted earlier: continuing" in log and log.count("trained 8 steps") == 2
    study = optuna.load_study(study_name=sweep.name, storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    ran = yaml.safe_load((sweep / str(interrupted.number) / "config.yaml").read_text())
    assert ran["train"]["learning_rate"] == pytest.approx(interrupted.params["train.learning_rate"])
    after = _adapters(sweep)
    assert {k: after[k] for k in before} == before and set(after) == {"0", "1", "2", "3"}


def test_sweep_names_job_identities_and_search_spaces(tmp_path):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from hydra_plugins.lorakit_sweepers.bayes import distribution

    name = sweep_name(["+experiment=quickstart", "lora.r=8,16", "train.learning_rate=1e-4,1e-3"])
    assert re.fullmatch(r"quickstart-[0-9a-f]{8}", name)
    assert sweep_name(["train.learning_rate=1e-4,1e-3", "+experiment=quickstart", "lora.r=8,16", "max_runs=9",
                              "hydra.sweeper.n_trials=3", "logger=wandb", "resume=auto"]) == name
    assert sweep_name(["+experiment=quickstart", "lora.r=8,32", "train.learning_rate=1e-4,1e-3"]) != name
    parse = OverridesParser.create().parse_override
    lr = distribution(parse("x=tag(log, interval(1e-5, 1e-3))"))
    assert (type(lr).__name__, lr.low, lr.high, lr.log) == ("FloatDistribution", 1e-5, 1e-3, True)
    rank = distribution(parse("x=tag(int, interval(4, 64))"))
    assert (type(rank).__name__, rank.low, rank.high, rank.log) == ("IntDistribution", 4, 64, False)
    assert distribution(parse("x=choice(8, 16, 32)")).choices == (8, 16, 32)
    assert distribution(parse("x=range(4, 16, step=4)")).choices == (4, 8, 12)
    with pytest.raises(ValueError, match="not a search range"):
        distribution(parse("x=5"))
    resolved = {"data": {"train_file": str(tmp_path / "train.jsonl")}, "lora": {"r": 8}, "run_dir": "a", "logger": {}}
    write_jsonl(tmp_path / "train.jsonl", tool_picker_rows("train", 4))
    job = identity(resolved)
    assert identity({**resolved, "run_dir": "b", "logger": {"type": "wandb"}}) == job  # the same work
    assert identity({**resolved, "lora": {"r": 16}})["hash"] != job["hash"]
    write_jsonl(tmp_path / "train.jsonl", tool_picker_rows("train", 5))  # the same name, other contents
    assert identity(resolved)["hash"] != job["hash"]
    assert identity(resolved)["files"]["train_file"] != job["files"]["train_file"]
    assert estimate(["train.num_train_epochs=1"], 60.0, [["train.num_train_epochs=3"], []]).endswith(
        "about 4 min one after another (scaled by their epochs or steps where those are swept)")


def test_jobs_side_by_side_each_take_their_own_gpu(tmp_path):
    """hydra/launcher=gpus: each job process holds one GPU's lock for its life; with all GPUs held a job waits."""
    import subprocess
    import sys

    claim = ("import time; from pathlib import Path; from lorakit.sweeps import gpus; "
             f"device = gpus.claim(['0', '1'], Path({str(tmp_path)!r}), wait_s=0.2); print(device, time.time()); "
             "time.sleep(3)")
    jobs = [subprocess.Popen([sys.executable, "-c", claim], stdout=subprocess.PIPE, text=True) for _ in range(3)]
    claims = sorted((float(at), device) for device, at in (p.communicate(timeout=60)[0].split() for p in jobs))
    assert sorted(device for _, device in claims[:2]) == ["0", "1"]  # two jobs at once, on different GPUs
    assert claims[2][0] - claims[1][0] > 2.5  # the third waited until a job holding a GPU ended (after 3 s)


def test_the_launcher_configs_compose():
    from hydra import compose, initialize_config_dir

    from lorakit.config.compose import register_resolvers
    from lorakit.core.paths import CONF_DIR

    register_resolvers()
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        gpus = compose("config", overrides=["hydra/launcher=gpus"], return_hydra_config=True).hydra.launcher
        slurm = compose("config", overrides=["hydra/launcher=slurm"], return_hydra_config=True).hydra.launcher
    assert gpus._target_.endswith("JoblibLauncher") and gpus.n_jobs == 1  # no GPU here: one job at a time
    assert slurm._target_.endswith("SlurmLauncher") and slurm.gpus_per_node == 1 and slurm.max_num_timeout == 3


def test_a_dpo_sweep_through_submitit_runs_its_jobs_in_other_processes_in_the_same_folder(tmp_path):
    """A sweep over method.beta, unchanged from a supervised one, through hydra/launcher=slurm's engine
    (hydra-submitit-launcher) with its local executor: each job is pickled to a process of its own, as on a SLURM
    node, and still lands in the sweep's folder, shares its prepared pairs and trains with its own beta."""
    write_jsonl(tmp_path / "prefs.jsonl", pair_rows(24))
    args = ["model=tiny-llama", "method=dpo", "data.train_file=prefs.jsonl", "+train.max_steps=2",
            "stages=[prepare,train]", "method.beta=0.05,0.3"]
    out = train_cli("-m", *args, "hydra/launcher=submitit_local", cwd=tmp_path)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    sweep = tmp_path / "outputs" / "multirun" / sweep_name(args)
    rows = list(csv.DictReader((sweep / "sweep_summary.csv").open()))
    assert sorted((r["method.beta"], r["status"]) for r in rows) == [("0.05", "succeeded"), ("0.3", "succeeded")]
    assert list((sweep / ".submitit").iterdir())  # the jobs went through submitit
    assert "reusing" in (sweep / "1" / "train.log").read_text()  # the second job used the first one's data
    for row in rows:
        run = tmp_path / row["folder"]
        assert yaml.safe_load((run / "config.yaml").read_text())["method"]["beta"] == float(row["method.beta"])
        assert any("rewards/accuracies" in h for h in json.loads((run / "train_log.json").read_text()))
