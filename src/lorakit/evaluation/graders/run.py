"""Grading: one grader over a batch of (item, answer) pairs, a `Grade` per example.

A score is a float (string_check 0/1, text_similarity in [0, 1], score_model in its range, label_model 1 when the
label passes, python what grade() returns, multi its formula's value). An example that cannot be graded (a
template naming a field the row lacks, a python grader's exception or time limit, an unparseable grading-model
reply, a formula that cannot be computed) scores 0 with the reason in `error` and OpenAI's error flag in `flag`:
it is counted, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lorakit.evaluation.graders import formula, model_graders, python_grader, text
from lorakit.evaluation.graders.templating import MissingVariable, render, sample_of

# ask(model, conversations, sampling_params) -> one reply per conversation: the grading model of score_model and
# label_model graders, supplied by the caller (compare, the server, the reinforcement trainer)
Ask = Callable[[str, list[list[dict]], dict], list[str]]


@dataclass
class Grade:
    score: float
    error: str | None = None
    flag: str | None = None          # OpenAI's name for the error (metadata.errors of graders/run)
    sub: dict[str, float] = field(default_factory=dict)  # a multi grader's graders' scores

    def passed(self, grader: dict) -> bool | None:
        """Whether the score reaches the grader's pass_threshold (None when it has none)."""
        threshold = grader.get("pass_threshold")
        return None if threshold is None else self.error is None and self.score >= threshold


def _rendered(grader: dict, items: list[dict], samples: list[dict]) -> tuple[list, list[Grade | None]]:
    """(input, reference) pairs for the text graders, and the failed examples (a missing variable)."""
    pairs, failed = [], []
    for item, sample in zip(items, samples, strict=True):
        try:
            pairs.append((render(grader["input"], item, sample), render(grader["reference"], item, sample)))
            failed.append(None)
        except MissingVariable as err:
            pairs.append(("", ""))
            failed.append(Grade(0.0, str(err), "invalid_variable_error"))
    return pairs, failed


def _text(grader: dict, items: list[dict], samples: list[dict]) -> list[Grade]:
    pairs, failed = _rendered(grader, items, samples)
    inputs, references = [a for a, _ in pairs], [b for _, b in pairs]
    if grader["type"] == "string_check":
        scores = text.string_check(grader["operation"], inputs, references)
    else:
        scores = text.text_similarity(grader["evaluation_metric"], inputs, references)
    return [f or Grade(s) for f, s in zip(failed, scores, strict=True)]


def _python(grader: dict, items: list[dict], samples: list[dict], limits: python_grader.Limits,
            cancelled) -> list[Grade]:
    outcomes = python_grader.grade(grader["source"], samples, items, limits, cancelled)
    return [Grade(o.score) if o.error is None else Grade(0.0, o.error, o.kind) for o in outcomes]


def _model(grader: dict, items: list[dict], samples: list[dict], ask: Ask | None) -> list[Grade]:
    if ask is None:
        return [Grade(0.0, f"a {grader['type']} grader needs a grading model, and none can be run here",
                      "model_grader_server_error")] * len(items)
    grades: list[Grade | None] = [None] * len(items)
    asked, conversations = [], []
    for i, (item, sample) in enumerate(zip(items, samples, strict=True)):
        try:
            conversations.append(model_graders.messages(grader, item, sample))
            asked.append(i)
        except MissingVariable as err:
            grades[i] = Grade(0.0, str(err), "invalid_variable_error")
    replies = ask(grader["model"], conversations, grader.get("sampling_params") or {}) if conversations else []
    for i, reply in zip(asked, replies, strict=True):
        if grader["type"] == "score_model":
            score = model_graders.parse_score(reply, grader)
            grades[i] = Grade(score) if score is not None else Grade(
                0.0, f"the grading model's reply is not a score in {model_graders.score_range(grader)}: "
                     f"{reply[:200]!r}", "model_grader_parse_error")
        else:
            label = model_graders.parse_label(reply, grader)
            grades[i] = Grade(float(label in grader["passing_labels"])) if label is not None else Grade(
                0.0, f"the grading model's reply is not one of the labels: {reply[:200]!r}",
                "model_grader_parse_error")
    return grades


def _multi(grader: dict, items: list[dict], samples: list[dict], ask: Ask | None,
           limits: python_grader.Limits, cancelled) -> list[Grade]:
    tree = formula.parse(grader["calculate_output"], set(grader["graders"]))
    parts = {name: _grade(sub, items, samples, ask, limits, cancelled) for name, sub in grader["graders"].items()}
    out = []
    for i in range(len(items)):
        sub = {name: grades[i].score for name, grades in parts.items()}
        failed = [(name, grades[i]) for name, grades in parts.items() if grades[i].error]
        if failed:
            name, first = failed[0]
            out.append(Grade(0.0, f"{name}: {first.error}", first.flag, sub))
            continue
        try:
            out.append(Grade(formula.evaluate(tree, sub), sub=sub))
        except formula.FormulaError as err:
            out.append(Grade(0.0, f"calculate_output {err}", "formula_parse_error", sub))
    return out


def _grade(grader: dict, items: list[dict], samples: list[dict], ask: Ask | None,
           limits: python_grader.Limits, cancelled) -> list[Grade]:
    kind = grader["type"]
    if kind in {"string_check", "text_similarity"}:
        return _text(grader, items, samples)
    if kind == "python":
        return _python(grader, items, samples, limits, cancelled)
    if kind in {"score_model", "label_model"}:
        return _model(grader, items, samples, ask)
    return _multi(grader, items, samples, ask, limits, cancelled)


def grade(grader: dict, items: list[dict], outputs: list[str], *, ask: Ask | None = None,
          limits: python_grader.Limits | None = None, samples: list[dict] | None = None,
          cancelled: Callable[[], bool] = lambda: False) -> list[Grade]:
    """One Grade per (item, output); the grader must have passed spec.check.

    samples: the sample namespaces when the caller has more than the text (tool calls); else built from outputs.
    cancelled: once it returns True, python graders stop (their sandboxes killed) and their examples fail.
    """
    samples = samples if samples is not None else [sample_of(o) for o in outputs]
    return _grade(grader, items, samples, ask, limits or python_grader.Limits(), cancelled)
