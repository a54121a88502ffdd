"""`score_model` and `label_model`: a grading model reads the grader's messages (templates filled in) and replies
with a score or a label. Which model answers is the caller's: `ask(conversations) -> replies` (any lorakit
candidate: a local model or `openai:<id>`, lorakit.evaluation.graders.asking).

OpenAI constrains its grading model's reply to JSON (`{"result": ...}`); a local model gets the format as a last
instruction instead, and its reply is read strictly: the JSON object, or the number (or label) alone. Any other
reply is a parse error for that example (OpenAI's model_grader_parse_error), never a default score.
"""

from __future__ import annotations

import json
import re

from lorakit.evaluation.graders.templating import render

_NUMBER = re.compile(r"\s*(?:\**(?:score|result)\**\s*[:=]?\s*\**\s*)?(-?\d+(?:\.\d+)?)\s*(?:/\s*\d+)?\s*\.?\s*",
                     re.IGNORECASE)


def content_text(content) -> str:
    """A message's content as text: a string, or OpenAI's list of input_text / output_text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    parts = []
    for part in content or []:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and part.get("type") in {"input_text", "output_text", "text"}:
            parts.append(str(part.get("text", "")))
    return "".join(parts)


def messages(grader: dict, item: dict, sample: dict) -> list[dict]:
    """The grading model's conversation for one example, with the reply format as a last instruction.

    Raises MissingVariable (templating) when a template names a field the item or sample lacks.
    """
    out = [{"role": "system" if m.get("role") == "developer" else m.get("role", "user"),
            "content": render(content_text(m.get("content")), item, sample)} for m in grader["input"]]
    if grader["type"] == "score_model":
        low, high = score_range(grader)
        fmt = f"Reply with the score alone: a number from {low:g} to {high:g}."
    else:
        fmt = f"Reply with one label alone, one of: {', '.join(grader['labels'])}."
    if out and out[-1]["role"] == "user":
        out[-1] = {**out[-1], "content": f"{out[-1]['content']}\n\n{fmt}"}
    else:
        out.append({"role": "user", "content": fmt})
    return out


def score_range(grader: dict) -> tuple[float, float]:
    low, high = grader.get("range") or (0, 1)
    return float(low), float(high)


def _result(reply: str):
    try:
        value = json.loads(reply.strip())
    except (json.JSONDecodeError, RecursionError):
        return None
    return value.get("result") if isinstance(value, dict) else value


def parse_score(reply: str, grader: dict) -> float | None:
    """The score in the grader's range, or None when the reply is not a score alone."""
    value = _result(reply)
    if value is None or isinstance(value, bool):  # not JSON, or JSON true/false: the number alone, if it is one
        match = _NUMBER.fullmatch(reply)
        value = float(match.group(1)) if match else None
    if not isinstance(value, int | float):
        return None
    low, high = score_range(grader)
    return float(value) if low <= value <= high else None


def parse_label(reply: str, grader: dict) -> str | None:
    """One of the grader's labels (case and surrounding quotes or punctuation ignored), or None."""
    value = _result(reply)
    text = value if isinstance(value, str) else reply
    cleaned = text.strip().strip("\"'`*.").strip().lower()
    by_lower = {label.lower(): label for label in grader["labels"]}
    return by_lower.get(cleaned)
