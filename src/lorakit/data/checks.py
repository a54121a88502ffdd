"""Dataset findings: what can be wrong with a training example, where it is, and how to fix it.

Every finding names the file, the line and a category. A finding that `drops` its example removes it from the data
(the example cannot be trained on as it is, or a policy says so); the others are warnings and the example is used.
`data.strict=true` turns every finding, warning or not, into a failed run before training (lorakit.stages.prepare).

Categories, and whether they drop the example:
  not_utf8, not_json, not_object, malformed        the record cannot be read                                 drop
  unknown_format                                   no record of the file matches a format                   the file
  missing_messages, missing_content, empty_content the conversation or a message's text is missing           drop
  unknown_role, bad_weight, bad_tool_call          a message the chat template cannot take as it is          drop
  no_assistant, no_trained_turn                    nothing to learn from                                     drop
  role_order                                       the model's chat template rejects the order of roles      drop
  special_token  the model's own control tokens in text (drop); another family's markers (warning)
  unknown_key                                      a key the format does not define, ignored                 warning
  truncated                                        an assistant reply ending in "..."                        warning
  system_prompt                                    a system prompt unlike most examples'                     warning
  duplicate      the same conversation again: drop (data.duplicates=drop) or warning (keep)
  leakage        a training example with a test example's prompt: drop (the test set stays whole)
  too_long       longer than data.max_length: data.too_long=drop | truncate (warning) | error (the run stops)
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from lorakit.core.messages import prompt_of

ROLES = ("system", "user", "assistant", "tool")
# Chat-template markers of the common model families. In a training text they are either parsed as the model's
# own control tokens (and break the turn structure) or taught to the model as plain text.
COMMON_MARKERS = ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>", "[INST]", "[/INST]",
                  "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>",
                  "<start_of_turn>", "<end_of_turn>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>")


@dataclass(frozen=True)
class Finding:
    """One problem of one example: `file:line: category: message` (the message includes the fix)."""

    file: str
    line: int
    category: str
    message: str
    drops: bool  # True: the example is not used
    record: int = -1  # position of the record in its file (0-based): two JSON-array elements may share a line

    @property
    def severity(self) -> str:
        return "error" if self.drops else "warning"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.category}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "severity": self.severity}


class SpecialTokens:
    """Finds control-token strings in text: the target tokenizer's own special tokens and other families' markers."""

    def __init__(self, tokenizer=None):
        own = set(getattr(tokenizer, "all_special_tokens", []) or [])
        for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
            if getattr(token, "special", False):
                own.add(str(token))
        self.own = {t for t in own if t}
        markers = sorted(self.own | set(COMMON_MARKERS), key=len, reverse=True)
        self.pattern = re.compile("|".join(re.escape(m) for m in markers))

    def find(self, text: str) -> str | None:
        match = self.pattern.search(text)
        return match.group(0) if match else None


def check_messages(messages: list[dict], special: SpecialTokens) -> list[tuple[str, str, bool]]:
    """(category, message, drops) for everything wrong with one converted conversation."""
    found = []
    for i, msg in enumerate(messages, 1):
        role, content = msg["role"], msg["content"]
        if role not in ROLES:
            found.append(("unknown_role", f"message {i} has role {role!r}; use one of {', '.join(ROLES)}", True))
            continue
        if not isinstance(content, str):
            found.append(("missing_content", f'message {i} ({role}) has no string "content"; add the text', True))
            continue
        if not content.strip() and not msg.get("tool_calls"):
            found.append(("empty_content", f"message {i} ({role}) is empty; fill it in or remove the message", True))
        if "weight" in msg and (role != "assistant" or msg["weight"] not in (0, 1) or isinstance(msg["weight"], bool)):
            found.append(("bad_weight", f"message {i} ({role}) has weight {msg['weight']!r}; set weight 0 or 1, on "
                          "assistant messages only (0 = keep the turn as context, do not train on it)", True))
        if role == "assistant" and content.rstrip().endswith(("...", "…")):
            found.append(("truncated", f"message {i} (assistant) ends with '...', as if cut off; the model learns to "
                          "stop mid-sentence; complete the reply or remove the example", False))
        marker = special.find(content)
        if marker:
            own = marker in special.own
            found.append(("special_token", f"message {i} ({role}) contains {marker!r}, " + (
                "one of the model's control tokens: it would be read as one and break the conversation; remove it"
                if own else "a chat-template marker of another model family: the model would learn it as text; "
                "remove it (was the data rendered with a template already?)"), own))
    roles = [m["role"] for m in messages]
    if "assistant" not in roles:
        found.append(("no_assistant", "no assistant message; add the reply to train on, or remove the example",
                      True))
    elif not any(m["role"] == "assistant" and m.get("weight", 1) for m in messages):
        found.append(("no_trained_turn", "every assistant message has weight 0; nothing would be trained; set weight "
                      "1 on at least one", True))
    return found


def conversation_key(messages: list[dict], tools: list | None = None) -> str:
    """Identity of a whole example (all messages, weights and tools), for exact duplicates."""
    return json.dumps([messages, tools], sort_keys=True, ensure_ascii=False)


def prompt_key(messages: list[dict]) -> str:
    """Identity of an example's prompt: its messages before the last assistant turn (roles and text only)."""
    return json.dumps([(m["role"], m["content"]) for m in prompt_of(messages)], ensure_ascii=False)


def system_prompt(messages: list[dict]) -> str | None:
    return messages[0]["content"] if messages and messages[0]["role"] == "system" else None


def differing_system_prompts(examples: list) -> list[Finding]:
    """Warnings for examples whose system prompt (or lack of one) differs from the most common one.

    A model fine-tuned with one system prompt learns the behaviour under that prompt; examples with another one (or
    none) teach something else, and at inference time the prompt must match the one trained with.
    """
    counts = Counter(system_prompt(ex.messages) for ex in examples)
    if len(counts) < 2:
        return []
    common, n = counts.most_common(1)[0]
    described = "no system prompt" if common is None else f"the system prompt {shorten(common)}"
    out = []
    for ex in examples:
        mine = system_prompt(ex.messages)
        if mine != common:
            out.append(Finding(ex.file, ex.line, "system_prompt", (
                "no system prompt" if mine is None else f"system prompt {shorten(mine)}") + f", while {n} of "
                f"{len(examples)} examples have {described}; use one system prompt for the task (the one you will "
                "send at inference time)", False, ex.record))
    return out


def shorten(text: str, n: int = 60) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")
