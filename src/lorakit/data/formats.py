"""Input formats -> OpenAI-style chat messages, every record with its file and line.

Formats (`data.format`; `auto` tells them apart per file by extension and the first record's keys):
  openai_chat        {"messages": [{"role", "content", "name"?, "weight"?: 0|1, "tool_calls"?}, ...], "tools"?}  JSONL
  sharegpt           {"conversations": [{"from": "human"|"gpt"|"system"|..., "value"}, ...]} JSONL or a JSON array
  alpaca             {"instruction", "input"?, "output", "system"?, "history"?: [[user, assistant], ...]} JSONL/array
  prompt_completion  {"prompt", "completion"}: strings, or lists of messages (TRL's conversational form)
  csv                a header row; data.csv_columns names the prompt, completion and (optional) system columns
  openai_preference, prompt_chosen_rejected   preference pairs for method=dpo (lorakit.data.preferences)

Every format becomes {"role", "content"} messages, plus "weight" on assistant messages that had one (weight 0:
in the conversation, not trained), and OpenAI tool calls as transformers' chat templates expect them
({"type": "function", "function": {"name", "arguments": dict}}). A record that cannot be converted is a Problem:
its text says what is wrong and the fix, its category names the kind of problem (lorakit.data.checks lists them).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

FORMATS = ("auto", "openai_chat", "sharegpt", "alpaca", "prompt_completion", "csv", "openai_preference",
           "prompt_chosen_rejected")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant",
                  "model": "assistant", "bard": "assistant", "bing": "assistant", "system": "system", "tool": "tool",
                  "function_call": "assistant", "function_response": "tool", "observation": "tool"}


# Keys each format knows; anything else is reported as an unknown key (a typo such as "wieght" would otherwise be
# ignored without a word).
RECORD_KEYS = {"openai_chat": {"messages", "tools", "parallel_tool_calls"},
               "sharegpt": {"conversations", "system", "tools", "id"},
               "alpaca": {"instruction", "input", "output", "system", "history"},
               "prompt_completion": {"prompt", "completion"},
               "openai_preference": {"input", "preferred_output", "non_preferred_output"},
               "prompt_chosen_rejected": {"prompt", "chosen", "rejected"}}
MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "refusal"}
TURN_KEYS = {"from", "value", "weight"}


class Problem(str):
    """A record that could not be read: the text says what is wrong and how to fix it; .category says what kind."""

    category: str

    def __new__(cls, text: str, category: str = "malformed") -> Problem:
        problem = super().__new__(cls, text)
        problem.category = category
        return problem


def _not_utf8(raw: bytes, err: UnicodeDecodeError) -> tuple[int, Problem]:
    """(line, problem) for a whole-file decode that failed."""
    return 1 + raw.count(b"\n", 0, err.start), Problem(f"not valid UTF-8 ({err.reason}); re-save the file as UTF-8", "not_utf8")


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
        if pos >= len(text):
            yield line, Problem("the JSON array is not closed with ']'; add it (or convert the file to JSONL)",
                                "not_json")
            return
        if text[pos] == "]":
            rest = text[pos + 1:]
            if rest.strip():  # nothing after the array may go unread
                after = line + text.count("\n", pos, pos + 1 + len(rest) - len(rest.lstrip()))
                yield after, Problem("text after the end of the JSON array, not read; put every record inside the "
                                     "array, or make the file JSONL (one object per line, no brackets)", "not_json")
            return
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            yield (line + text.count("\n", pos, err.pos), Problem(
                f"not valid JSON ({err.msg}); the rest of the array cannot be read. Fix this element, or convert "
                "the file to JSONL (one object per line), where one bad line does not hide the others", "not_json"))
            return
        except RecursionError:
            yield line, Problem(f"{TOO_DEEP}; the rest of the array cannot be read", "not_json")
            return
        yield line, obj
        line += text.count("\n", pos, end)
        pos = end


TOO_DEEP = "JSON nested too deep to read (thousands of brackets); no training record nests like this"


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
    if path.suffix.lower() != ".jsonl" and raw.lstrip()[:1] == b"[":  # one JSON array; .jsonl is always lines
        try:
            yield from _json_array(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            yield _not_utf8(raw, err)
        return
    for number, line in enumerate(raw.split(b"\n"), 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            yield number, Problem(f"not valid UTF-8 ({err.reason} at byte {err.start}); re-save the file as UTF-8",
                                  "not_utf8")
            continue
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except RecursionError:
            yield number, Problem(f"{TOO_DEEP}; fix the line", "not_json")
        except json.JSONDecodeError as err:
            yield number, Problem(f"not valid JSON ({err.msg} at column {err.colno}); fix the line: each line is one JSON object",
                                  "not_json")


def detect(obj: Any, path: Path) -> str | Problem:
    """The format of a file from its first record."""
    if isinstance(obj, dict) and "__csv__" in obj:
        return "csv"
    keys = set(obj) if isinstance(obj, dict) else set()
    for fmt, needed in (("openai_chat", {"messages"}), ("sharegpt", {"conversations"}),
                        ("alpaca", {"instruction", "output"}), ("prompt_completion", {"prompt", "completion"}),
                        ("openai_preference", {"preferred_output"}), ("openai_preference", {"non_preferred_output"}),
                        ("prompt_chosen_rejected", {"chosen"}), ("prompt_chosen_rejected", {"rejected"})):
        if needed <= keys:
            return fmt
    return Problem(f"cannot tell the format of {path} from its first record (keys: {sorted(keys) or type(obj).__name__}); "
                   f"expected messages, conversations, instruction/output, prompt/completion, or preference pairs "
                   f"(input/preferred_output/non_preferred_output, prompt/chosen/rejected), or set data.format to one "
                   f"of {', '.join(FORMATS[1:])}", "unknown_format")


def _text(value: Any, what: str) -> str | Problem:
    if isinstance(value, str):
        return value
    return Problem(f"{what} is {type(value).__name__}; make it a string", "missing_content")


def tool_calls(calls: Any, i: int) -> list[dict] | Problem:
    """OpenAI tool_calls -> transformers' form, with arguments parsed from their JSON string."""
    fix = ('make each tool call {"type": "function", "function": {"name": "...", "arguments": "{\\"key\\": ...}"}} '
           "with arguments a JSON object (or its JSON string)")
    if not isinstance(calls, list) or not calls:
        return Problem(f"message {i} has tool_calls that is not a non-empty list; {fix}", "bad_tool_call")
    out = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            return Problem(f"message {i} has a tool call without a function name; {fix}", "bad_tool_call")
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError as err:
                return Problem(f"message {i}: the arguments of tool call {function['name']!r} are not valid JSON "
                               f"({err.msg}); {fix}", "bad_tool_call")
        if not isinstance(arguments, dict):
            return Problem(f"message {i}: the arguments of tool call {function['name']!r} are "
                           f"{type(arguments).__name__}; {fix}", "bad_tool_call")
        converted = {"type": "function", "function": {"name": function["name"], "arguments": arguments}}
        if isinstance(call.get("id"), str):
            converted["id"] = call["id"]
        out.append(converted)
    return out


