"""What the prepare stage finds in the data, before it writes anything: each split encoded for the method, every
finding in file and line order, and the data report (lorakit.data.data_report).

The prepare stage (lorakit.stages.prepare) writes it and trains on it; lorakit.serve shows it for an upload (the
fine-tuning page's file report), so both say the same of one file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lorakit.data import data_report
from lorakit.data.checks import Finding
from lorakit.data.encoding import test_rows
from lorakit.data.splits import Selection


@dataclass
class Examined:
    report: dict                   # data_report.build's report
    kept: dict[str, list[dict]]    # train and validation: the encoded rows (a row is one training sequence)
    used: dict[str, list]          # train, validation and test: the examples used
    findings: list[Finding]        # every finding, in file and line order


def examine(cfg, selection: Selection, encode: Callable, tokenizer, eot_ids: set[int], *,
            tasks: bool = False) -> Examined:
    """Encode the selection's train and validation splits with `encode` (the method's: rows and findings), check
    the test split, and build the report; `tasks`: the examples are reinforcement tasks."""
    data = cfg.data
    findings = list(selection.findings)
    kept: dict[str, list[dict]] = {}
    for name in ("train", "validation"):
        kept[name], found = encode(selection.splits[name], tokenizer, eot_ids, data)
        findings += found
    test, found = test_rows(selection.splits["test"], tokenizer, data.max_length)
    findings += found
    order = {path: i for i, path in enumerate(selection.records)}  # report in file and line order
    findings.sort(key=lambda f: (order.get(f.file, len(order)), f.record, f.line))
    # a row is one training sequence; an example trained turn by turn has several
    used = {name: list({id(r["example"]): r["example"] for r in kept[name]}.values()) for name in ("train", "validation")}
    used["test"] = test
    report = data_report.build(cfg, tokenizer, selection.records, used, findings, kept["train"], selection.decisions,
                               completions=cfg.method.get("num_generations") if tasks else None)
    return Examined(report, kept, used, findings)
