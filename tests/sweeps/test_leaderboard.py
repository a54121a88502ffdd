"""The leaderboard reads a sweep folder as Hydra and lorakit write it: ranks jobs by their own metrics, lists the
failed one with its error, plots the metric per swept value, links the winner."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from lorakit.sweeps import ranking


def _job(sweep, num: int, overrides: list[str], exact: float | None, error: str | None = None):
    folder = sweep / str(num)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["+experiment=quickstart", *overrides]))
    if exact is not None:
        (folder / "metrics.json").write_text(json.dumps({"base": {"exact_match": 0.0}, "tuned": {"exact_match": exact}}))
        (folder / "compare.json").write_text(json.dumps({"candidates": {"tuned": {"exact_match": {
            "value": exact, "ci_low": exact - 0.05, "ci_high": min(exact + 0.05, 1.0)}}}}))
        (folder / "timings.json").write_text(json.dumps({"train": 10.0 + num}))
    if error:
        (folder / "train.log").write_text(f"[2026-11-22 10:00:00,000][lorakit][INFO] - start\n"
                                          f"[2026-11-22 10:00:01,000][lorakit][ERROR] - {error}\n")
    return folder


def test_jobs_are_ranked_by_their_metric_and_a_failed_job_is_listed_with_its_error(tmp_path):
    sweep = tmp_path / "sweep"
    _job(sweep, 0, ["lora.r=8", "train.learning_rate=3e-4"], 0.61)
    best = _job(sweep, 1, ["lora.r=8", "train.learning_rate=1e-3"], 0.94)
    _job(sweep, 2, ["lora.r=16", "train.learning_rate=3e-4"], None, error="out of memory: lower the batch size")
    _job(sweep, 3, ["lora.r=16", "train.learning_rate=1e-3"], 0.90)

    jobs = ranking.write(sweep)
    assert [j.folder.name for j in jobs] == ["1", "3", "0", "2"]
    rows = list(csv.DictReader((sweep / "sweep_summary.csv").open()))
    assert [r["rank"] for r in rows] == ["1", "2", "3", ""]
    assert rows[0]["lora.r"] == "8" and rows[0]["train.learning_rate"] == "1e-3" and "+experiment" not in rows[0]
    assert float(rows[0]["ci_low"]) == pytest.approx(0.89) and rows[0]["train_s"] == "11.0"
    assert rows[3]["status"] == "failed" and "out of memory" in rows[3]["error"]
    assert "3 of 4 jobs succeeded" in (sweep / "sweep_summary.md").read_text()
    assert (sweep / "best").resolve() == best.resolve()
    assert (sweep / "sweep_metric.png").stat().st_size > 1000

    _job(sweep, 4, ["lora.r=32", "train.learning_rate=1e-3"], 0.97)  # on demand again: the new winner
    assert ranking.write(sweep, "exact_match")[0].folder.name == "4"
    assert (sweep / "best").resolve() == (sweep / "4").resolve()


def test_the_logged_error_is_lorakits_message_with_a_traceback_reduced_to_its_exception(tmp_path):
    from lorakit.core.runs import logged_error

    log = tmp_path / "train.log"
    log.write_text("[t][lorakit][INFO] - training\n[t][lorakit][ERROR] - this job failed\nTraceback (most recent call "
                   "last):\n  File \"x.py\", line 1, in <module>\n    boom()\nValueError: boom\nSet the environment "
                   "variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n")
    assert logged_error(log) == "[t][lorakit][ERROR] - this job failed\nValueError: boom"
    log.write_text("[t][lorakit][INFO] - all fine\n")
    assert logged_error(log) is None and logged_error(tmp_path / "missing.log") is None
    assert logged_error(log, tail=5) == "[t][lorakit][INFO] - all fine"  # no error: the last lines (server jobs)
    assert logged_error(tmp_path / "missing.log", tail=5) is None
