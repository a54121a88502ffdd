"""OpenAI's grader templates: `{{ item.<path> }}` and `{{ sample.<path> }}` in a grader's strings.

The item namespace is the data row (any field, nested ones by dots and `[i]`: `{{ item.answer.city }}`,
`{{ item.choices[0] }}`); the sample namespace is the graded model's answer: `output_text` (the text),
`output_json` (the text parsed as JSON, when it is JSON) and `output_tools` (its tool calls, a list). A string value
is put in as it is, any other value as JSON; a path that is not in the row or the answer is an error naming it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from lorakit.core.answers import INVALID, parse_json

TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
NAMESPACES = ("item", "sample")
SAMPLE_FIELDS = ("output_text", "output_json", "output_tools")
_STEP = re.compile(r"\.?([A-Za-z_][\w-]*)|\[(\d+)\]")


class MissingVariable(KeyError):
    """A template's path is not in the item or the sample; str() names it."""

    def __str__(self) -> str:
        return str(self.args[0])


def sample_of(output_text: str, output_tools: list | None = None) -> dict:
    """The sample namespace of one answer."""
    sample = {"output_text": output_text, "output_tools": output_tools or []}
    parsed = parse_json(output_text)
    if parsed is not INVALID:
        sample["output_json"] = parsed
    return sample


def steps(path: str) -> list[str | int] | None:
    """`item.a.b[0]` -> ["item", "a", "b", 0]; None when the path is not of that form."""
    out, at = [], 0
    while at < len(path):
        match = _STEP.match(path, at)
        if not match or (at == 0 and path.startswith((".", "["))):
            return None
        out.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        at = match.end()
    return out or None


def variables(text: str) -> Iterator[str]:
    """The paths a string refers to, as written (`item.answer`, `sample.output_text`)."""
    for match in TEMPLATE.finditer(text):
        yield match.group(1)


def problems(text: str, where: str) -> list[str]:
    """What is wrong with the templates in one grader string (for validate)."""
    out = []
    for path in variables(text):
        parts = steps(path)
        if parts is None or len(parts) < 2:
            out.append(f"{where}: {{{{ {path} }}}} is not a variable; write {{{{ item.<field> }}}} or "
                       f"{{{{ sample.output_text }}}}")
        elif parts[0] not in NAMESPACES:
            out.append(f"{where}: {{{{ {path} }}}}: unknown namespace {parts[0]!r}; the namespaces are item and sample")
        elif parts[0] == "sample" and parts[1] not in SAMPLE_FIELDS:
            out.append(f"{where}: {{{{ {path} }}}}: the sample has {', '.join(SAMPLE_FIELDS)}")
    return out


def lookup(path: str, item: dict, sample: dict):
    """The value at a path. Raises MissingVariable naming the path when it is not there."""
    parts = steps(path)
    value = {"item": item, "sample": sample}
    for i, step in enumerate(parts or []):
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            where = ".".join(str(p) for p in parts[: i + 1])
            raise MissingVariable(f"{{{{ {path} }}}}: {where} is not in the {parts[0]}") from None
    if parts is None:
        raise MissingVariable(f"{{{{ {path} }}}} is not a variable")
    return value


def render(text: str, item: dict, sample: dict) -> str:
    """The string with every template replaced by its value. Raises MissingVariable."""
    def value(match: re.Match) -> str:
        found = lookup(match.group(1), item, sample)
        return found if isinstance(found, str) else json.dumps(found, ensure_ascii=False)

    return TEMPLATE.sub(value, text)


def item_fields(texts: list[str]) -> set[str]:
    """The top-level item fields that these strings refer to (the data check: every row must have them)."""
    fields = set()
    for text in texts:
        for path in variables(text):
            parts = steps(path)
            if parts and len(parts) >= 2 and parts[0] == "item" and isinstance(parts[1], str):
                fields.add(parts[1])
    return fields
