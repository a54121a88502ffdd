"""Graders as metrics of a comparison (`eval.graders=graders.yaml`, lorakit.evaluation.graders): each grader
scores every candidate's answers per example, and gets its interval and paired tests like any metric.

The item namespace of a test row is the row as the file holds it (messages, tools and any other fields), plus
`reference`, the reply the row ends with (unless the row has a field of that name): a grader written for OpenAI's
evals (`{{ item.reference_answer }}`) reads the same fields here, and one written for a chat test file can compare
with `{{ item.reference }}`. An example a grader cannot grade scores 0 and is listed with its reason.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

from lorakit.evaluation import judge
from lorakit.evaluation.candidates import API, CandidateError
from lorakit.evaluation.graders import spec
from lorakit.evaluation.graders.run import Ask, Grade, grade
from lorakit.evaluation.metrics import METRICS, Metric
from lorakit.inference.engine import Engine

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


def check_models(graders: dict[str, dict]) -> list[str]:
    """Problems with the grading models of score_model / label_model graders, found without loading them."""
    problems = []
    for name, grader in graders.items():
        subs = list(grader["graders"].values()) if grader["type"] == "multi" else [grader]
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
    """Each test row's item namespace: its fields but the file position, and `reference` unless it has one."""
    return [{"reference": ref, **{k: v for k, v in row.items() if k not in {"file", "line"}}}
            for row, ref in zip(rows, references, strict=True)]


def asker(cfg: DictConfig, engine: Engine, api, cache, cuda: bool) -> Ask:
    """The model graders' ask: each grading model loaded once (the comparison's model released first), or
    asked through the API endpoint (openai:<id>); greedy replies through the generation cache."""
    loaded: dict[str, tuple] = {}

    def ask(model: str, conversations: list[list[dict]], sampling: dict) -> list[str]:
        if model not in loaded:
            grading = judge.load(model, engine.base.attn_implementation)
            if grading.api_model:
                if api is None:
                    raise CandidateError(f"grader model {model}: no API endpoint is set up (eval.openai)")
                runner = api
            else:
                engine.release()
                runner = Engine(grading.base, quant=engine.quant, batch_size=engine.batch_size, cuda=cuda)
            loaded[model] = (grading, runner)
        grading, runner = loaded[model]
        max_new = int(sampling.get("max_completions_tokens") or GRADER_MAX_TOKENS)
        return judge.asker(grading, runner, cache, max_new_tokens=max_new, seed=cfg.seed,
                           quant=engine.quant)(conversations, f"grader model {model}")

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
