"""Reading and validating graders: OpenAI's grader JSON (or the same in YAML), every problem reported at once.

A grader file holds one grader (an object with `type`), a list of them, or a mapping of name -> grader. `problems`
is what `POST /v1/fine_tuning/alpha/graders/validate` reports and what every command checks before a model loads:
each problem names the grader's field (`grader.graders.exact.operation`) and the fix.
"""

from __future__ import annotations

import ast
import difflib
import json
from pathlib import Path

import yaml

from lorakit.core.errors import UserError
from lorakit.evaluation.graders import formula, templating
from lorakit.evaluation.graders.model_graders import content_text
from lorakit.evaluation.graders.python_grader import MAX_SOURCE
from lorakit.evaluation.graders.text import SIMILARITY_METRICS, STRING_OPERATIONS, UNAVAILABLE

FIELDS = {  # type -> (required fields, optional fields)
    "string_check": ({"type", "name", "input", "reference", "operation"}, set()),
    "text_similarity": ({"type", "name", "input", "reference", "evaluation_metric"}, {"pass_threshold"}),
    "python": ({"type", "name", "source"}, {"image_tag", "pass_threshold"}),
    "score_model": ({"type", "name", "model", "input"}, {"range", "sampling_params", "pass_threshold"}),
    "label_model": ({"type", "name", "model", "input", "labels", "passing_labels"}, set()),
    "multi": ({"type", "name", "graders", "calculate_output"}, {"range"}),
}
MAX_GRADERS = 8  # in one multi grader: each runs over every example (a python one in a sandbox of its own)
ROLES = ("user", "assistant", "system", "developer")
SAMPLING = {  # a score_model grader's sampling parameter -> (its check, what it must be)
    "temperature": (lambda v: _number(v) and 0 <= v <= 2, "a number from 0 to 2"),
    "top_p": (lambda v: _number(v) and 0 < v <= 1, "a number above 0, at most 1"),
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    "max_completions_tokens": (lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 32768,
                               "a whole number of tokens from 1 to 32768"),
    "reasoning_effort": (lambda v: isinstance(v, str), "a string (it has no meaning here)"),
}


class GraderError(UserError, ValueError):
    """A grader that cannot run; the message lists every problem and its fix."""


def _close(word: str, choices) -> str:
    near = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def _strings(grader: dict, where: str, keys: tuple[str, ...]) -> list[str]:
    out = []
    for key in keys:
        if key in grader and not isinstance(grader[key], str):
            out.append(f"{where}.{key}: must be a string (templates like {{{{ item.answer }}}} allowed)")
        elif key in grader:
            out += templating.problems(grader[key], f"{where}.{key}")
    return out


def _messages(grader: dict, where: str) -> list[str]:
    value = grader.get("input")
    if not isinstance(value, list) or not value:
        return [f"{where}.input: must be a non-empty list of messages ({{role, content}})"]
    out = []
    for i, m in enumerate(value):
        at = f"{where}.input[{i}]"
        if not isinstance(m, dict) or "content" not in m:
            out.append(f"{at}: must be a message with role and content")
            continue
        if m.get("role", "user") not in ROLES:
            out.append(f"{at}.role: {m.get('role')!r} is not one of {', '.join(ROLES)}")
        if not isinstance(m["content"], str | list | dict):
            out.append(f"{at}.content: must be a string or a list of input_text parts")
        else:
            out += templating.problems(content_text(m["content"]), f"{at}.content")
    return out


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _python(grader: dict, where: str) -> list[str]:
    source = grader.get("source")
    if not isinstance(source, str):
        return [f"{where}.source: must be the grader's Python source, defining grade(sample, item)"]
    if len(source.encode()) > MAX_SOURCE:
        return [f"{where}.source: {len(source.encode())} bytes; at most {MAX_SOURCE} (256 KiB)"]
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        return [f"{where}.source: line {err.lineno}: {err.msg}; fix the Python syntax"]
    grade = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "grade"]
    if not grade:
        return [f"{where}.source: defines no top-level grade(sample, item) function; add one returning a float"]
    args = grade[-1].args
    if len(args.posonlyargs + args.args) < 2 and not args.vararg:
        return [f"{where}.source: grade() must take two arguments, (sample, item)"]
    return []


