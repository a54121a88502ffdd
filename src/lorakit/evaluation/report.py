"""Reports: report.md (base vs tuned, the evaluate stage) and compare.json / .md / .html and examples.jsonl (any
candidates)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from lorakit.core.runs import RunFolder, write_jsonl
from lorakit.evaluation.html_report import write_html


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
    RunFolder(run_dir).report.write_text("\n".join(parts))
    return table


def _cell(stat: dict) -> str:
    return f"{stat['value']:.3f} [{stat['ci_low']:.3f}, {stat['ci_high']:.3f}]"


def comparison_table(result: dict) -> str:
    """Markdown: one row per metric, one column per candidate: value [95% interval]."""
    names = list(result["candidates"])
    lines = ["| metric | " + " | ".join(f"`{n}`" for n in names) + " |", "|---|" + "---:|" * len(names)]
    for metric in result["metrics"]:
        lines.append(f"| {metric} | " + " | ".join(_cell(result["candidates"][n][metric]) for n in names) + " |")
    return "\n".join(lines)


def tests_table(result: dict) -> str:
    lines = ["| metric | a | b | b - a [95% interval] | test | p |", "|---|---|---|---:|---|---:|"]
    for t in result["tests"]:
        lines.append(f"| {t['metric']} | `{t['a']}` | `{t['b']}` | {t['difference']:+.3f} [{t['ci_low']:+.3f}, "
                     f"{t['ci_high']:+.3f}] | {t['test']} | {t['p_value']:.3g} |")
    return "\n".join(lines)


def disagreement_order(result: dict) -> list[int]:
    """Example indices, the ones where the candidates' scores differ most first (then by test-set order)."""
    per = result["per_example"]
    first = next((m for m in result["metrics"] if all(m in per[c] for c in per)), None)
    n = result["n_examples"]
    if first is None:
        return list(range(n))
    spread = [max(per[c][first][i] for c in per) - min(per[c][first][i] for c in per) for i in range(n)]
    distinct = [len({result["outputs"][c][i] for c in per}) for i in range(n)]
    return sorted(range(n), key=lambda i: (-spread[i], -distinct[i], i))


def non_inferiority_table(verdicts: list[dict] | None) -> str:
    """Markdown: per candidate and metric, whether it is not worse than the reference by more than the margin."""
    if not verdicts:
        return ""
    rows = [f"| `{v['b']}` | {v['metric']} | {v['difference']:+.3f} | {v['lower_bound']:+.3f} | -{v['margin']:g} | "
            f"**{v['verdict']}** |" for v in verdicts]
    return "\n".join(["## Non-inferiority", "", f"Is each candidate not worse than `{verdicts[0]['a']}` by more than "
                      "the margin? Non-inferior when the lower bound (one-sided 97.5%) of b - a lies above -margin; "
                      "inferior when the whole 95% interval lies below it; else inconclusive (more examples). judge_win_rate: "
                      "b's win rate against a by the pairwise judge (ties half) minus 0.5, parity.", "",
                      "| candidate | metric | b - a | lower bound | -margin | verdict |", "|---|---|---:|---:|---:|---|",
                      *rows, ""])


