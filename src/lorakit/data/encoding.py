"""Tokenize the training renderings (lorakit.data.template) and mask everything but the trained replies.

Loss is computed on assistant tokens only (each reply and its end-of-turn token, except replies with weight 0);
system and user tokens, and template text between turns, are masked with -100. The tokens before each trained
reply are checked to be exactly the tokens of its inference prompt: where tokenizing prompt and reply together
merges the two (ChatML's prompt ends with a newline; a reply that starts with blank lines joins it in one token),
the conversation is trained one sequence per turn with prompt and reply tokenized apart. Tokenization is batched
(the tokenizer's Rust batch encoder) and runs in `num_proc` processes for large datasets (datasets.Dataset.map).
"""

from __future__ import annotations

import json
import os

import numpy as np

from lorakit.data.checks import Finding
from lorakit.data.reading import Example
from lorakit.data.template import (
    CONVERSATION,
    Rendering,
    TemplateError,
    per_turn,
    prompt_and_reference,
    rejection,
    training_rendering,
)

IGNORE = -100  # label value that the loss skips

Encoded = tuple[list[int], list[tuple[int, int]]]  # token ids and their character offsets


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


def _tokenize(tokenizer, texts: list[str], offsets: bool = True) -> list[Encoded]:
    """Token ids and (with `offsets`) their character offsets; without, the offsets are empty lists."""
    if not texts:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)  # the Rust tokenizer: no per-token Python conversion
    if backend is not None:
        encodings = backend.encode_batch(texts, add_special_tokens=False)
        return [(e.ids, e.offsets) for e in encodings] if offsets else [(e.ids, []) for e in encodings]
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=offsets)
    return list(zip(enc["input_ids"], enc["offset_mapping"] if offsets else [[]] * len(texts), strict=True))


def _prompts(rendering: Rendering) -> list[str]:
    return [text[:start] for text, spans in rendering.sequences for start, _ in spans]


def _apart(tokenizer, text: str, start: int) -> Encoded:
    """A one-turn sequence with its prompt and its reply tokenized separately (the prompt's tokens as at inference)."""
    (prompt, prompt_offsets), (reply, offsets) = _tokenize(tokenizer, [text[:start], text[start:]])
    return list(prompt) + list(reply), list(prompt_offsets) + [(s + start, e + start) for s, e in offsets]


def _sequences(tokenizer, rendering: Rendering, encoded: list[Encoded], prompts: list[list[int]]) -> list[Encoded] | None:
    """Each sequence's tokens, with every trained reply after exactly its inference prompt's tokens.

    None for a one-sequence conversation whose tokenization merges a prompt's end with its reply.
    """
    prompts, out = iter(prompts), []
    for (text, spans), (ids, offsets) in zip(rendering.sequences, encoded, strict=True):
        if all(ids[:len(p)] == p for p in (next(prompts) for _ in spans)):
            out.append((ids, offsets))
        elif rendering.mode == CONVERSATION:
            return None
        else:
            out.append(_apart(tokenizer, text, spans[0][0]))
    return out


def _prompt_ids(tokenizer, renderings: list[Rendering]) -> list[list[int]]:
    return [ids for ids, _ in _tokenize(tokenizer, [p for r in renderings for p in _prompts(r)], offsets=False)]


