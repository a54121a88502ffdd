"""Does the test file hold the task the training file teaches? Checked before training, when data.test_file is
a separate file: a held-out set of another task measures nothing about the adapter.

Two signals, each chosen to stay quiet on real data whose examples vary:
- the system prompts, when each file uses a few fixed ones (a task prompt) and the two sets do not meet;
  per-example system prompts (personas, retrieved context) are not compared;
- the shape of the answers (the last assistant reply): JSON objects vs labels vs free text, JSON objects
  without a key in common, or label sets without a label in common.
"""

from __future__ import annotations

from collections import Counter

from lorakit.core.answers import label_of, parse_json, task_kind
from lorakit.core.messages import reply_text
from lorakit.data.checks import shorten, system_prompt

FIXED_PROMPTS = 5      # a file whose examples use at most this many distinct system prompts ...
FIXED_SHARE = 0.8      # ... for at least this share of its examples uses fixed task prompts
JSON_SHARE = 0.9       # answers are JSON objects when at least this share of them are


def _fixed_prompts(conversations: list[list[dict]]) -> set[str] | None:
    """The file's task prompts when it uses a few fixed ones; None otherwise (none, or per-example prompts)."""
    counts = Counter(system_prompt(messages) for messages in conversations)
    prompts = [(p, n) for p, n in counts.most_common(FIXED_PROMPTS) if p is not None]
    if not prompts or sum(n for _, n in prompts) < FIXED_SHARE * len(conversations):
        return None
    return {p for p, _ in prompts}


def _shape(replies: list[str]) -> tuple[str, set[str]]:
    """(task kind, its vocabulary: JSON keys for JSON objects, the labels for a label set, nothing for text).
    JSON when at least JSON_SHARE of the replies are JSON objects (a few broken ones do not change the task)."""
    objects = [o for o in map(parse_json, replies) if isinstance(o, dict)]
    if len(objects) >= JSON_SHARE * len(replies):
        return "json", {k for o in objects for k in o}
    kind = task_kind(replies)
    return kind, {label_of(r) for r in replies} if kind == "label" else set()


def mismatches(train: list[list[dict]], test: list[list[dict]]) -> list[str]:
    """Reasons the test conversations (message lists) look like another task than the training ones (empty when
    they match)."""
    if not train or not test:
        return []
    reasons = []
    train_prompts, test_prompts = _fixed_prompts(train), _fixed_prompts(test)
    if train_prompts and test_prompts and not train_prompts & test_prompts:
        reasons.append(f"different system prompts: training uses {', '.join(map(shorten, sorted(train_prompts)))}; "
                       f"the test set {', '.join(map(shorten, sorted(test_prompts)))}")
    train_kind, train_vocab = _shape([reply_text(messages) for messages in train])
    test_kind, test_vocab = _shape([reply_text(messages) for messages in test])
    described = {"json": "JSON objects", "label": "labels", "text": "free text"}
    if (train_kind == "json") != (test_kind == "json"):  # labels vs free text depends on thresholds: not compared
        reasons.append(f"different answers: training answers are {described[train_kind]}, test answers "
                       f"{described[test_kind]}")
    elif train_kind == test_kind == "json" and not train_vocab & test_vocab:
        reasons.append(f"JSON answers without a key in common: training {sorted(train_vocab)[:8]}, test "
                       f"{sorted(test_vocab)[:8]}")
    elif train_kind == test_kind == "label" and not train_vocab & test_vocab:
        reasons.append(f"label answers without a label in common: training {sorted(train_vocab)[:8]}, test "
                       f"{sorted(test_vocab)[:8]}")
    return reasons


def refusal(train: list[list[dict]], test: list[list[dict]], *, test_set: str, trained: str, fix: str) -> str | None:
    """Why a test set is refused as another task than the training one, with the fix (None: it matches). The
    prepare stage and lorakit.compare both refuse with it (data.check_task_match=false skips the check)."""
    reasons = mismatches(train, test)
    if not reasons:
        return None
    return (f"the test set {test_set} does not look like the task of {trained}:\n- " + "\n- ".join(reasons)
            + f"\nEvaluating on it would measure another task. {fix} (or data.check_task_match=false if this is "
            "intended)")
