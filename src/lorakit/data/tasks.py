"""Reinforcement tasks: OpenAI's reinforcement fine-tuning JSONL, one task a line, checked line by line.

A task is `{"messages": [...ending in a user turn], "tools": [...]?, <any other fields>}`: the model answers the
conversation, and the grader reads the other fields as `{{ item.<field> }}` (the whole line is the item). Every
line that cannot be used is a Finding with its file, line and fix, as chat rows are (lorakit.data.checks):
  not_utf8, not_json, not_object      the line cannot be read                                      drop
  missing_messages, missing_content,  the conversation, as for chat rows                           drop
  empty_content, unknown_role, ...
  not_a_task                          the conversation ends in an assistant reply (that is a chat   drop
                                      row: the model answers the last user turn here)
  missing_field                       a field the grader reads is not in the line                  drop
  special_token                       as for chat rows                                             drop / warning
"""

from __future__ import annotations

from pathlib import Path

from lorakit.data import formats
from lorakit.data.checks import Finding, SpecialTokens, check_messages
from lorakit.data.reading import Example, FileRead

CHAT_ONLY = {"no_assistant", "no_trained_turn", "truncated"}  # chat-row findings that do not apply to a task
FORMAT = "tasks"


def _task(obj, needed: set[str], special: SpecialTokens) -> tuple[list[dict], list | None, list] | formats.Problem:
    """(messages, tools, [(category, message, drops)]) of one line, or the Problem that stops it."""
    if not isinstance(obj, dict):
        return formats.Problem(f"a {type(obj).__name__}, not a JSON object; make each line one task object "
                               '{"messages": [...], <the fields your grader reads>}', "not_object")
    messages = formats.to_messages(obj, "openai_chat")
    if isinstance(messages, formats.Problem):
        return messages
    found = [f for f in check_messages(messages, special) if f[0] not in CHAT_ONLY]
    if messages and messages[-1]["role"] != "user":
        found.append(("not_a_task", f"the last message's role is {messages[-1]['role']!r}; a task ends with "
                      "the user turn the model answers (remove the reply, or train it with method=supervised)", True))
    found += [("missing_field", f'the grader reads item.{name}, and this line has no "{name}"; add it (or fix the '
               f"grader's template)", True) for name in sorted(needed - set(obj))]
    return messages, formats.tools(obj, "openai_chat"), found


def read_tasks(path: str | Path, needed: set[str] = frozenset(), special: SpecialTokens | None = None) -> FileRead:
    """Read and check every line of a tasks file; `needed`: the item fields the grader refers to. Each usable line
    is an Example whose `item` is the line as read."""
    path = Path(path)
    special = special or SpecialTokens()
    out = FileRead(str(path), format=FORMAT)
    for number, obj in formats.records(path, "openai_chat"):
        out.records += 1
        record = out.records - 1
        result = obj if isinstance(obj, formats.Problem) else _task(obj, set(needed), special)
        if isinstance(result, formats.Problem):
            out.findings.append(Finding(str(path), number, result.category, str(result), True, record))
            continue
        messages, tools, found = result
        findings = [Finding(str(path), number, c, m, d, record) for c, m, d in found]
        out.findings += findings
        if not any(f.drops for f in findings):
            out.examples.append(Example(str(path), number, messages, tools, record, item=obj))
    return out
