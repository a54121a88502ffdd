"""data_report.json and data_report.md: where every input record went, every finding, token counts and cost.

The accounting holds by construction and is checked: for every file, records read = used (train + validation +
test) + dropped, and every dropped record has a reason (the category of its first dropping finding).
"""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from lorakit.core import distributed
from lorakit.core.runs import RunFolder
from lorakit.data.checks import Finding
from lorakit.data.template import CONVERSATION, TURN, supports_tools, template_sha256
from lorakit.openai.pricing import openai_cost
from lorakit.training import plan

log = logging.getLogger(__name__)

SHOWN_PER_CATEGORY = 20  # lines per category in data_report.md and the log; all are in data_report.json


def percentiles(lengths: list[int]) -> dict[str, int]:
    if not lengths:
        return {}
    arr = np.asarray(lengths)
    return {"p50": int(np.percentile(arr, 50)), "p90": int(np.percentile(arr, 90)),
            "p99": int(np.percentile(arr, 99)), "max": int(arr.max())}


def accounting(records: dict[str, int], used: dict[str, list], findings: list[Finding]) -> dict:
    """Records read, used per split and dropped per reason, per file and in total.

    Raises:
        RuntimeError: when the numbers do not add up (a bug in lorakit: every record must be accounted for).
    """
    reason: dict[tuple[str, int], str] = {}
    for f in findings:
        if f.drops:
            reason.setdefault((f.file, f.record), f.category)
    where = {(ex.file, ex.record): split for split, examples in used.items() for ex in examples}
    both = set(where) & set(reason)
    if both:
        raise RuntimeError(f"lorakit bug: record(s) {sorted(both)[:3]} both used and dropped")
    per_file = {}
    for path, total in records.items():
        splits = Counter(split for (file, _), split in where.items() if file == path)
        dropped = Counter(cat for (file, _), cat in reason.items() if file == path)
        entry = {"records": total, "used": {s: splits.get(s, 0) for s in used}, "dropped": dict(dropped.most_common())}
        if sum(splits.values()) + sum(dropped.values()) != total:
            raise RuntimeError(f"lorakit bug: {path}: {total} records read but {sum(splits.values())} used + "
                               f"{sum(dropped.values())} dropped")
        per_file[path] = entry
    dropped_total = Counter(reason.values())
    return {"records": sum(records.values()), "used": {s: len(e) for s, e in used.items()},
            "dropped": sum(dropped_total.values()), "dropped_by_reason": dict(dropped_total.most_common()),
            "files": per_file}


def rendering(train_rows: list[dict]) -> dict:
    """How the training examples were rendered (lorakit.data.template), and the tokens one sequence per turn adds.

    Extra tokens: for an example trained one sequence per turn, every sequence but its longest (the last turn's,
    which holds the whole conversation) repeats earlier turns.
    """
    lengths: dict[tuple[str, int], list[int]] = defaultdict(list)
    modes: dict[tuple[str, int], str] = {}
    for r in train_rows:
        key = (r["example"].file, r["example"].record)
        lengths[key].append(r["length"])
        modes[key] = r["mode"]
    per_turn = [lengths[k] for k, mode in modes.items() if mode == TURN]
    return {CONVERSATION: sum(mode == CONVERSATION for mode in modes.values()), TURN: len(per_turn),
            "sequences": len(train_rows), "extra_tokens_per_epoch": int(sum(sum(x) - max(x) for x in per_turn))}