def _openai(obj: dict) -> list[dict] | Problem:
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        return Problem('missing or empty "messages" list; add one: {"messages": [{"role": ..., "content": ...}, ...]}',
                       "missing_messages")
    out = []
    for i, msg in enumerate(messages, 1):
        if not isinstance(msg, dict):
            return Problem(f"message {i} is {type(msg).__name__}; make it an object with role and content",
                           "not_object")
        converted = {"role": msg.get("role"), "content": msg.get("content")}
        if msg.get("tool_calls") is not None:
            calls = tool_calls(msg["tool_calls"], i)
            if isinstance(calls, Problem):
                return calls
            converted["tool_calls"] = calls
            converted["content"] = msg.get("content") or ""  # a pure tool call has content null
        for key in ("name", "tool_call_id", "weight"):
            if key in msg:
                converted[key] = msg[key]
        out.append(converted)
    return out


def _sharegpt(obj: dict) -> list[dict] | Problem:
    turns = obj.get("conversations")
    if not isinstance(turns, list) or not turns:
        return Problem('missing or empty "conversations" list; add one: [{"from": "human", "value": ...}, ...]',
                       "missing_messages")
    out = _system(obj)
    for i, turn in enumerate(turns, 1):
        if not isinstance(turn, dict):
            return Problem(f"turn {i} is {type(turn).__name__}; make it an object with from and value", "not_object")
        role = SHAREGPT_ROLES.get(str(turn.get("from", "")).lower())
        if role is None:
            return Problem(f"turn {i} has from={turn.get('from')!r}; use one of {', '.join(SHAREGPT_ROLES)}",
                           "unknown_role")
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
        return Problem(f'"input" is {type(extra).__name__}; make it a string', "missing_content")
    history = obj.get("history") or []
    if not isinstance(history, list) or not all(isinstance(h, list) and len(h) == 2 for h in history):
        return Problem('"history" is not a list of [user, assistant] pairs (earlier turns); fix or remove it',
                       "missing_messages")
    earlier = [{"role": role, "content": text}
               for pair in history for role, text in zip(("user", "assistant"), pair, strict=True)]
    return _system(obj) + earlier + [
        {"role": "user", "content": f"{instruction}\n\n{extra}" if extra.strip() else instruction},
        {"role": "assistant", "content": output}]


