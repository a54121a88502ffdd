"""Preference pairs (method=dpo): one prompt, a preferred and a non-preferred reply, read from either form users have.

Formats (`data.format`; `auto` tells them from the first record's keys):
  openai_preference       OpenAI's DPO file: {"input": {"messages": [...], "tools"?: [...]},
                          "preferred_output": [{"role": "assistant", ...}], "non_preferred_output": [{...}]}
  prompt_chosen_rejected  {"prompt", "chosen", "rejected"}: strings, or lists of messages (TRL's conversational form;
                          "chosen"/"rejected" hold the reply only, the prompt is not repeated)

A pair becomes the conversation `prompt + [preferred]` (checked, split and evaluated like a chat example: the
preferred reply is the test reference) and the non-preferred reply beside it. A record that cannot be a pair is a
formats.Problem naming what is wrong and the fix.
"""

from __future__ import annotations

from typing import Any

from lorakit.data import formats
from lorakit.data.formats import Problem

PAIR_FORMATS = ("openai_preference", "prompt_chosen_rejected")
SIDES = {"openai_preference": ("preferred_output", "non_preferred_output"),
         "prompt_chosen_rejected": ("chosen", "rejected")}


def _prompt(obj: dict, fmt: str) -> tuple[list[dict], list | None] | Problem:
    """The prompt's messages and tools."""
    if fmt == "openai_preference":
        given = obj.get("input")
        if not isinstance(given, dict):
            return Problem('"input" is missing or not an object; make it {"messages": [{"role": "user", ...}, ...]}',
                           "missing_messages")
        messages = formats.to_messages(given, "openai_chat")
        return messages if isinstance(messages, Problem) else (messages, formats.tools(given, "openai_chat"))
    prompt = obj.get("prompt")
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}], None
    if isinstance(prompt, list):
        messages = formats.to_messages({"messages": prompt}, "openai_chat")
        return messages if isinstance(messages, Problem) else (messages, None)
    return Problem(f'"prompt" is {type(prompt).__name__}; make it a string or a list of messages', "missing_messages")


def _reply(obj: dict, key: str) -> dict | Problem:
    """One side of the pair as a single assistant message."""
    value = obj.get(key)
    if value is None:
        return Problem(f'"{key}" is missing; every pair needs both replies (one preferred, one not)', "missing_output")
    if isinstance(value, str):
        value = [{"role": "assistant", "content": value}]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or len(value) != 1:
        n = len(value) if isinstance(value, list) else type(value).__name__
        return Problem(f'"{key}" holds {n} message(s); make it a list of exactly one assistant message '
                       '[{"role": "assistant", "content": "..."}] (or a string)', "bad_output")
    messages = formats.to_messages({"messages": value}, "openai_chat")
    if isinstance(messages, Problem):
        return Problem(f'"{key}": {messages}', messages.category)
    reply = messages[0]
    if reply.get("role") != "assistant":
        return Problem(f'"{key}" is a {reply.get("role")!r} message; an output is the assistant\'s reply: set its role '
                       'to "assistant" (the prompt goes in ' + ('"input"' if key.endswith("output") else '"prompt"') + ")",
                       "bad_output_role")
    if not (reply.get("content") or "").strip() and not reply.get("tool_calls"):
        return Problem(f'"{key}" is empty; give the reply text (or a tool call)', "empty_output")
    return {k: v for k, v in reply.items() if k != "weight"}


def to_pair(obj: Any, fmt: str) -> tuple[list[dict], dict, list | None] | Problem:
    """One preference record -> (prompt + [preferred reply], non-preferred reply, tools)."""
    if not isinstance(obj, dict):
        return Problem(f"a {type(obj).__name__}, not a JSON object; make each record one {fmt} object", "not_object")
    prompt = _prompt(obj, fmt)
    if isinstance(prompt, Problem):
        return prompt
    messages, tools = prompt
    if messages[-1].get("role") == "assistant":
        return Problem("the prompt ends with an assistant message; the prompt is what comes before the replies: move "
                       "that message into the outputs, or end the prompt with the user's turn", "prompt_ends_with_reply")
    preferred_key, other_key = SIDES[fmt]
    preferred, other = _reply(obj, preferred_key), _reply(obj, other_key)
    for side in (preferred, other):
        if isinstance(side, Problem):
            return side
    if preferred == other:
        return Problem(f'"{preferred_key}" and "{other_key}" are the same reply; a pair teaches nothing unless the two '
                       "differ: fix one side or remove the record", "identical_outputs")
    return messages + [preferred], other, tools
