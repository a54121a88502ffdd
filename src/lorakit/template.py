"""The chat template: render conversations, find the assistant tokens to train, and check the template itself.

Each example is rendered with the model's own chat template. Loss is computed on assistant tokens only (each
reply and its end-of-turn token, except replies with weight 0); system and user tokens, and template text between
turns, are masked with -100. Tokenization is batched (the tokenizer's Rust batch encoder) and runs in `num_proc`
processes for large datasets (datasets.Dataset.map).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

IGNORE = -100  # label value that the loss skips


class TemplateError(ValueError):
    """The model's chat template cannot be used to locate assistant tokens, or was not saved as trained."""


def end_of_turn_ids(tokenizer, generation_config=None) -> set[int]:
    """Token ids that end an assistant turn: the tokenizer's EOS plus the model's generation EOS ids."""
    ids = {tokenizer.eos_token_id}
    eos = getattr(generation_config, "eos_token_id", None)
    ids.update(eos if isinstance(eos, list) else [eos])
    return {i for i in ids if i is not None}


def template_sha256(tokenizer) -> str:
    """Hash of the chat template text: the same hash means the same rendering."""
    return hashlib.sha256((tokenizer.chat_template or "").encode()).hexdigest()


def supports_tools(tokenizer) -> bool:
    """Whether the chat template renders OpenAI-style tool calls itself."""
    return "tool_calls" in (tokenizer.chat_template or "")


