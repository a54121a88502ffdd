"""The comparison report's figures as PNG bytes (matplotlib, no display needed): metric bars with 95% interval
whiskers, training and validation loss curves, reinforcement rewards, confusion matrices, the judge's win / tie / loss counts."""

from __future__ import annotations

import functools
import io
import json
import math
from pathlib import Path


@functools.cache
def _pyplot():
    """matplotlib.pyplot without a display, imported at the first figure (half a second a command needs no more)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def _grid(n: int, width: float = 3.4, height: float = 2.6):
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = _pyplot().subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False,
                             layout="constrained")
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def metric_bars(candidates: dict[str, dict[str, dict]], metrics: list[str]) -> bytes:
    """One panel per metric, one bar per candidate, whiskers from ci_low to ci_high."""
    names = list(candidates)
    fig, axes = _grid(len(metrics))
    for ax, metric in zip(axes, metrics, strict=True):
        stats = [candidates[n][metric] for n in names]
        values = [s["value"] for s in stats]
        # a percentile bootstrap interval need not contain the full-sample value: no whisker on that side then
        err = [[max(0.0, v - s["ci_low"]) for v, s in zip(values, stats, strict=True)],
               [max(0.0, s["ci_high"] - v) for v, s in zip(values, stats, strict=True)]]
        ax.bar(range(len(names)), values, yerr=err, capsize=4, color=[f"C{i % 10}" for i in range(len(names))])
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(metric, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        if metric != "length" and all(0 <= s["ci_low"] and s["ci_high"] <= 1 for s in stats):  # fractions
            ax.set_ylim(0, 1.05)
    fig.suptitle("value with 95% interval", fontsize=10)
    return _png(fig)


def _per_step(ax, title: str, ylabel: str) -> None:
    """A panel of values against the training step: its title, axis labels, grid and legend."""
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def loss_curves(runs: dict[str, Path]) -> bytes | None:
    """Training and validation loss against step, one panel per run (from its train_log.json); None when no
    candidate has a log."""
    logs = {name: json.loads(path.read_text()) for name, path in runs.items() if path.is_file()}
    if not logs:
        return None
    fig, axes = _grid(len(logs), width=4.2, height=2.8)
    for ax, (name, history) in zip(axes, logs.items(), strict=True):
        for key, label in (("loss", "train"), ("eval_loss", "validation")):
            points = [(h["step"], h[key]) for h in history if key in h and "step" in h]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o" if len(points) < 30 else None, ms=3, label=label)
        _per_step(ax, name, "loss")
    return _png(fig)


def reward_curves(runs: dict[str, Path]) -> bytes | None:
    """Reinforcement runs: the mean reward per step with a band of one standard deviation (the spread within the
    step's completions) and the validation reward, one panel per run; None when no log has rewards."""
    logs = {name: json.loads(path.read_text()) for name, path in runs.items() if path.is_file()}
    logs = {name: history for name, history in logs.items() if any("reward" in h for h in history)}
    if not logs:
        return None
    fig, axes = _grid(len(logs), width=4.2, height=2.8)
    for ax, (name, history) in zip(axes, logs.items(), strict=True):
        points = [(h["step"], h["reward"], h.get("reward_std", 0.0)) for h in history if "reward" in h and "step" in h]
        steps, means, spread = zip(*points, strict=True)
        ax.plot(steps, means, marker="o" if len(points) < 30 else None, ms=3, label="train")
        ax.fill_between(steps, [m - s for m, s in zip(means, spread, strict=True)],
                        [m + s for m, s in zip(means, spread, strict=True)], alpha=0.2)
        evals = [(h["step"], h["eval_reward"]) for h in history if "eval_reward" in h and "step" in h]
        if evals:
            ax.plot(*zip(*evals, strict=True), marker="s", ms=3, label="validation")
        _per_step(ax, name, "mean reward (± std)")
    return _png(fig)


def confusion_matrices(matrices: dict[str, tuple[list[str], list[list[int]]]]) -> bytes:
    """One heat map per candidate: rows are reference labels, columns predicted labels."""
    fig, axes = _grid(len(matrices), width=4.0, height=3.6)
    for ax, (name, (labels, counts)) in zip(axes, matrices.items(), strict=True):
        ax.imshow(counts, cmap="Blues")
        ticks = range(len(labels))
        ax.set_xticks(ticks, labels, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(ticks, labels, fontsize=7)
        for i, row in enumerate(counts):
            for j, k in enumerate(row):
                if k:
                    ax.text(j, i, str(k), ha="center", va="center", fontsize=7,
                            color="white" if k > max(map(max, counts)) / 2 else "black")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("reference", fontsize=8)
    return _png(fig)


def judge_outcomes(pairwise: list[dict]) -> bytes:
    """Stacked win / tie / loss / unparseable bars, one per candidate judged against the reference."""
    fig, ax = _pyplot().subplots(figsize=(6, 0.9 + 0.5 * len(pairwise)), layout="constrained")
    left = [0] * len(pairwise)
    for key, color in (("win", "#4c9a2a"), ("tie", "#bbbbbb"), ("loss", "#c0392b"), ("unparseable", "#f1c40f")):
        counts = [p[key] for p in pairwise]
        ax.barh(range(len(pairwise)), counts, left=left, color=color, label=key)
        left = [x + k for x, k in zip(left, counts, strict=True)]
    ax.set_yticks(range(len(pairwise)), [f"{p['b']} vs {p['a']}" for p in pairwise], fontsize=8)
    ax.set_xlabel("examples", fontsize=8)
    fig.legend(fontsize=8, ncol=4, loc="outside lower center")
    return _png(fig)