def build(cfg, tokenizer, records: dict[str, int], used: dict[str, list], findings: list[Finding],
          train_rows: list[dict], decisions: list | None = None, *, completions: int | None = None) -> dict:
    """The whole report as a JSON-ready dict; `decisions`: the data settings decided from its size (the training
    settings' are added here, lorakit.training.plan); `completions`: the rows are reinforcement tasks, each
    answered this many times per step (the trainer's sequences)."""
    lengths = [r["length"] for r in train_rows]
    per_epoch = int(sum(lengths))
    train = OmegaConf.to_container(cfg.train, resolve=True)
    sequences = len(train_rows) * (completions or 1)
    epochs = plan.epochs(train, sequences, distributed.world_size())
    decisions = [d.to_dict() for d in [*(decisions or []), *plan.decide(train, sequences, distributed.world_size())]]
    categories: dict[str, Counter] = defaultdict(Counter)
    for f in findings:
        categories[f.category][f.severity] += 1
    eos = sorted({tokenizer.eos_token_id} - {None})
    rendered = rendering(train_rows)
    billed = int((per_epoch - rendered["extra_tokens_per_epoch"]) * epochs)  # a hosted service bills a conversation once
    return {
        "files": {"train_file": str(cfg.data.train_file), "test_file": cfg.data.test_file and str(cfg.data.test_file)},
        "settings": {k: cfg.data.get(k) for k in ("format", "max_length", "too_long", "duplicates", "strict")},
        "accounting": accounting(records, used, findings),
        "decisions": decisions,
        "findings_by_category": {c: dict(n) for c, n in sorted(categories.items())},
        "tokens": {"model": cfg.model.name_or_path, "train_length": percentiles(lengths), "per_epoch": per_epoch,
                   "assistant_trained_per_epoch": int(sum(r["trained"] for r in train_rows)),
                   "epochs": epochs, "total": int(per_epoch * epochs), "completions_per_task": completions},
        "openai_cost": openai_cost(cfg.pricing, billed) if not completions else
        {"model": cfg.pricing.model, "usd": None, "rates_as_of": str(cfg.pricing.as_of),
         "note": "reinforcement fine-tuning is billed by training time, not tokens: no estimate"},
        "template": {"sha256": template_sha256(tokenizer), "end_of_turn": tokenizer.convert_ids_to_tokens(eos),
                     "tool_calls": "rendered by the template" if supports_tools(tokenizer) else "JSON text in the reply",
                     "rendering": rendered},
        "findings": [f.to_dict() for f in findings],
    }