def _encode_batch(batch: dict, tokenizer, eot_ids: set[int]) -> dict:
    """datasets.map function: one row per conversation with its sequences' ids and labels, or `error` (a rejection)."""
    conversations = [(json.loads(m), json.loads(t)) for m, t in zip(batch["messages"], batch["tools"], strict=True)]
    ends = tuple(tokenizer.decode([i]) for i in sorted(eot_ids))  # the end-of-turn tokens' text
    renderings, errors = [], []
    for messages, tools in conversations:
        try:
            renderings.append(training_rendering(tokenizer, messages, tools, ends))
            errors.append("")
        except Exception as err:  # noqa: BLE001 - the template's own exception (jinja raise_exception) rejects a row
            renderings.append(Rendering(CONVERSATION, []))
            errors.append(json.dumps(rejection(err)))
    encoded = iter(_tokenize(tokenizer, [text for r in renderings for text, _ in r.sequences]))
    prompts = iter(_prompt_ids(tokenizer, renderings))
    out = {"input_ids": [], "labels": [], "mode": [], "missing_eot": [], "error": errors}
    for rendering, (messages, tools) in zip(renderings, conversations, strict=True):
        seqs = _sequences(tokenizer, rendering, [next(encoded) for _ in rendering.sequences],
                          [next(prompts) for _ in _prompts(rendering)])
        if seqs is None:  # rare: the tokenizer joins a prompt and its reply; train this conversation turn by turn
            rendering = per_turn(tokenizer, messages, tools, ends)
            seqs = _sequences(tokenizer, rendering, _tokenize(tokenizer, [t for t, _ in rendering.sequences]),
                              _prompt_ids(tokenizer, [rendering]))
        ids, labels, missing = [], [], 0
        for (_, spans), (seq_ids, offsets) in zip(rendering.sequences, seqs, strict=True):
            seq_labels, n = label(seq_ids, offsets, spans, eot_ids)
            ids.append(list(seq_ids))
            labels.append(seq_labels)
            missing += n
        out["input_ids"].append(ids)
        out["labels"].append(labels)
        out["mode"].append(rendering.mode)
        out["missing_eot"].append(missing)
    return out


def encode(tokenizer, conversations: list[tuple[list[dict], list | None]], eot_ids: set[int],
           num_proc: int | None = None):
    """Render, tokenize and label (messages, tools) pairs in batches.

    Returns:
        a datasets.Dataset in input order, one row per conversation: input_ids and labels (a list per training
        sequence), mode (template.CONVERSATION or template.TURN), missing_eot (trained turns without an
        end-of-turn token) and error (a template rejection as JSON [category, message], else "").
    """
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
    """Tokenize conversations and label assistant tokens (everything else -100): [{"input_ids", "labels"}], one
    per training sequence (one per conversation, or one per trained turn where the template needs it)."""
    if not conversations:
        return []
    rows = encode(tokenizer, [(c, None) for c in conversations], eot_ids)
    return [{"input_ids": ids, "labels": labels} for r in rows for ids, labels in zip(r["input_ids"], r["labels"],
                                                                                       strict=True)]


def num_proc(data, n: int) -> int | None:
    """Tokenizer processes: data.num_proc, or (null) one per core up to 8 for 20,000+ examples (BENCHMARKS.md)."""
    if data.get("num_proc"):
        return int(data.num_proc) if data.num_proc > 1 else None  # datasets forks a worker even for num_proc=1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cores, 8) if n >= 20_000 and cores > 1 else None


