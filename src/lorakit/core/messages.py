"""Chat messages (OpenAI's shape: {"role", "content", ...}): where a conversation's graded reply is, and what comes
before it. A test conversation is scored on its last assistant turn; its prompt is every message before that."""

from __future__ import annotations


def last_reply(messages: list[dict]) -> int | None:
    """The index of the last assistant turn, None when there is none."""
    return next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "assistant"), None)


def prompt_of(messages: list[dict]) -> list[dict]:
    """The messages before the last assistant turn (all of them when there is none)."""
    last = last_reply(messages)
    return messages[: len(messages) if last is None else last]


def through_last_reply(messages: list[dict]) -> list[dict]:
    """The conversation up to and including its last assistant turn."""
    last = last_reply(messages)
    return messages[: len(messages) if last is None else last + 1]


def reply_text(messages: list[dict]) -> str:
    """The text of the last assistant turn ("" when there is none or it has no content)."""
    last = last_reply(messages)
    return "" if last is None else messages[last].get("content") or ""