def _prompt_completion(obj: dict) -> list[dict] | Problem:
    prompt, completion = obj.get("prompt"), obj.get("completion")
    if isinstance(prompt, list) and isinstance(completion, list):  # TRL's conversational prompt-completion
        return _openai({"messages": prompt + completion})
    for value, what in ((prompt, '"prompt"'), (completion, '"completion"')):
        if not isinstance(value, str):
            return Problem(f"{what} is {type(value).__name__}; make it a string (or make both prompt and "
                           "completion lists of messages)", "missing_content")
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]


def _csv(obj: dict, columns: dict) -> list[dict] | Problem:
    row = obj["__csv__"]
    wanted = {k: v for k, v in columns.items() if v}
    missing = [c for c in wanted.values() if c not in row]
    if missing:
        return Problem(f"column(s) {missing} not in the header {list(row)}; set data.csv_columns.prompt / .completion "
                       "/ .system to the header's names", "missing_messages")
    if None in row:
        return Problem(f"{len(row[None])} more field(s) than the header has columns; quote fields that contain commas",
                       "malformed")
    messages = [{"role": "system", "content": row[wanted["system"]]}] if wanted.get("system") else []
    return messages + [{"role": "user", "content": row[wanted["prompt"]]},
                       {"role": "assistant", "content": row[wanted["completion"]]}]


def to_messages(obj: Any, fmt: str, csv_columns: dict | None = None) -> list[dict] | Problem:
    """One record of a known format -> chat messages (unchecked beyond what the conversion needs)."""
    if fmt == "csv":
        return _csv(obj, csv_columns or {"prompt": "prompt", "completion": "completion", "system": None})
    if not isinstance(obj, dict):
        return Problem(f"a {type(obj).__name__}, not a JSON object; make each record one {fmt} object",
                       "not_object")
    return {"openai_chat": _openai, "sharegpt": _sharegpt, "alpaca": _alpaca,
            "prompt_completion": _prompt_completion}[fmt](obj)


def tools(obj: Any, fmt: str) -> list | None:
    """The record's tool definitions (OpenAI "tools"), passed to the chat template; None when it has none."""
    found = obj.get("tools") if fmt in ("openai_chat", "sharegpt") and isinstance(obj, dict) else None
    return found if isinstance(found, list) and found else None


def unknown_keys(obj: Any, fmt: str) -> list[str]:
    """Keys of a record (and of its messages or turns) that its format does not define, as "key" or "message 2: key"."""
    if fmt not in RECORD_KEYS or not isinstance(obj, dict):
        return []
    found = [repr(k) for k in obj if k not in RECORD_KEYS[fmt]]
    items, known = ((obj.get("messages"), MESSAGE_KEYS) if fmt == "openai_chat" else
                    (obj.get("conversations"), TURN_KEYS) if fmt == "sharegpt" else (None, set()))
    for i, item in enumerate(items if isinstance(items, list) else [], 1):
        if isinstance(item, dict):
            found += [f"message {i}: {k!r}" for k in item if k not in known]
    return found