def encode_split(examples: list[Example], tokenizer, eot_ids: set[int], data) -> tuple[list[dict], list[Finding]]:
    """Tokenize one split; apply the too-long policy; return (kept rows, findings).

    A row is one training sequence: one per example, or one per trained turn where the chat template needs it
    (lorakit.data.template); each row keeps its example and the rendering used (its mode).

    Raises:
        TemplateError: when trained turns lack an end-of-turn token (the template or tokenizer is misconfigured).
    """
    if not examples:
        return [], []
    table = encode(tokenizer, [(ex.messages, ex.tools) for ex in examples], eot_ids, num_proc(data, len(examples)))
    rows, found, missing_eot = [], [], 0
    limit, policy = data.max_length, data.too_long
    columns = table.to_dict()  # one conversion from Arrow, not one per row
    for i, ex in enumerate(examples):
        if columns["error"][i]:
            category, message = json.loads(columns["error"][i])
            found.append(Finding(ex.file, ex.line, category, message, True, ex.record))
            continue
        sequences = list(zip(columns["input_ids"][i], columns["labels"][i], strict=True))
        n = max(len(ids) for ids, _ in sequences)
        if n > limit:
            trainable = [(ids[:limit], labels[:limit]) for ids, labels in sequences
                         if any(x != IGNORE for x in labels[:limit])]
            if policy == "truncate" and trainable:
                left_out = len(sequences) - len(trainable)  # turn by turn: a later turn's prompt can exceed the limit
                found.append(Finding(ex.file, ex.line, "too_long", f"{n} tokens > data.max_length={limit}; truncated "
                                     f"to its first {limit} tokens (data.too_long=truncate); the cut reply has no end "
                                     "of turn" + (f"; {left_out} of its {len(sequences)} turns start after the limit "
                                                  "and are not trained" if left_out else ""), False, ex.record))
                sequences = trainable
            else:
                found.append(Finding(ex.file, ex.line, "too_long", f"{n} tokens > data.max_length={limit}" + (
                    "; nothing to train is left in the first max_length tokens" if policy == "truncate" else "") +
                    f" (data.too_long={policy}); raise data.max_length, shorten the example, or set "
                    "data.too_long=truncate", True, ex.record))
                continue
        else:
            missing_eot += columns["missing_eot"][i]
        rows += [{"input_ids": ids, "labels": labels, "length": len(ids), "line": ex.line, "example": ex,
                  "mode": columns["mode"][i], "trained": sum(x != IGNORE for x in labels)} for ids, labels in sequences]
    if missing_eot:
        raise TemplateError(
            f"{missing_eot} trained assistant turn(s) contain none of the end-of-turn tokens {sorted(eot_ids)} "
            f"({tokenizer.convert_ids_to_tokens(sorted(eot_ids))}): the model would never learn to stop. Set the "
            "tokenizer's eos_token (or generation_config.json's eos_token_id) to the token the chat template ends "
            "assistant turns with")
    return rows, found


def prompt_rows(examples: list[Example], tokenizer, max_length: int,
                use: str = "test prompt") -> tuple[list[tuple[Example, int]], list[Finding]]:
    """The examples whose prompt the template renders within max_length with its length in tokens, and findings
    for the others; `use` names the prompt in them ("test prompt", "task prompt")."""
    rendered, found = [], []
    for ex in examples:
        try:
            rendered.append((ex, prompt_and_reference(tokenizer, ex.messages, ex.tools)[0]))
        except Exception as err:  # noqa: BLE001 - the template's own exception rejects the conversation
            found.append(Finding(ex.file, ex.line, *rejection(err), True, ex.record))
    prompts = tokenizer([p for _, p in rendered], add_special_tokens=False)["input_ids"] if rendered else []
    rows = []
    for (ex, _), ids in zip(rendered, prompts, strict=True):  # one batched tokenizer call, not one per example
        n_prompt = len(ids)
        if n_prompt > max_length:
            found.append(Finding(ex.file, ex.line, "too_long", f"{use} of {n_prompt} tokens > data.max_length="
                                 f"{max_length}; not used; raise data.max_length or shorten the prompt", True,
                                 ex.record))
        else:
            rows.append((ex, n_prompt))
    return rows, found


def encode_tasks(examples: list[Example], tokenizer, eot_ids: set[int], data) -> tuple[list[dict], list[Finding]]:
    """Reinforcement tasks whose prompt fits data.max_length, as the report's rows; nothing is tokenized for
    training (the trainer renders each prompt, lorakit.training.grpo). eot_ids: unused, as for the other encoders."""
    rows, found = prompt_rows(examples, tokenizer, data.max_length, "task prompt")
    return [{"example": ex, "length": n, "trained": 0, "mode": CONVERSATION, "line": ex.line} for ex, n in rows], found