def _model(grader: dict, where: str) -> list[str]:
    out = _messages(grader, where)
    if not isinstance(grader.get("model"), str) or not grader.get("model", "").strip():
        out.append(f"{where}.model: must name the grading model (a conf/model name, a folder, a hub id in the "
                   f"local cache, or openai:<model id>)")
    if grader["type"] == "score_model":
        rng = grader.get("range")
        if rng is not None and not (isinstance(rng, list) and len(rng) == 2 and all(map(_number, rng))
                                    and rng[0] < rng[1]):
            out.append(f"{where}.range: must be two numbers, low < high (the default is [0, 1])")
        params = grader.get("sampling_params") or {}
        if not isinstance(params, dict):
            out.append(f"{where}.sampling_params: must be an object")
        else:
            out += [f"{where}.sampling_params.{k}: not a sampling parameter{_close(k, SAMPLING)}; choose from "
                    f"{', '.join(sorted(SAMPLING))}" for k in params if k not in SAMPLING]
            out += [f"{where}.sampling_params.{k}: {params[k]!r}; must be {what}" for k, (ok, what) in SAMPLING.items()
                    if params.get(k) is not None and not ok(params[k])]
        return out
    labels, passing = grader.get("labels"), grader.get("passing_labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x for x in labels):
        hint = ("; YAML reads yes, no, on, off, true and false as booleans: quote them ('yes')"
                if isinstance(labels, list) and any(isinstance(x, bool) for x in labels) else "")
        out.append(f"{where}.labels: must be a non-empty list of labels (strings){hint}")
    elif len(set(labels)) != len(labels):
        out.append(f"{where}.labels: a label is listed twice")
    elif not isinstance(passing, list) or not passing or not set(passing) <= set(labels):
        out.append(f"{where}.passing_labels: must be a non-empty list of some of the labels ({', '.join(labels)})")
    return out


def _multi(grader: dict, where: str) -> list[str]:
    subs = grader.get("graders")
    if not isinstance(subs, dict) or not subs:
        return [f"{where}.graders: must map names to graders, e.g. {{exact: {{type: string_check, ...}}}}"]
    if len(subs) > MAX_GRADERS:
        return [f"{where}.graders: {len(subs)} graders; a multi grader combines at most {MAX_GRADERS}"]
    out = []
    for name, sub in subs.items():
        if not str(name).isidentifier():
            out.append(f"{where}.graders.{name}: the name must be a word (letters, digits, _) to be used in "
                       f"calculate_output")
        if isinstance(sub, dict) and sub.get("type") == "multi":
            out.append(f"{where}.graders.{name}: a multi grader cannot hold another multi grader")
        else:
            out += problems(sub, f"{where}.graders.{name}")
    try:
        formula.parse(grader.get("calculate_output"), set(subs))
    except formula.FormulaError as err:
        out.append(f"{where}.calculate_output: {err}")
    return out


def problems(grader, where: str = "grader") -> list[str]:
    """Every problem with one grader (an empty list: it can run)."""
    if not isinstance(grader, dict):
        return [f"{where}: must be an object with a type ({', '.join(FIELDS)})"]
    kind = grader.get("type")
    if not isinstance(kind, str) or kind not in FIELDS:
        return [f"{where}.type: {kind!r} is not a grader type{_close(kind, FIELDS)}; choose from {', '.join(FIELDS)}"]
    required, optional = FIELDS[kind]
    out = [f"{where}.{k}: missing; a {kind} grader needs {', '.join(sorted(required - {'type'}))}"
           for k in sorted(required - set(grader))]
    out += [f"{where}.{k}: not a field of a {kind} grader{_close(k, required | optional)}"
            for k in sorted(set(grader) - required - optional)]
    if "name" in grader and (not isinstance(grader["name"], str) or not grader["name"].strip()):
        out.append(f"{where}.name: must be a non-empty string")
    if "pass_threshold" in grader and not _number(grader["pass_threshold"]):
        out.append(f"{where}.pass_threshold: must be a number")
    if kind in {"string_check", "text_similarity"}:
        out += _strings(grader, where, ("input", "reference"))
    if kind == "string_check" and "operation" in grader and grader["operation"] not in STRING_OPERATIONS:
        out.append(f"{where}.operation: {grader['operation']!r} is not one of {', '.join(STRING_OPERATIONS)}"
                   f"{_close(grader['operation'], STRING_OPERATIONS)}")
    metric = grader.get("evaluation_metric")
    if kind == "text_similarity" and "evaluation_metric" in grader:
        if metric not in SIMILARITY_METRICS:
            out.append(f"{where}.evaluation_metric: {metric!r} is not one of {', '.join(SIMILARITY_METRICS)}"
                       f"{_close(metric, SIMILARITY_METRICS)}")
        elif metric in UNAVAILABLE:
            out.append(f"{where}.evaluation_metric: {UNAVAILABLE[metric]}")
    if kind == "python":
        out += _python(grader, where)
    if kind in {"score_model", "label_model"}:
        out += _model(grader, where)
    if kind == "multi":
        out += _multi(grader, where)
    return out


def check(grader, where: str = "grader") -> dict:
    """The grader, when it can run. Raises GraderError listing every problem."""
    found = problems(grader, where)
    if found:
        raise GraderError(f"{len(found)} problem(s) with the grader:\n  " + "\n  ".join(found))
    return grader


def load(source, where: str | None = None) -> dict[str, dict]:
    """name -> grader from a file (.json, .yaml, .yml) or an inline value (one grader, a list, or a mapping).

    Raises GraderError naming the file and every problem.
    """
    if isinstance(source, str | Path) and not str(source).lstrip().startswith(("{", "[")):
        path = Path(source)
        named = f"{where}: {path}" if where else str(path)  # eval.graders: graders.yaml
        where = where or str(path)
        if not path.is_file():
            raise GraderError(f"{named}: no such grader file; give a .yaml or .json file of graders")
        try:
            value = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            raise GraderError(f"{named}: not YAML or JSON ({err})") from None
    else:
        value = json.loads(source) if isinstance(source, str) else source
        where = where or "graders"
    if isinstance(value, dict) and "type" in value:
        value = [value]
    if isinstance(value, dict):
        value = [{"name": name, **g} if isinstance(g, dict) else g for name, g in value.items()]
    if not isinstance(value, list) or not value:
        raise GraderError(f"{where}: holds no grader; write one grader (an object with type), a list, or name: "
                          f"grader pairs")
    found = [p for i, g in enumerate(value)
             for p in problems(g, f"{where}.{g['name']}" if isinstance(g, dict) and isinstance(g.get("name"), str)
                               else f"{where}[{i}]")]
    names = [g["name"] for g in value if isinstance(g, dict) and isinstance(g.get("name"), str)]
    found += [f"{where}: two graders are named {n!r}; each needs its own name" for n in sorted(set(names))
              if names.count(n) > 1]
    if found:
        raise GraderError(f"{len(found)} problem(s) with the graders in {where}:\n  " + "\n  ".join(found))
    return {g["name"]: g for g in value}


def item_fields(grader: dict) -> set[str]:
    """The top-level item fields a grader's templates refer to (each data row must have them)."""
    texts = [grader.get(k) for k in ("input", "reference") if isinstance(grader.get(k), str)]
    if isinstance(grader.get("input"), list):
        texts += [content_text(m.get("content")) for m in grader["input"] if isinstance(m, dict)]
    fields = templating.item_fields(texts)
    for sub in (grader.get("graders") or {}).values() if grader.get("type") == "multi" else ():
        fields |= item_fields(sub)
    return fields
