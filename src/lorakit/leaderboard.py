"""`python -m lorakit.leaderboard <sweep dir>`: rank the jobs of a sweep by the metric their own runs wrote.

Usage:
    python -m train -m +experiment=quickstart lora.r=8,16 train.learning_rate=3e-4,1e-3   # outputs/multirun/quickstart-<hash>
    python -m lorakit.leaderboard outputs/multirun/quickstart-1a2b3c4d [--metric exact_match] [--mode minimize]

Writes, in the sweep folder: sweep_summary.csv and sweep_summary.md (one row per job: rank, the metric with its 95%
interval from compare.json, every swept value, status, train seconds, folder; failed jobs with their error),
sweep_metric.png (the metric against each swept parameter) and best/ (a link to the winner's run folder).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lorakit.core.errors import exit_2_on_user_error
from lorakit.core.runs import SweepFolder
from lorakit.sweeps.ranking import write


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m lorakit.leaderboard", description=__doc__.split("\n\n")[0])
    p.add_argument("sweep", type=Path, help="the sweep folder (hydra.sweep.dir), e.g. outputs/multirun/quickstart-1a2b3c4d")
    p.add_argument("--metric", default=None, help="the metric to rank by: an evaluated one, validation_loss or "
                   "train_loss (default: the first evaluated metric)")
    p.add_argument("--mode", choices=("maximize", "minimize", "max", "min"), default=None,
                   help="default: minimize a loss (validation_loss, train_loss), maximize anything else")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with exit_2_on_user_error():
        jobs = write(args.sweep, args.metric, args.mode)
    print(SweepFolder(args.sweep).summary().read_text())
    print(f"best: {jobs[0].folder if jobs[0].value is not None else 'none succeeded'}")


if __name__ == "__main__":
    main()
