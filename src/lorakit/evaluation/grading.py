"""Graders as metrics of a comparison (`eval.graders=graders.yaml`, lorakit.evaluation.graders): each grader
scores every candidate's answers per example, and gets its interval and paired tests like any metric.

The item namespace of a test row is the row as the file holds it (messages, tools and any other fields), plus
`reference`, the reply the row ends with (unless the row has a field of that name): a grader written for OpenAI's
evals (`{{ item.reference_answer }}`) reads the same fields here, and one written for a chat test file can compare
with `{{ item.reference }}`. An example a grader cannot grade scores 0 and is listed with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

from lorakit.core.sandbox import SandboxUnavailable
from lorakit.evaluation import judge
from lorakit.evaluation.candidates import API, CandidateError
from lorakit.evaluation.graders import python_grader, spec
from lorakit.evaluation.graders.run import Ask, Grade, grade
from lorakit.evaluation.metrics import METRICS, Metric
from lorakit.inference import engines
from lorakit.openai.api import endpoint

log = logging.getLogger(__name__)

GRADER_MAX_TOKENS = 16  # a grading model's reply is a score or a label; sampling_params.max_completions_tokens raises it
SHOWN_FAILURES = 5      # failed examples listed per grader and candidate in compare.json


def load(value) -> dict[str, dict]:
    """eval.graders (a file, or graders inline) as name -> grader. Raises GraderError naming every problem."""
    value = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    graders = spec.load(value, where="eval.graders")
    clash = sorted(set(graders) & set(METRICS))
    if clash:
        raise spec.GraderError(f"eval.graders: {', '.join(clash)} is the name of a built-in metric; name the "
                               f"grader otherwise (e.g. {clash[0]}_grader)")
    return graders


def method_grader(method) -> tuple[str, dict]:
    """method.grader of a method=reinforcement run (a file, or one grader inline): its (name, grader).

    Raises:
        GraderError: naming every problem, or when it holds several graders (a multi grader combines them).
    """
    if not method.get("grader"):
        raise spec.GraderError("method.grader: method=reinforcement trains on a grader's scores; set "
                               "method.grader=graders.yaml (one grader, in OpenAI's grader JSON or YAML)")
    value = method.grader
    graders = spec.load(OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value,
                        where="method.grader")
    if len(graders) > 1:
        raise spec.GraderError(f"method.grader: holds {len(graders)} graders ({', '.join(graders)}); the reward is "
                               'one grader: combine them in a {"type": "multi", "graders": {...}, '
                               '"calculate_output": "..."} grader')
    return next(iter(graders.items()))


def check_can_run(graders: dict[str, dict]) -> list[str]:
    """Problems with the grading models of score_model / label_model graders, found without loading them, and
    python graders where no sandbox can be made."""
    problems = []
    for name, grader in graders.items():
        subs = list(grader["graders"].values()) if grader["type"] == "multi" else [grader]
        if any(sub["type"] == "python" for sub in subs):
            try:
                python_grader.require()
            except SandboxUnavailable as err:
                problems.append(f"graders.{name}: a python grader cannot run here: {err}")
        for sub in subs:
            if sub["type"] in {"score_model", "label_model"} and not sub["model"].startswith(API):
                try:
                    judge.model_config(sub["model"])
                except CandidateError as err:
                    problems.append(f"eval.graders.{name}: {err}".replace("eval.judge.model", "model"))
    return problems


def needs_model(graders: dict[str, dict]) -> bool:
    """Whether a grader (or a multi grader's part) asks a grading model."""
    return any(g["type"] in {"score_model", "label_model"} or (g["type"] == "multi" and needs_model(g["graders"]))
               for g in graders.values())


def items_of(rows: list[dict], references: list[str]) -> list[dict]:
    """Each test row's item namespace: a task's line as read (lorakit.data.tasks), else the row's fields but its
    place in the file; with `reference` unless it has one."""
    return [{"reference": ref, **(row["item"] if isinstance(row.get("item"), dict) else
                                  {k: v for k, v in row.items() if k not in {"file", "line", "record"}})}
            for row, ref in zip(rows, references, strict=True)]


def asker(cfg: DictConfig, api, cache, cuda: bool, *, quant: dict | None, batch_size: int,
          attn_implementation: str, before_load: Callable[[], None] | None = None) -> Ask:
    """The model graders' ask: each grading model loaded once (before_load first: a comparison releases its own
    model), or asked through the API endpoint (openai:<id>; `api`, else one made from eval.openai); greedy
    replies through the generation cache."""
    loaded: dict[str, tuple] = {}

    def ask(model: str, conversations: list[list[dict]], sampling: dict) -> list[str]:
        nonlocal api
        if model not in loaded:
            grading = judge.load(model, attn_implementation)
            if grading.api_model:
                if api is None:
                    api = engines.api(endpoint(cfg))
                runner = api
            else:
                if before_load is not None:
                    before_load()
                runner = engines.make("lorakit", grading.base, quant=quant, batch_size=batch_size, cuda=cuda)
            loaded[model] = (grading, runner)
        grading, runner = loaded[model]
        max_new = int(sampling.get("max_completions_tokens") or GRADER_MAX_TOKENS)
        return judge.asker(grading, runner, cache, max_new_tokens=max_new, seed=cfg.seed,
                           quant=quant)(conversations, f"grader model {model}")

    return ask


def _bounded(grader: dict) -> bool:
    if grader["type"] in {"string_check", "text_similarity", "label_model"}:
        return True
    return grader["type"] == "score_model" and list(grader.get("range") or [0, 1]) == [0, 1]


def metrics(graders: dict[str, dict], items: list[dict], ask: Ask | None) -> tuple[dict[str, Metric], dict]:
    """(name -> Metric for the scoring, name -> {answers tuple: grades}: what each grading gave, for failures)."""
    graded: dict[str, dict[tuple, list[Grade]]] = {name: {} for name in graders}
    table = {}
    for name, grader in graders.items():
        def per_example(predictions, references, name=name, grader=grader) -> list[float]:
            key = tuple(predictions)
            if key not in graded[name]:
                graded[name][key] = grade(grader, items, list(predictions), ask=ask)
            return [g.score for g in graded[name][key]]

        binary = grader["type"] in {"string_check", "label_model"}
        table[name] = Metric(name, per_example, binary=binary, bounded=_bounded(grader))
    return table, graded


def failures(graders: dict[str, dict], graded: dict, outputs: dict[str, list[str]], rows: list[dict]) -> dict:
    """compare.json's "graders": per grader its type and, per candidate, how many examples failed and the first
    few with their reasons."""
    out = {}
    for name, grader in graders.items():
        entry = {"type": grader["type"], "failed": {}, "failures": {}}
        for cand, answers in outputs.items():
            grades = graded[name].get(tuple(answers), [])
            failed = [(row, g) for row, g in zip(rows, grades, strict=False) if g.error]
            entry["failed"][cand] = len(failed)
            entry["failures"][cand] = [{"file": r.get("file"), "line": r.get("line"), "error": g.error,
                                        "flag": g.flag} for r, g in failed[:SHOWN_FAILURES]]
            if failed:
                log.warning("grader %s: %d of %d %s answers not graded (scored 0), e.g. line %s: %s", name,
                            len(failed), len(grades), cand, failed[0][0].get("line"), failed[0][1].error)
        out[name] = entry
    return out
