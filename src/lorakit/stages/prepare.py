"""Prepare stage: data files in any common format -> checked, tokenized, loss-masked train/validation sets, a
held-out test set, and a report that accounts for every input record.

Usage:
    python -m train +experiment=quickstart stages=[prepare]                       # lint the data, no training
    python -m train stages=[prepare] data.train_file=my.jsonl data.strict=true    # any finding -> exit 2

Steps: read every file (lorakit.data.reading, formats) -> check every example (lorakit.data.checks) -> drop
duplicates -> split off test and validation -> drop training examples that leak test prompts (lorakit.data.splits)
-> render with the chat template (lorakit.data.template) and tokenize (lorakit.data.encoding) -> apply the too-long
policy -> write run_dir/data/ (train/ and validation/ datasets, train.jsonl, validation.jsonl and test.jsonl in
OpenAI chat format) and run_dir/data_report.{json,md} (lorakit.data.data_report). Every record read ends in exactly
one of train, validation, test or dropped-with-a-reason.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lorakit import methods
from lorakit.core.runs import RunFolder, write_jsonl
from lorakit.data import data_report, task_match
from lorakit.data.checks import Finding
from lorakit.data.examine import examine
from lorakit.data.preferences import PAIR_FORMATS
from lorakit.data.reading import DataError, Example, listing
from lorakit.data.splits import SPLITS, Selection, select
from lorakit.data.template import TemplateError

log = logging.getLogger(__name__)


REJECTIONS = ("role_order", "template_error")  # the categories of a conversation the chat template cannot render


def _check_some_rendered(selection: Selection, findings: list[Finding]) -> None:
    """A template that rejects one conversation drops it; one that rejects every conversation is a run error.

    Raises:
        TemplateError: listing the first rejections.
    """
    n = sum(len(examples) for examples in selection.splits.values())
    rejected = [f for f in findings if f.category in REJECTIONS]
    if n and len({(f.file, f.record) for f in rejected}) == n:
        raise TemplateError(f"the model's chat template renders none of the {n} examples; each one is rejected, "
                            f"e.g.:\n{listing(rejected, 5)}")


def _write_jsonl(path: Path, examples: list[Example]) -> None:
    """The examples as read and converted (chat messages), each with the file and line it came from (and a task's
    line as read, its grader's item)."""
    write_jsonl(path, ({"file": ex.file, "line": ex.line, "record": ex.record, "messages": ex.messages,
                        "tools": ex.tools, **({"rejected": ex.rejected} if ex.rejected else {}),
                        **({"item": ex.item} if ex.item is not None else {})} for ex in examples))


def _check_method(cfg, method: methods.Method, selection: Selection) -> None:
    """The training files must hold what the method trains on (its data: chat examples, preference pairs or tasks).

    Raises:
        DataError: naming the file, its format, and the method it is for.
    """
    if method.data == "tasks":
        _check_tasks(cfg.data.train_file, selection, method.name)
        return
    pairs = method.data == "pairs"
    for path in (cfg.data.train_file, cfg.data.get("validation_file")):
        fmt = selection.formats.get(str(Path(path))) if path else None  # keyed as read_file names files
        if fmt is None or (fmt in PAIR_FORMATS) == pairs:
            continue
        if pairs:
            raise DataError(f"{path} holds chat examples ({fmt} format), and method={method.name} trains on "
                            'preference pairs. Give a pair file (OpenAI\'s {"input": {"messages": [...]}, '
                            '"preferred_output": [...], "non_preferred_output": [...]} or {"prompt", "chosen", '
                            "\"rejected\"}), make one from a tuned run's mistakes with python -m lorakit.pairs "
                            f"outputs/<run> data.train_file={path}, or train on the examples with method=supervised")
        raise DataError(f"{path} holds preference pairs ({fmt} format), which method={method.name} does not train on; "
                        "run with method=dpo (e.g. method=dpo init_from=outputs/<a supervised run>)")


def _check_tasks(path, selection: Selection, name: str) -> None:
    """A chat file given to method=reinforcement (every line ends in an assistant reply) is refused whole.

    Raises:
        DataError: naming the file and the two ways on.
    """
    chat = {f.record for f in selection.findings if f.file == str(Path(path)) and f.category == "not_a_task"}
    if chat and len(chat) == selection.records.get(str(Path(path))):
        raise DataError(f"{path} holds chat examples (every line ends in an assistant reply), and method={name} "
                        "trains on tasks: lines whose messages end in the user turn the model answers, with the fields "
                        "the grader reads (OpenAI's reinforcement JSONL). Remove the replies (keep the answer as a "
                        'field, e.g. "answer", for {{ item.answer }}), or train on the examples with method=supervised')


def _check_task_match(data, selection: Selection) -> None:
    """A given test file must hold the training file's task (data.check_task_match=false skips).

    Raises:
        DataError: naming how the test set differs.
    """
    if not (data.test_file and data.get("check_task_match", True)):
        return
    refused = task_match.refusal(
        [ex.messages for ex in selection.splits["train"] + selection.splits["validation"]],
        [ex.messages for ex in selection.splits["test"]], test_set=data.test_file, trained=data.train_file,
        fix="Set data.test_file=<your held-out file for this task>, or data.test_file=null to hold out "
            "data.test_fraction of the training file")
    if refused:
        raise DataError(refused)


def _refuse(data, findings: list[Finding], kept_train: list[dict], run_dir: Path) -> None:
    """Stop on what the data settings make an error (written to the report first).

    Raises:
        DataError: data.too_long=error and an example is too long, data.strict=true and there are findings, or no
            training example is left.
    """
    too_long = [f for f in findings if f.category == "too_long"]
    if data.too_long == "error" and too_long:
        raise DataError(f"{len(too_long)} example(s) longer than data.max_length={data.max_length} "
                        f"(data.too_long=error):\n{listing(too_long)}")
    if data.strict and findings:
        raise DataError(f"data.strict=true and the data has {len(findings)} finding(s); fix them (or set "
                        f"data.strict=false to train on what is usable):\n{listing(findings)}")
    if not kept_train:
        dropped = [f for f in findings if f.drops]
        hint = ("\nEvery conversation ends in a user turn: these look like reinforcement tasks; train on them with "
                "method=reinforcement method.grader=<your grader>" if dropped and
                all(f.category == "no_assistant" for f in dropped) else "")
        raise DataError(f"{data.train_file}: no training example is left after the checks; see "
                        f"{RunFolder(run_dir).data_report.with_suffix('.md')}:\n{listing(dropped)}{hint}")


def _save(run_dir: Path, kept: dict[str, list[dict]], used: dict[str, list], columns: tuple[str, ...] | None) -> None:
    """data/train/ and data/validation/ (tokenized, unless columns is None), and every split's checked records as
    JSONL."""
    from datasets import Dataset, disable_progress_bars, enable_progress_bars

    folder = RunFolder(run_dir)
    folder.data.mkdir(parents=True, exist_ok=True)
    disable_progress_bars()  # one bar per saved split would only add noise to the log
    for name in ("train", "validation"):
        if kept[name] and columns:  # reinforcement tasks: the trainer renders the prompts (training.grpo)
            Dataset.from_list([{k: r[k] for k in columns} for r in kept[name]]).save_to_disk(str(folder.tokenized(name)))
    enable_progress_bars()
    for name in SPLITS:
        _write_jsonl(folder.split(name), used[name])


def run(cfg, tokenizer, eot_ids: set[int], run_dir: Path) -> dict:
    """Read, check, split, tokenize and save the data; write and return the data report.

    Raises:
        DataError: data.strict=true and there are findings, data.too_long=error and an example is too long, or no
            training example is left.
            Also: data.test_file holds another task than data.train_file (lorakit.data.task_match), or the
            training file holds chat examples for method=dpo or method=reinforcement (pairs for
            method=supervised).
        TemplateError: the chat template renders no example at all, or trained turns have no end-of-turn token.
    """
    data = cfg.data
    method = methods.of(cfg)
    fields = method.task_fields(cfg)
    selection = select(data, cfg.seed, tokenizer, ranks_by_validation=cfg.get("optimized_metric") == "validation_loss",
                       task_fields=fields)
    _check_method(cfg, method, selection)
    _check_task_match(data, selection)
    examined = examine(cfg, selection, method.encode, tokenizer, eot_ids, tasks=fields is not None)
    _check_some_rendered(selection, examined.findings)
    report = examined.report
    data_report.write(run_dir, report)
    data_report.log_summary(report)
    _refuse(data, examined.findings, examined.kept["train"], run_dir)
    _save(run_dir, examined.kept, examined.used, method.columns)
    return report