def test_rows(test: list[Example], tokenizer, max_length: int) -> tuple[list[Example], list[Finding]]:
    """The test examples whose prompt the template renders within max_length, and findings for the others."""
    rows, found = prompt_rows(test, tokenizer, max_length)
    return [ex for ex, _ in rows], found


def _reply_only(messages: list[dict]) -> list[dict]:
    """The conversation with only its last reply trained (earlier assistant turns are prompt)."""
    return [{**m, "weight": 0} if m["role"] == "assistant" else m for m in messages[:-1]] + [messages[-1]]


def _split_trained(ids: list[int], labels: list[int]) -> tuple[list[int], list[int]]:
    """(the tokens before the trained reply: its inference prompt, the reply's tokens through its end of turn)."""
    trained = [t for t, x in enumerate(labels) if x != IGNORE]
    return ids[:trained[0]], ids[trained[0]:trained[-1] + 1]


def encode_pairs(examples: list[Example], tokenizer, eot_ids: set[int], data) -> tuple[list[dict], list[Finding]]:
    """Tokenize preference pairs: each row holds prompt_ids (exactly the inference prompt's tokens), chosen_ids and
    rejected_ids (each reply through its end-of-turn token), as TRL's DPO collator takes them; the too-long policy
    applies to the prompt with its longer reply (truncate: both replies cut to fit, the prompt kept whole)."""
    if not examples:
        return [], []
    sides = [conv for ex in examples for conv in (_reply_only(ex.messages), _reply_only([*ex.messages[:-1], ex.rejected]))]
    table = encode(tokenizer, [(conv, ex.tools) for conv, ex in zip(sides, [e for e in examples for _ in (0, 1)],
                                                                    strict=True)],
                   eot_ids, num_proc(data, len(sides))).to_dict()
    rows, found, limit = [], [], data.max_length
    for i, ex in enumerate(examples):
        errors = [table["error"][2 * i + k] for k in (0, 1) if table["error"][2 * i + k]]
        if errors:
            found.append(Finding(ex.file, ex.line, *json.loads(errors[0]), True, ex.record))
            continue
        if table["missing_eot"][2 * i] or table["missing_eot"][2 * i + 1]:
            raise TemplateError(f"{ex.file}:{ex.line}: a reply renders without any of the end-of-turn tokens "
                                f"{sorted(eot_ids)}: set the tokenizer's eos_token to the token the chat template "
                                "ends assistant turns with")
        (prompt, chosen), (other_prompt, rejected) = (_split_trained(table["input_ids"][2 * i + k][-1],
                                                                     table["labels"][2 * i + k][-1]) for k in (0, 1))
        if prompt != other_prompt:  # a template that renders the prompt by what follows it (none known does)
            found.append(Finding(ex.file, ex.line, "template_error", "the chat template renders this prompt to other "
                                 "tokens before each reply, so the pair has no one prompt to compare them after",
                                 True, ex.record))
            continue
        n = len(prompt) + max(len(chosen), len(rejected))
        if n > limit:
            if data.too_long != "truncate" or len(prompt) >= limit:
                found.append(Finding(ex.file, ex.line, "too_long", f"{n} tokens (prompt and its longer reply) > "
                                     f"data.max_length={limit} (data.too_long={data.too_long}); raise data.max_length, "
                                     "shorten the pair, or set data.too_long=truncate", True, ex.record))
                continue
            chosen, rejected = chosen[:limit - len(prompt)], rejected[:limit - len(prompt)]
            found.append(Finding(ex.file, ex.line, "too_long", f"{n} tokens > data.max_length={limit}; both replies "
                                 "cut to fit after the whole prompt (data.too_long=truncate)", False, ex.record))
        rows.append({"prompt_ids": prompt, "chosen_ids": chosen, "rejected_ids": rejected, "example": ex,
                     "line": ex.line, "length": 2 * len(prompt) + len(chosen) + len(rejected),
                     "trained": len(chosen) + len(rejected), "mode": table["mode"][2 * i]})
    return rows, found
