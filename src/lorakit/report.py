"""report.md: base vs tuned metrics side by side, and a few examples."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig


def metrics_table(results: dict[str, dict[str, float]]) -> str:
    """A Markdown table: one row per metric, base, tuned and the change."""
    lines = ["| metric | base | tuned | change |", "|---|---:|---:|---:|"]
    for name, base in results["base"].items():
        tuned = results["tuned"][name]
        lines.append(f"| {name} | {base:.3f} | {tuned:.3f} | {tuned - base:+.3f} |")
    return "\n".join(lines)


def _quote(text: str) -> str:
    return "`" + text.replace("`", "'").replace("\n", " ") + "`" if text else "*(empty)*"


def write_report(run_dir: Path, results: dict, rows: list[dict], references, base, tuned, *, cfg: DictConfig,
                 adapter_dir: Path) -> str:
    """Write run_dir/report.md and return the metrics table."""
    table = metrics_table(results)
    parts = [
        "# lorakit evaluation report",
        "",
        f"- model: `{cfg.model.name_or_path}`",
        f"- adapter: `{adapter_dir}`",
        f"- test examples: {len(rows)} (greedy decoding)",
        "",
        table,
        "",
        "## Examples",
        "",
    ]
    changed = [i for i in range(len(rows)) if base[i] != tuned[i]] or list(range(len(rows)))
    for i in changed[: cfg.eval.report_examples]:
        user = next((m["content"] for m in reversed(rows[i]["messages"]) if m["role"] == "user"), "")
        parts += [
            f"### test line {rows[i]['line']}",
            "",
            f"- input: {_quote(user)}",
            f"- reference: {_quote(references[i])}",
            f"- base: {_quote(base[i])}",
            f"- tuned: {_quote(tuned[i])}",
            "",
        ]
    (run_dir / "report.md").write_text("\n".join(parts))
    return table