def chat_view(messages: list[dict], tools_in_template: bool) -> list[dict]:
    """The messages as the template gets them: without tool support, tool calls become JSON text in the reply."""
    if tools_in_template:
        return messages
    out = []
    for msg in messages:
        if msg.get("tool_calls"):
            calls = "\n".join(json.dumps({"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
                                         ensure_ascii=False) for c in msg["tool_calls"])
            msg = {**{k: v for k, v in msg.items() if k != "tool_calls"},
                   "content": f"{msg['content']}\n{calls}" if msg["content"] else calls}
        out.append(msg)
    return out


def render(tokenizer, messages: list[dict], tools: list | None = None, **kwargs) -> str:
    return tokenizer.apply_chat_template(chat_view(messages, supports_tools(tokenizer)), tools=tools, tokenize=False,
                                         **kwargs)


def rejection(err: Exception) -> tuple[str, str]:
    """(category, message) for a conversation the chat template refused to render."""
    text = str(err)
    category = "role_order" if any(w in text.lower() for w in ("role", "alternat")) else "template_error"
    return category, (f"the model's chat template rejects this conversation: {text!r}; reorder or merge the "
                      "messages so the template accepts them (e.g. Mistral: user and assistant alternate, starting "
                      "with user)")


def assistant_spans(tokenizer, messages: list[dict], tools: list | None = None) -> tuple[str, list[tuple[int, int]]]:
    """Render a conversation and return it with the character span of every trained assistant turn.

    A turn's span runs from the end of the generation prompt before it to the end of the rendering that
    includes it, so it holds the reply and the template's end-of-turn text.

    Raises:
        TemplateError: when rendering a prefix of the conversation does not give a prefix of the whole.
    """
    full = render(tokenizer, messages, tools)
    spans = []
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant" or msg.get("weight", 1) == 0:  # weight 0: context only, not trained
            continue
        prompt = render(tokenizer, messages[:i], tools, add_generation_prompt=True) if i else ""
        upto = full if i == len(messages) - 1 else render(tokenizer, messages[: i + 1], tools)
        if not full.startswith(prompt) or not full.startswith(upto):
            raise TemplateError(
                "the chat template renders the start of a conversation differently from the whole conversation "
                "(e.g. it rewrites earlier turns), so assistant tokens cannot be located; use a model whose template "
                "is prefix-stable, or train on single-turn examples")
        spans.append((len(prompt), len(upto)))
    return full, spans


def label(ids: list[int], offsets: list[tuple[int, int]], spans: list[tuple[int, int]],
          eot_ids: set[int]) -> tuple[list[int], int]:
    """Labels for one tokenized rendering, and how many trained spans hold no end-of-turn token.

    Within each assistant span, tokens after the last end-of-turn token (e.g. a newline the template adds
    between turns) stay masked: the model should learn to stop, not to write template filler.
    """
    labels = [IGNORE] * len(ids)
    starts = np.fromiter((s for s, _ in offsets), dtype=np.int64, count=len(offsets))
    monotonic = bool(np.all(starts[1:] >= starts[:-1]))
    missing = 0
    for start, end in spans:
        if monotonic:
            inside = range(int(np.searchsorted(starts, start, "left")), int(np.searchsorted(starts, end, "left")))
        else:
            inside = [t for t, (s, _) in enumerate(offsets) if start <= s < end]
        eots = [t for t in inside if ids[t] in eot_ids]
        if eots:
            inside = [t for t in inside if t <= eots[-1]]
        else:
            missing += 1
        for t in inside:
            labels[t] = ids[t]
    return labels, missing


def _encode_batch(batch: dict, tokenizer, eot_ids: set[int]) -> dict:
    """datasets.map function: rendered, tokenized and labelled examples; a rejected one gets `error` and no ids."""
    texts, spans, errors = [], [], []
    for messages, tools in zip(batch["messages"], batch["tools"], strict=True):
        messages, tools = json.loads(messages), json.loads(tools)
        try:
            text, sp = assistant_spans(tokenizer, messages, tools)
            error = ""
        except TemplateError:
            raise
        except Exception as err:  # noqa: BLE001 - the template's own exception (jinja raise_exception) rejects a row
            text, sp, error = "", [], json.dumps(rejection(err))
        texts.append(text)
        spans.append(sp)
        errors.append(error)
    backend = getattr(tokenizer, "backend_tokenizer", None)  # the Rust tokenizer: no per-token Python conversion
    if backend is not None:
        encodings = backend.encode_batch(texts, add_special_tokens=False)
        all_ids, all_offsets = [e.ids for e in encodings], [e.offsets for e in encodings]
    else:
        enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
        all_ids, all_offsets = enc["input_ids"], enc["offset_mapping"]
    out = {"input_ids": [], "labels": [], "missing_eot": [], "error": errors}
    for ids, offsets, sp in zip(all_ids, all_offsets, spans, strict=True):
        labels, missing = label(ids, offsets, sp, eot_ids)
        out["input_ids"].append(list(ids))
        out["labels"].append(labels)
        out["missing_eot"].append(missing)
    return out


def encode(tokenizer, conversations: list[tuple[list[dict], list | None]], eot_ids: set[int],
           num_proc: int | None = None):
    """Render, tokenize and label (messages, tools) pairs in batches; returns a datasets.Dataset in input order
    with input_ids, labels, missing_eot (trained turns without an end-of-turn token) and error (a template
    rejection as JSON [category, message], else "")."""
    from datasets import Dataset, disable_progress_bars, enable_progress_bars

    table = Dataset.from_dict({"messages": [json.dumps(m) for m, _ in conversations],
                               "tools": [json.dumps(t) for _, t in conversations]})
    quiet = len(conversations) < 10_000
    if quiet:
        disable_progress_bars()
    try:
        return table.map(_encode_batch, batched=True, batch_size=1000, num_proc=num_proc,
                         fn_kwargs={"tokenizer": tokenizer, "eot_ids": eot_ids},
                         remove_columns=["messages", "tools"], desc="tokenizing")
    finally:
        if quiet:
            enable_progress_bars()


def tokenize_with_labels(tokenizer, conversations: list[list[dict]], eot_ids: set[int]) -> list[dict[str, list[int]]]:
    """Tokenize conversations and label assistant tokens (everything else -100): [{"input_ids", "labels"}]."""
    if not conversations:
        return []
    rows = encode(tokenizer, [(c, None) for c in conversations], eot_ids)
    return [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]


def prompt_and_reference(tokenizer, messages: list[dict], tools: list | None = None) -> tuple[str, str]:
    """Split a test conversation at its last assistant turn: (rendered prompt, reference reply)."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    reference = chat_view(messages[last:last + 1], supports_tools(tokenizer))[0]["content"]
    return render(tokenizer, messages[:last], tools, add_generation_prompt=True), reference


def verify_saved(tokenizer, saved_dir: Path, conversations: list[tuple[list[dict], list | None]]) -> str:
    """Check that the tokenizer saved beside an adapter renders every conversation as the training one did.

    Returns:
        the template's sha256.

    Raises:
        TemplateError: naming the first conversation rendered differently.
    """
    from transformers import AutoTokenizer

    saved = AutoTokenizer.from_pretrained(str(saved_dir))
    for n, (messages, tools) in enumerate(conversations):
        if render(saved, messages, tools) != render(tokenizer, messages, tools):
            raise TemplateError(f"{saved_dir}: the saved chat template renders training example {n} differently "
                                "from the template it was trained with; inference would not match training. Save "
                                "the training tokenizer with the adapter (tokenizer.save_pretrained)")
    sha = template_sha256(saved)
    if sha != template_sha256(tokenizer):
        raise TemplateError(f"{saved_dir}: the saved chat template differs from the training one")
    return sha