def _by_category(findings: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for f in findings:
        out[f["category"]].append(f)
    return out


def markdown(report: dict) -> str:
    acc, tok, cost = report["accounting"], report["tokens"], report["openai_cost"]
    used = acc["used"]
    lines = ["# lorakit data report", "",
             f"- train file: `{report['files']['train_file']}`" + (f", test file: `{report['files']['test_file']}`"
                                                                 if report["files"]["test_file"] else ""),
             f"- settings: {', '.join(f'{k}={v}' for k, v in report['settings'].items())}", "",
             "## Where every record went", "",
             "| file | records | train | validation | test | dropped |", "|---|---:|---:|---:|---:|---:|"]
    for path, entry in acc["files"].items():
        u = entry["used"]
        lines.append(f"| `{path}` | {entry['records']} | {u['train']} | {u['validation']} | {u['test']} | "
                     f"{sum(entry['dropped'].values())} |")
    lines.append(f"| **all** | {acc['records']} | {used['train']} | {used['validation']} | {used['test']} | "
                 f"{acc['dropped']} |")
    if acc["dropped_by_reason"]:
        lines += ["", "Dropped, by reason: " + ", ".join(f"{k} {v}" for k, v in acc["dropped_by_reason"].items())]
    if report.get("decisions"):
        lines += ["", "## Decided from the data's size", "",
                  *[f"- `{d['setting']}={d['value']:g}`: {d['reason']}" for d in report["decisions"]]]
    lines += ["", "## Findings", ""]
    if not report["findings"]:
        lines += ["None.", ""]
    for category, items in _by_category(report["findings"]).items():
        counts = report["findings_by_category"][category]
        lines += [f"### {category} ({', '.join(f'{n} {s}' + ('s' if n > 1 else '') for s, n in counts.items())})", ""]
        lines += [f"- `{f['file']}:{f['line']}` {f['message']}" for f in items[:SHOWN_PER_CATEGORY]]
        if len(items) > SHOWN_PER_CATEGORY:
            lines.append(f"- ... and {len(items) - SHOWN_PER_CATEGORY} more in data_report.json")
        lines.append("")
    length = tok["train_length"]
    lines += ["## Tokens (training split)", "",
              f"- tokenizer: `{tok['model']}`",
              f"- length per example: p50 {length.get('p50')}, p90 {length.get('p90')}, p99 {length.get('p99')}, "
              f"max {length.get('max')}",
              _per_epoch_line(tok), "", "## Hosted fine-tuning cost (estimate)", "", _cost_line(cost),
              "", "## Chat template", "",
              f"- sha256 `{report['template']['sha256']}`; end of turn {report['template']['end_of_turn']}; tool calls: "
              f"{report['template']['tool_calls']}", *_rendering_lines(report), ""]
    return "\n".join(lines)


def _per_epoch_line(tok: dict) -> str:
    if tok.get("completions_per_task"):
        return (f"- per epoch: {tok['per_epoch']:,} prompt tokens (tasks: the model's completions are generated while "
                f"training, {tok['completions_per_task']} per task); x {tok['epochs']:g} epoch(s)")
    return (f"- per epoch: {tok['per_epoch']:,} tokens, {tok['assistant_trained_per_epoch']:,} of them assistant "
            f"tokens trained; x {tok['epochs']:g} epoch(s) = {tok['total']:,} tokens")


def _cost_line(cost: dict) -> str:
    if cost["usd"] is not None:
        return (f"- {cost['model']}: {cost['billed_tokens']:,} billed tokens x ${cost['usd_per_1m_training_tokens']}"
                f"/1M = **${cost['usd']:.2f}** (rates as of {cost['rates_as_of']}; {cost['note']})")
    if "billed_tokens" not in cost:
        return f"- {cost['model']}: {cost['note']}"
    return f"- no rate for {cost['model']} in conf/pricing (rates as of {cost['rates_as_of']}); add it"


def _rendering_lines(report: dict) -> list[str]:
    rendered, per_epoch = report["template"]["rendering"], report["tokens"]["per_epoch"]
    lines = [f"- rendering: {rendered[CONVERSATION]} training example(s) as one sequence each (every reply follows "
             "exactly its inference prompt)"]
    if rendered[TURN]:
        extra = rendered["extra_tokens_per_epoch"]
        lines.append(
            f"- rendering: {rendered[TURN]} training example(s) as one sequence per trained turn "
            f"({rendered['sequences'] - rendered[CONVERSATION]} sequences): the template renders the text before a "
            "reply differently when more follows (e.g. Mistral v0.3 puts the system prompt into the last user turn "
            "only), or tokenizes a prompt's end together with its reply, so each turn is trained after exactly its "
            f"inference prompt; this costs {extra:,} extra tokens per epoch "
            f"({100 * extra / max(per_epoch - extra, 1):.1f}% more)")
    return lines


def write(run_dir: Path, report: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = RunFolder(run_dir).data_report
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    path.with_suffix(".md").write_text(markdown(report))


def log_summary(report: dict) -> None:
    """The stage's closing lines: where the records went, findings per category with a few examples, tokens, cost."""
    acc, tok, cost = report["accounting"], report["tokens"], report["openai_cost"]
    used = acc["used"]
    log.info("%d records: train %d, validation %d, test %d, dropped %d%s", acc["records"], used["train"],
             used["validation"], used["test"], acc["dropped"],
             f" ({', '.join(f'{k} {v}' for k, v in acc['dropped_by_reason'].items())})" if acc["dropped"] else "")
    for d in report.get("decisions", []):
        log.info("decided %s=%g: %s", d["setting"], d["value"], d["reason"])
    for category, items in _by_category(report["findings"]).items():
        log.warning("%s: %d finding(s)", category, len(items))
        for f in items[:SHOWN_PER_CATEGORY]:
            log.warning("  %s:%d: %s", f["file"], f["line"], f["message"])
    rendered = report["template"]["rendering"]
    if rendered[TURN]:
        log.info("%d example(s) trained one sequence per turn, as the chat template renders them at inference "
                 "(+%s tokens per epoch); %d as one sequence", rendered[TURN],
                 f"{rendered['extra_tokens_per_epoch']:,}", rendered[CONVERSATION])
    length = tok["train_length"]
    if length and tok.get("completions_per_task"):
        log.info("the training tasks' prompts have %s tokens per epoch; prompt length p50 %d, p99 %d, max %d",
                 f"{tok['per_epoch']:,}", length["p50"], length["p99"], length["max"])
    elif length:
        log.info("train has %s tokens per epoch, %s of them assistant tokens trained; length p50 %d, p99 %d, max %d",
                 f"{tok['per_epoch']:,}", f"{tok['assistant_trained_per_epoch']:,}", length["p50"], length["p99"],
                 length["max"])
    if cost["usd"] is not None:
        log.info("hosted fine-tuning estimate: %s on %s = $%.2f (rates as of %s)", f"{cost['billed_tokens']:,} tokens",
                 cost["model"], cost["usd"], cost["rates_as_of"])
