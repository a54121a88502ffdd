"""The one decoding loop: rows (one answer each) join and leave a running batch between any two decoding steps.

Every answer lorakit's engine gives goes through it: evaluation's greedy batches, the server's requests (through
lorakit.inference.scheduler) and the terminal chat. A row joins with a prefill of its own (its prompt, left-padded
with the other newcomers, each row through its own adapter), and its key/value cache is then joined to the
running batch's: both are left-padded to one width and stacked, and the attention mask hides the padding. Each
step every row chooses its next token (lorakit.inference.rules), the finished rows leave (their cache rows are
dropped), and one forward pass feeds the rest their new token, with each row's own position ids.

Why not transformers' continuous batching: it packs every row into one flattened sequence of paged attention, so
PEFT cannot route rows to different adapters, and its per-request logits processors cover temperature, top-k and
top-p only (no logit_bias, penalties, grammar or log-probabilities). vLLM's engine (lorakit.inference.vllm_engine)
does all this on its own when it is the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from lorakit.inference.rules import RowDecoder, TokenLogprob
from lorakit.inference.streaming import TextStream

BASE = "__base__"  # the adapter name of a row the base model answers (PEFT's name for "no adapter")


@dataclass(eq=False)
class Row:
    """One answer being decoded."""

    prompt_ids: list[int]
    stream: TextStream  # its text, end of turn, stop strings and token limit
    decoder: RowDecoder = field(default_factory=RowDecoder)
    adapter: str = BASE
    echo_top: int | None = None  # the prompt's log-probabilities with this many alternatives (None: not asked)
    on_text: Callable[[str], None] | None = None  # each piece of text as it becomes certain (streaming)
    tokens: list[int] = field(default_factory=list)  # every token chosen, the end of turn included
    prompt_logprobs: list[TokenLogprob] | None = None
    abandoned: bool = False  # nobody waits for it: it leaves at the next step
    owner: object = None  # the caller's (the scheduler's request)
    index: int = 0  # its place among its owner's rows

    @property
    def done(self) -> bool:
        return self.stream.done or self.abandoned

    def take(self, token: int) -> None:
        self.tokens.append(token)
        delta = self.stream.add(token)
        if delta and self.on_text is not None:
            self.on_text(delta)

    def finish(self) -> None:
        delta = self.stream.finish()
        if delta and self.on_text is not None and not self.abandoned:
            self.on_text(delta)


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    """A cache tensor [batch, heads, length, dim] padded with zeros on the left to `width` positions."""
    if t.shape[-2] == width:
        return t
    return torch.nn.functional.pad(t, (0, 0, width - t.shape[-2], 0))


class DecodeLoop:
    """The rows decoding together over one model, and their key/value cache. admit() rows, then step() until
    `rows` is empty; evict() takes rows out mid-way (to join again later: their prompt and tokens so far are
    prefilled again)."""

    def __init__(self, model, *, pad_id: int, mixed: bool):
        """mixed: the model is a PeftModel whose rows go through their own adapters (PEFT's adapter_names)."""
        self.model, self.pad_id, self.mixed = model, pad_id, mixed
        self.device = next(model.parameters()).device
        self.rows: list[Row] = []
        self.cache = None  # transformers DynamicCache over self.rows
        self.mask: torch.Tensor | None = None  # [rows, width] 1 where the cache holds a token
        self.logits: torch.Tensor | None = None  # [rows, vocab]: each row's next-token logits
        self.steps = 0  # forward passes run over the batch (prefills not counted)
        self.row_steps = 0  # the rows those passes decoded, added up

    def _adapters(self, rows: list[Row]) -> dict:
        return {"adapter_names": [r.adapter for r in rows]} if self.mixed else {}

    @torch.inference_mode()
    def admit(self, rows: list[Row]) -> None:
        """Prefill the rows (their prompt and any tokens chosen before an eviction) and join them to the batch."""
        from transformers import DynamicCache

        rows = [r for r in rows if not r.done or r.echo_top is not None and r.prompt_logprobs is None]
        if not rows:
            return
        contexts = [r.prompt_ids + r.tokens for r in rows]
        width = max(len(c) for c in contexts)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, context in enumerate(contexts):
            ids[i, width - len(context):] = torch.tensor(context, dtype=torch.long)
            mask[i, width - len(context):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        echo = any(r.echo_top is not None and r.prompt_logprobs is None for r in rows)
        cache = DynamicCache()
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                         past_key_values=cache, use_cache=True, logits_to_keep=0 if echo else 1,
                         **self._adapters(rows))
        if echo:
            for i, row in enumerate(rows):
                if row.echo_top is not None and row.prompt_logprobs is None:
                    row.prompt_logprobs = _prompt_logprobs(out.logits[i, width - len(row.prompt_ids):],
                                                           row.prompt_ids, row.echo_top)
        keep = [i for i, r in enumerate(rows) if not r.done]  # echo-only rows end at their prefill
        if not keep:
            return
        self._join([rows[i] for i in keep], cache, mask, out.logits[:, -1], torch.tensor(keep, device=self.device))

    def _join(self, rows: list[Row], cache, mask: torch.Tensor, logits: torch.Tensor, keep: torch.Tensor) -> None:
        if len(keep) < mask.shape[0]:
            cache.batch_select_indices(keep)
            mask, logits = mask[keep], logits[keep]
        if self.cache is None:
            self.rows, self.cache, self.mask, self.logits = rows, cache, mask, logits
            return
        width = max(self.mask.shape[1], mask.shape[1])
        for old, new in zip(self.cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([_left_pad(old.keys, width), _left_pad(new.keys, width)])
            old.values = torch.cat([_left_pad(old.values, width), _left_pad(new.values, width)])
        pad = torch.nn.functional.pad
        self.mask = torch.cat([pad(self.mask, (width - self.mask.shape[1], 0)), pad(mask, (width - mask.shape[1], 0))])
        self.logits = torch.cat([self.logits, logits])
        self.rows = self.rows + rows

    def evict(self, rows: list[Row]) -> None:
        """Take rows out of the batch (done, abandoned, or to make room: they may be admitted again)."""
        gone = {id(r) for r in rows}
        keep = [i for i, r in enumerate(self.rows) if id(r) not in gone]
        if len(keep) == len(self.rows):
            return
        if not keep:
            self.clear()
            return
        index = torch.tensor(keep, device=self.device)
        self.cache.batch_select_indices(index)
        self.rows, self.mask, self.logits = [self.rows[i] for i in keep], self.mask[index], self.logits[index]
        first = int(self.mask.any(0).nonzero()[0])  # columns that are padding in every row left are cut off
        if first:
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
            self.mask = self.mask[:, first:]

    def clear(self) -> None:
        """No row is decoding any more (the counters stay)."""
        self.rows, self.cache, self.mask, self.logits = [], None, None, None

    @torch.inference_mode()
    def step(self) -> list[Row]:
        """Each row chooses its next token; the rows that end leave; the others are fed their token. Returns the
        rows that ended (their text finished)."""
        ended = [r for r in self.rows if r.done]
        self.evict(ended)
        if self.rows:
            for row, token in zip(self.rows, self._choose(), strict=True):
                row.take(token)
            now = [r for r in self.rows if r.done]
            self.evict(now)
            ended += now
        if self.rows:
            self._forward()
        for row in ended:
            row.finish()
        return ended

    def _choose(self) -> list[int]:
        plain = [i for i, r in enumerate(self.rows) if r.decoder.greedy_plain]
        tokens = [0] * len(self.rows)
        if plain:
            best = self.logits[plain].argmax(-1).tolist()
            for i, token in zip(plain, best, strict=True):
                tokens[i] = token
        for i, row in enumerate(self.rows):
            if not row.decoder.greedy_plain:
                tokens[i] = row.decoder.choose(self.logits[i])
        return tokens

    def _forward(self) -> None:
        ids = torch.tensor([[r.tokens[-1]] for r in self.rows], dtype=torch.long, device=self.device)
        self.mask = torch.nn.functional.pad(self.mask, (0, 1), value=1)
        positions = self.mask.sum(-1, keepdim=True) - 1
        out = self.model(input_ids=ids, attention_mask=self.mask, position_ids=positions,
                         past_key_values=self.cache, use_cache=True, **self._adapters(self.rows))
        self.logits = out.logits[:, -1]
        self.steps += 1
        self.row_steps += len(self.rows)


def _prompt_logprobs(logits: torch.Tensor, prompt: list[int], top: int) -> list[TokenLogprob]:
    """Per prompt token: its log-probability given the tokens before it (None for the first) and the `top` most
    likely tokens at that place; logits: the prefill's, over the prompt's positions."""
    dist = torch.log_softmax(logits[: len(prompt) - 1].float(), dim=-1)  # position t predicts token t+1
    chosen = dist.gather(1, torch.tensor(prompt[1:], device=dist.device)[:, None])[:, 0].tolist()
    best = torch.topk(dist, top) if top else None
    out = [TokenLogprob(prompt[0], None, [])]
    for t, token in enumerate(prompt[1:]):
        alternatives = list(zip(best.indices[t].tolist(), best.values[t].tolist(), strict=True)) if best else []
        out.append(TokenLogprob(token, chosen[t], alternatives))
    return out


def run(loop: DecodeLoop, rows: list[Row], *, max_rows: int, on_end: Callable[[Row], None] | None = None) -> None:
    """Decode every row to its end, at most max_rows at once, in the order given: a row joins as soon as another
    leaves (no row waits for the longest of a batch)."""
    waiting = list(rows)
    while waiting or loop.rows:
        room = max_rows - len(loop.rows)
        if room > 0 and waiting:
            loop.admit(waiting[:room])
            for row in waiting[:room]:
                if row not in loop.rows:  # it ended at its prefill (echo only)
                    row.finish()
                    if on_end is not None:
                        on_end(row)
            waiting = waiting[room:]
        for row in loop.step():
            if on_end is not None:
                on_end(row)
