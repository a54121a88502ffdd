"""Input formats -> OpenAI-style chat messages, every record with its file and line.

Formats (`data.format`; `auto` tells them apart per file by extension and the first record's keys):
  openai_chat        {"messages": [{"role", "content", "name"?, "weight"?: 0|1}, ...]}        JSONL
  sharegpt           {"conversations": [{"from": "human"|"gpt"|"system"|..., "value"}, ...]} JSONL or a JSON array
  alpaca             {"instruction", "input"?, "output", "system"?}                           JSONL or a JSON array
  prompt_completion  {"prompt", "completion"}: strings, or lists of messages (TRL's conversational form)
  csv                a header row; data.csv_columns names the prompt, completion and (optional) system columns

Every format becomes {"role", "content"} messages, plus "weight" on assistant messages that had one (weight 0:
in the conversation, not trained). A record that cannot be converted is reported as `file:line: problem`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FORMATS = ("auto", "openai_chat", "sharegpt", "alpaca", "prompt_completion", "csv")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
                  "model": "assistant", "bard": "assistant", "bing": "assistant", "system": "system", "tool": "tool",
                  "function_response": "tool", "observation": "tool"}


class Problem(str):
    """A record that could not be read: the text says what is wrong and how to fix it."""


def _not_utf8(raw: bytes, err: UnicodeDecodeError) -> tuple[int, Problem]:
    """(line, problem) for a whole-file decode that failed."""
    return 1 + raw.count(b"\n", 0, err.start), Problem(f"not valid UTF-8 ({err.reason}); re-save the file as UTF-8")


def _system(obj: dict) -> list[dict]:
    """A leading system message from a record's non-empty "system" string, if it has one."""
    system = obj.get("system")
    return [{"role": "system", "content": system}] if isinstance(system, str) and system.strip() else []


def _json_array(text: str) -> Iterator[tuple[int, Any]]:
    """Elements of a top-level JSON array, each with the line it starts on."""
    decoder = json.JSONDecoder()
    pos, line = text.index("[") + 1, 1 + text.count("\n", 0, text.index("["))
    while True:
        start = pos
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        line += text.count("\n", start, pos)
        if pos >= len(text) or text[pos] == "]":
            return
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            yield (line + text.count("\n", pos, err.pos), Problem(
                f"not valid JSON ({err.msg}); the rest of the array cannot be read. Fix this element, or convert "
                "the file to JSONL (one object per line), where one bad line does not hide the others"))
            return
        yield line, obj
        line += text.count("\n", pos, end)
        pos = end


