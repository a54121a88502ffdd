"""compare.html: one self-contained page (PNG figures embedded, no scripts, no network) that opens from disk.

The summary table, the paired tests, the judge's verdicts, the figures of lorakit.evaluation.plots, and the
examples side by side, the ones where the candidates differ most first.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from lorakit.core.answers import task_kind
from lorakit.evaluation import plots
from lorakit.evaluation.metrics import confusion

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ddd;padding:3px 8px;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}.sig{font-weight:600}
pre{white-space:pre-wrap;margin:0;font:12px/1.35 ui-monospace,monospace;max-height:16em;overflow:auto}
img{max-width:100%}.ex td{width:1%}.ok{background:#eef8ea}.bad{background:#fbeeee}small{color:#666}
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _ci(stat: dict) -> str:
    return f"{stat['value']:.3f} <small>[{stat['ci_low']:.3f}, {stat['ci_high']:.3f}]</small>"


def _summary(result: dict) -> str:
    names = list(result["candidates"])
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = "".join(f"<tr><td>{m}</td>" + "".join(f'<td class="n">{_ci(result["candidates"][n][m])}</td>' for n in names)
                   + "</tr>" for m in result["metrics"])
    return f"<table><tr><th>metric</th>{head}</tr>{rows}</table>"


def _tests(result: dict) -> str:
    rows = []
    for t in result["tests"]:
        sig = ' class="n sig"' if t["p_value"] < 0.05 else ' class="n"'
        rows.append(f"<tr><td>{t['metric']}</td><td>{escape(t['a'])}</td><td>{escape(t['b'])}</td>"
                    f'<td class="n">{t["difference"]:+.3f} <small>[{t["ci_low"]:+.3f}, {t["ci_high"]:+.3f}]</small></td>'
                    f"<td>{escape(t['test'])}</td><td{sig}>{t['p_value']:.3g}</td></tr>")
    return ("<table><tr><th>metric</th><th>a</th><th>b</th><th>b - a [95% interval]</th><th>test</th><th>p</th></tr>"
            + "".join(rows) + "</table>")


def _judge(judge: dict | None) -> str:
    if not judge:
        return ""
    parts = [f"<h2>LLM judge</h2><p>judge <code>{escape(judge['model'])}</code>, {judge['calls']} replies; rubric: "
             f"<i>{escape(judge['rubric'])}</i></p>"]
    if "pointwise" in judge:
        parts.append(f"<h3>Scores (1 to {judge['scale']})</h3><table><tr><th>candidate</th><th>mean [95% interval]</th>"
                     "<th>scored</th><th>unparseable</th></tr>")
        parts += [f'<tr><td>{escape(n)}</td><td class="n">{_ci(p["score"])}</td><td class="n">{p["n_scored"]}</td>'
                  f'<td class="n">{p["unparseable"]}</td></tr>' for n, p in judge["pointwise"].items()]
        parts.append("</table>")
    if judge.get("pairwise"):
        parts.append("<h3>Pairwise, both orders</h3><table><tr><th>b vs a</th><th>win</th><th>tie</th><th>loss</th>"
                     "<th>unparseable</th><th>position consistency</th><th>win rate [95% interval]</th><th>p</th></tr>")
        for p in judge["pairwise"]:
            consistency = f"{p['position_consistency']:.0%}" if p["position_consistency"] is not None else "-"
            parts.append(f"<tr><td>{escape(p['b'])} vs {escape(p['a'])}</td>" + "".join(
                f'<td class="n">{p[k]}</td>' for k in ("win", "tie", "loss", "unparseable"))
                + f'<td class="n">{consistency}</td><td class="n">{_ci(p["win_rate"])}</td>'
                f'<td class="n">{p["p_value"]:.3g}</td></tr>')
        parts.append("</table>" + _img(plots.judge_outcomes(judge["pairwise"]), "judge outcomes"))
    return "".join(parts)


def _examples(result: dict, rows: list[dict], order: list[int], limit: int) -> str:
    names = list(result["outputs"])
    per = result["per_example"]
    first = next((m for m in result["metrics"] if all(m in per[c] for c in names)), None)
    judged = (result.get("judge") or {}).get("pointwise_scores", {})
    parts = [f"<h2>Examples, largest disagreement first</h2><p><small>{min(limit, len(order))} of {len(order)}; "
             "every example is in examples.jsonl" + (f"; cell colour: {first}" if first else "") + "</small></p>"]
    for i in order[:limit]:
        row = rows[i]
        convo = "\n".join(f"{m['role']}: {m.get('content') or ''}" for m in row["messages"][:-1])
        parts.append(f"<h3>{escape(str(row.get('file', 'test')))}:{row.get('line', i + 1)}</h3>"
                     f"<details><summary>conversation</summary><pre>{escape(convo)}</pre></details>"
                     '<table class="ex"><tr><th>reference</th>' + "".join(f"<th>{escape(n)}</th>" for n in names)
                     + f"</tr><tr><td><pre>{escape(result['references'][i])}</pre></td>")
        for n in names:
            score = per[n][first][i] if first else None
            css = "" if score is None else (' class="ok"' if score >= 1 else ' class="bad"' if score <= 0 else "")
            note = f"<br><small>{first} {score:.2f}</small>" if first else ""
            if n in judged:
                note += f"<br><small>judge {judged[n][i] if judged[n][i] is not None else 'unparseable'}</small>"
            parts.append(f"<td{css}><pre>{escape(result['outputs'][n][i])}</pre>{note}</td>")
        parts.append("</tr></table>")
    return "".join(parts)


def _non_inferiority(verdicts: list[dict] | None) -> str:
    if not verdicts:
        return ""
    rows = "".join(f"<tr><td>{escape(v['b'])}</td><td>{v['metric']}</td><td class='n'>{v['difference']:+.3f}</td>"
                   f"<td class='n'>{v['lower_bound']:+.3f}</td><td class='n'>-{v['margin']:g}</td>"
                   f"<td><b>{v['verdict']}</b></td></tr>" for v in verdicts)
    return (f"<h2>Non-inferiority</h2><p>Is each candidate not worse than <code>{escape(verdicts[0]['a'])}</code> by "
            "more than the margin? Non-inferior when the lower bound (one-sided 97.5%) of b - a lies above -margin; "
            "inferior when the whole 95% interval lies below it; else inconclusive. judge_win_rate: b's win rate against "
            "a by the pairwise judge (ties half) minus 0.5, parity.</p><table><tr><th>candidate</th>"
            "<th>metric</th><th>b - a</th><th>lower bound</th><th>-margin</th><th>verdict</th></tr>" + rows + "</table>")


def write_html(path: Path, result: dict, rows: list[dict], order: list[int], *, limit: int = 200) -> None:
    """compare.html: everything in one file."""
    figures = [("Metrics", plots.metric_bars(result["candidates"], result["metrics"]))]
    logs = {n: Path(p) for n, p in result.get("train_logs", {}).items()}
    curves, rewards = plots.loss_curves(logs), plots.reward_curves(logs)
    if curves:
        figures.append(("Training and validation loss", curves))
    if rewards:
        figures.append(("Reinforcement: mean reward per step", rewards))
    if task_kind(result["references"]) == "label":
        figures.append(("Confusion matrices", plots.confusion_matrices(
            {n: confusion(out, result["references"]) for n, out in result["outputs"].items()})))
    body = [f"<h1>lorakit comparison</h1><p>{result['n_examples']} test examples, greedy decoding, at most "
            f"{result['max_new_tokens']} new tokens; 95% intervals; paired tests against "
            f"<code>{escape(result['reference'])}</code> (p &lt; 0.05 in bold).</p>",
            _summary(result), "<h2>Paired tests</h2>", _tests(result), _non_inferiority(result.get("non_inferiority")),
            _judge(result.get("judge"))]
    body += [f"<h2>{title}</h2>{_img(png, title)}" for title, png in figures]
    body.append(_examples(result, rows, order, limit))
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>lorakit comparison</title>"
                    f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>", encoding="utf-8")
