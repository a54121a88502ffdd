"""Build a training file in Python from Q&A pairs or whole conversations, in OpenAI chat JSONL.

Usage:
    from lorakit.data.dataset import from_conversations, from_qa_pairs, write_jsonl
    write_jsonl("data/mine/train.jsonl",
                from_qa_pairs([("What is 2+2?", "4"), ...], system="Answer with the number only."))
    # then check it:  python -m train stages=[prepare] data.train_file=data/mine/train.jsonl

A multi-turn conversation stays one example in which every assistant turn is trained (one example per turn would
repeat the conversation's start and train on it again and again); `train_on="last"` keeps the earlier replies as
context only (weight 0).
"""

from __future__ import annotations

from collections.abc import Iterable

from lorakit.core.runs import write_jsonl  # noqa: F401 - part of this module's API (its one home: core.runs)


def _system(system: str | None) -> list[dict]:
    return [{"role": "system", "content": system}] if system else []


def from_qa_pairs(pairs: Iterable[tuple[str, str]], system: str | None = None) -> list[dict]:
    """One example per (question, answer): [system], user, assistant.

    Raises:
        TypeError: naming the first pair that is not two strings.
    """
    out = []
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(x, str) for x in pair)):
            raise TypeError(f"pair {i} is {pair!r}; expected (question, answer) strings")
        out.append({"messages": _system(system) + [{"role": "user", "content": pair[0]},
                                                     {"role": "assistant", "content": pair[1]}]})
    return out


def from_conversations(conversations: Iterable[list[dict]], system: str | None = None,
                       train_on: str = "all") -> list[dict]:
    """One example per conversation ({"role", "content"} messages), with `system` added where it has none.

    Args:
        train_on: "all" trains every assistant turn (weights already set are kept); "last" trains only the last
            one and keeps the earlier ones as context (weight 0).
    """
    if train_on not in ("all", "last"):
        raise ValueError(f"train_on={train_on!r}; use 'all' or 'last'")
    out = []
    for conversation in conversations:
        messages = [dict(m) for m in conversation]
        if system and not (messages and messages[0].get("role") == "system"):
            messages = _system(system) + messages
        if train_on == "last":
            replies = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
            for i in replies[:-1]:
                messages[i]["weight"] = 0
        out.append({"messages": messages})
    return out