def records(path: Path, fmt: str) -> Iterator[tuple[int, Any]]:
    """(line, parsed record) for every non-blank record of the file, or (line, Problem) where it cannot be parsed."""
    raw = path.read_bytes()
    if fmt == "csv" or (fmt == "auto" and path.suffix.lower() == ".csv"):
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            yield _not_utf8(raw, err)
            return
        reader = csv.DictReader(io.StringIO(text, newline=""))
        end = 1  # the header's line; a quoted field may span lines, so a record starts after the previous one ends
        for row in reader:
            yield end + 1, {"__csv__": row}
            end = reader.line_num
        return
    if raw.lstrip()[:1] == b"[":
        try:
            yield from _json_array(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            yield _not_utf8(raw, err)
        return
    for number, line in enumerate(raw.split(b"\n"), 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            yield number, Problem(f"not valid UTF-8 ({err.reason} at byte {err.start}); re-save the file as UTF-8")
            continue
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as err:
            yield number, Problem(f"not valid JSON ({err.msg} at column {err.colno}); each line must be one JSON object")


def detect(obj: Any, path: Path) -> str | Problem:
    """The format of a file from its first record."""
    if isinstance(obj, dict) and "__csv__" in obj:
        return "csv"
    keys = set(obj) if isinstance(obj, dict) else set()
    for fmt, needed in (("openai_chat", {"messages"}), ("sharegpt", {"conversations"}),
                        ("alpaca", {"instruction", "output"}), ("prompt_completion", {"prompt", "completion"})):
        if needed <= keys:
            return fmt
    return Problem(f"cannot tell the format of {path} from its first record (keys: {sorted(keys) or type(obj).__name__}); "
                   f"expected messages, conversations, instruction/output or prompt/completion, or set data.format to one "
                   f"of {', '.join(FORMATS[1:])}")


def _text(value: Any, what: str) -> str | Problem:
    if isinstance(value, str):
        return value
    return Problem(f"{what} is {type(value).__name__}, expected a string")


def _openai(obj: dict) -> list[dict] | Problem:
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        return Problem('missing or empty "messages" list; expected {"messages": [{"role": ..., "content": ...}, ...]}')
    out = []
    for i, msg in enumerate(messages, 1):
        if not isinstance(msg, dict):
            return Problem(f"message {i} is {type(msg).__name__}, expected an object with role and content")
        if msg.get("tool_calls") and not isinstance(msg.get("content"), str):
            return Problem(f"message {i} has tool_calls, which lorakit cannot train yet; remove the line or put the "
                           "call in the content as text")
        converted = {"role": msg.get("role"), "content": msg.get("content")}
        if "weight" in msg:
            converted["weight"] = msg["weight"]
        out.append(converted)
    return out


def _sharegpt(obj: dict) -> list[dict] | Problem:
    turns = obj.get("conversations")
    if not isinstance(turns, list) or not turns:
        return Problem('missing or empty "conversations" list; expected [{"from": "human", "value": ...}, ...]')
    out = _system(obj)
    for i, turn in enumerate(turns, 1):
        if not isinstance(turn, dict):
            return Problem(f"turn {i} is {type(turn).__name__}, expected an object with from and value")
        role = SHAREGPT_ROLES.get(str(turn.get("from", "")).lower())
        if role is None:
            return Problem(f"turn {i} has from={turn.get('from')!r}; expected one of {', '.join(SHAREGPT_ROLES)}")
        message = {"role": role, "content": turn.get("value")}
        if "weight" in turn:
            message["weight"] = turn["weight"]
        out.append(message)
    return out


def _alpaca(obj: dict) -> list[dict] | Problem:
    instruction, output = _text(obj.get("instruction"), '"instruction"'), _text(obj.get("output"), '"output"')
    for value in (instruction, output):
        if isinstance(value, Problem):
            return value
    extra = obj.get("input") or ""
    if not isinstance(extra, str):
        return Problem(f'"input" is {type(extra).__name__}, expected a string')
    return _system(obj) + [
        {"role": "user", "content": f"{instruction}\n\n{extra}" if extra.strip() else instruction},
        {"role": "assistant", "content": output}]


def _prompt_completion(obj: dict) -> list[dict] | Problem:
    prompt, completion = obj.get("prompt"), obj.get("completion")
    if isinstance(prompt, list) and isinstance(completion, list):  # TRL's conversational prompt-completion
        return _openai({"messages": prompt + completion})
    for value, what in ((prompt, '"prompt"'), (completion, '"completion"')):
        if not isinstance(value, str):
            return Problem(f"{what} is {type(value).__name__}, expected a string (or both prompt and completion "
                           "as lists of messages)")
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]


def _csv(obj: dict, columns: dict) -> list[dict] | Problem:
    row = obj["__csv__"]
    wanted = {k: v for k, v in columns.items() if v}
    missing = [c for c in wanted.values() if c not in row]
    if missing:
        return Problem(f"column(s) {missing} not in the header {list(row)}; set data.csv_columns.prompt / .completion "
                       "/ .system to the header's names")
    if None in row:
        return Problem(f"{len(row[None])} more field(s) than the header has columns; quote fields that contain commas")
    messages = [{"role": "system", "content": row[wanted["system"]]}] if wanted.get("system") else []
    return messages + [{"role": "user", "content": row[wanted["prompt"]]},
                       {"role": "assistant", "content": row[wanted["completion"]]}]


def to_messages(obj: Any, fmt: str, csv_columns: dict | None = None) -> list[dict] | Problem:
    """One record of a known format -> chat messages (unchecked beyond what the conversion needs)."""
    if fmt == "csv":
        return _csv(obj, csv_columns or {"prompt": "prompt", "completion": "completion", "system": None})
    if not isinstance(obj, dict):
        return Problem(f"expected a JSON object ({fmt} record), got {type(obj).__name__}")
    return {"openai_chat": _openai, "sharegpt": _sharegpt, "alpaca": _alpaca,
            "prompt_completion": _prompt_completion}[fmt](obj)