def judge_tables(judge: dict | None) -> str:
    """Markdown: pointwise scores and pairwise win / tie / loss, when a judge ran."""
    if not judge:
        return ""
    parts = ["## LLM judge", "", f"Judge `{judge['model']}`, {judge['calls']} replies. Rubric: {judge['rubric']}", ""]
    if "pointwise" in judge:
        parts += [f"| candidate | score 1-{judge['scale']} [95% interval] | scored | unparseable |", "|---|---:|---:|---:|"]
        parts += [f"| `{n}` | {_cell(p['score'])} | {p['n_scored']} | {p['unparseable']} |"
                  for n, p in judge["pointwise"].items()] + [""]
    if judge.get("pairwise"):
        parts += ["| b vs a | win | tie | loss | unparseable | position consistency | win rate [95% interval] | p |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for p in judge["pairwise"]:
            consistency = f"{p['position_consistency']:.0%}" if p["position_consistency"] is not None else "-"
            parts.append(f"| `{p['b']}` vs `{p['a']}` | {p['win']} | {p['tie']} | {p['loss']} | {p['unparseable']} | "
                         f"{consistency} | {_cell(p['win_rate'])} | {p['p_value']:.3g} |")
        parts.append("")
    return "\n".join(parts)


def grader_notes(graders: dict | None) -> str:
    """Markdown: the examples each grader could not grade (scored 0), with a reason, when any."""
    lines = []
    for name, entry in (graders or {}).items():
        for cand, count in entry["failed"].items():
            if count:
                first = entry["failures"][cand][0]
                lines.append(f"- grader `{name}` ({entry['type']}): {count} `{cand}` answer(s) not graded, scored 0; "
                             f"e.g. {first['file']}:{first['line']}: {first['error']}")
    return "\n".join(["Graders that failed on some examples:", "", *lines, ""]) if lines else ""


def example_records(result: dict, rows: list[dict]) -> list[dict]:
    """examples.jsonl: per test example, every candidate's answer, its per-example scores and judge score."""
    judge = result.get("judge") or {}
    points = judge.get("pointwise_scores", {})
    outcomes = {p["b"]: p["outcomes"] for p in judge.get("pairwise", [])}
    records = []
    for i, row in enumerate(rows):
        record = {"file": row.get("file"), "line": row.get("line"), "reference": result["references"][i],
                  "answers": {n: out[i] for n, out in result["outputs"].items()},
                  "scores": {n: {m: s[i] for m, s in per.items()} for n, per in result["per_example"].items()}}
        if points:
            record["judge_score"] = {n: s[i] for n, s in points.items()}
        if outcomes:
            record["judge_vs_reference"] = {n: o[i] for n, o in outcomes.items()}
        records.append(record)
    return records


def write_comparison(out_dir: Path, result: dict, rows: list[dict], *, examples: int = 10) -> None:
    """compare.json (the documented schema, plus the settings used), compare.md, compare.html, examples.jsonl."""
    import json


    public = {k: result[k] for k in ("candidates", "tests", "judge", "n_examples", "metrics", "reference",
                                     "max_new_tokens", "generated")}
    if result.get("non_inferiority") is not None:
        public["non_inferiority"] = result["non_inferiority"]
    if result.get("graders"):
        public["graders"] = result["graders"]
    if public["judge"]:  # per-example verdicts go to examples.jsonl
        public["judge"] = {k: v for k, v in public["judge"].items() if k != "pointwise_scores"}
        public["judge"]["pairwise"] = [{k: v for k, v in p.items() if k != "outcomes"}
                                       for p in public["judge"].get("pairwise", [])]
    out_dir.mkdir(parents=True, exist_ok=True)
    RunFolder(out_dir).compare().write_text(json.dumps(public, indent=2, ensure_ascii=False))
    write_jsonl(RunFolder(out_dir).examples, example_records(result, rows))
    order = disagreement_order(result)
    parts = ["# lorakit comparison", "", f"{result['n_examples']} test examples, greedy decoding, at most "
             f"{result['max_new_tokens']} new tokens; 95% intervals; tests against `{result['reference']}`. "
             "Figures and every example side by side: compare.html.", "",
             comparison_table(result), "", grader_notes(result.get("graders")), "## Paired tests", "",
             tests_table(result), "", non_inferiority_table(result.get("non_inferiority")), judge_tables(result["judge"]),
             "## Examples (largest disagreement first)", ""]
    for i in order[:examples]:
        user = next((m["content"] for m in reversed(rows[i]["messages"]) if m["role"] == "user"), "")
        parts += [f"### {rows[i].get('file', 'test')}:{rows[i].get('line', i + 1)}", "", f"- input: {_quote(user)}",
                  f"- reference: {_quote(result['references'][i])}"]
        parts += [f"- `{name}`: {_quote(answers[i])}" for name, answers in result["outputs"].items()] + [""]
    RunFolder(out_dir).compare(".md").write_text("\n".join(parts))
    write_html(RunFolder(out_dir).compare(".html"), result, rows, order)
