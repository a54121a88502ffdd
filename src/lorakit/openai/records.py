"""lorakit's chat records -> OpenAI's exact chat format: for hosted fine-tuning files and chat requests.

lorakit keeps tool-call arguments parsed and its own bookkeeping (file, line, record) beside the messages;
OpenAI wants tool-call arguments as JSON strings and nothing but `messages` (and `tools`) on a line.
"""

from __future__ import annotations

import json

from lorakit.core.messages import last_reply, prompt_of

MESSAGE_KEYS = ("role", "content", "name", "tool_call_id", "weight")


def message(msg: dict, *, weight: bool = True) -> dict:
    out = {k: msg[k] for k in MESSAGE_KEYS if k in msg and (weight or k != "weight")}
    if msg.get("tool_calls"):
        out["tool_calls"] = [{"id": call.get("id") or f"call_{i}", "type": "function",
                              "function": {"name": call["function"]["name"],
                                           "arguments": json.dumps(call["function"]["arguments"], ensure_ascii=False)}}
                             for i, call in enumerate(msg["tool_calls"])]
        out["content"] = msg.get("content") or None
    return out


def training_record(row: dict) -> dict:
    """One line of an OpenAI fine-tuning file from a row of data/{train,validation}.jsonl: a chat example, or for a
    preference pair ("rejected" beside the messages) a line of OpenAI's DPO format, for a reinforcement task its line
    as read (messages and the grader's fields)."""
    if row.get("item") is not None and last_reply(row["messages"]) is None:
        return row["item"]
    if row.get("rejected"):
        given = {"messages": [message(m, weight=False) for m in row["messages"][:-1]]}
        if row.get("tools"):
            given["tools"] = row["tools"]
        return {"input": given, "preferred_output": [message(row["messages"][-1], weight=False)],
                "non_preferred_output": [message(row["rejected"], weight=False)]}
    record = {"messages": [message(m) for m in row["messages"]]}
    if row.get("tools"):
        record["tools"] = row["tools"]
    return record


def prompt_messages(messages: list[dict]) -> list[dict]:
    """The conversation up to its last assistant turn, as a chat request's messages (no weights)."""
    return [message(m, weight=False) for m in prompt_of(messages)]
