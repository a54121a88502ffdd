"""What each row of a decoding batch asks beyond temperature and top_p, applied to the logits at every step, row
by row (one batch holds requests with different asks): OpenAI's logit_bias, frequency and presence penalties, a
grammar the answer must follow (lorakit.inference.grammar), and the log-probabilities of the tokens chosen with
the most likely alternatives.

Log-probabilities are the model's own (log-softmax of its logits before any bias, penalty, mask or temperature),
as OpenAI and vLLM report them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lorakit.inference.grammar import Constraint


@dataclass
class RowRules:
    logit_bias: dict[int, float] = field(default_factory=dict)
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    grammar: str | None = None    # llguidance grammar (lorakit.inference.grammar.json_grammar)
    top_logprobs: int | None = None  # None: no log-probabilities; 0: the chosen token's only

    @property
    def plain(self) -> bool:
        return (not self.logit_bias and not self.frequency_penalty and not self.presence_penalty
                and self.grammar is None and self.top_logprobs is None)


@dataclass
class TokenLogprob:
    token: int
    logprob: float | None  # None: the first token of a prompt (nothing before it)
    top: list[tuple[int, float]]  # the most likely tokens at this step, most likely first


class Rules:
    """A transformers logits processor over a batch of rows (it runs before temperature and top_p). After
    generate(), close(last tokens) records the last step; `logprobs[row]` then holds one TokenLogprob per token
    the row generated (for rows that asked for them)."""

    def __init__(self, rows: list[RowRules], tokenizer, eot_ids: set[int]):
        self.rows = rows
        self.constraints = [Constraint(r.grammar, tokenizer, eot_ids) if r.grammar else None for r in rows]
        self.logprobs: list[list[TokenLogprob]] = [[] for _ in rows]
        self.want = [r.top_logprobs is not None for r in rows]
        self._last: torch.Tensor | None = None  # the previous step's log-softmax, for the rows that asked
        self._counts: torch.Tensor | None = None  # tokens generated so far per row (the penalties)
        self._width: int | None = None
        self._vocab, self._device = 0, torch.device("cpu")

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._vocab, self._device = scores.shape[-1], scores.device
        if self._width is None:
            self._width = input_ids.shape[1]
        elif input_ids.shape[1] > self._width:
            self._chosen(input_ids[:, -1])
        if any(self.want):
            self._last = torch.log_softmax(scores.float(), dim=-1)
        scores = scores.clone()
        vocab = scores.shape[-1]
        for row, rules in enumerate(self.rows):
            for token, bias in rules.logit_bias.items():
                if 0 <= token < vocab:
                    scores[row, token] += bias
            if self.constraints[row] is not None and (mask := self.constraints[row].mask(vocab)) is not None:
                scores[row, ~mask.to(scores.device)] = float("-inf")
        if self._counts is not None:
            freq = torch.tensor([r.frequency_penalty for r in self.rows], device=scores.device)[:, None]
            pres = torch.tensor([r.presence_penalty for r in self.rows], device=scores.device)[:, None]
            scores -= freq * self._counts + pres * (self._counts > 0)
        return scores

    def _chosen(self, tokens: torch.Tensor) -> None:
        """The tokens the previous step chose: log-probabilities, matchers and penalty counts move on."""
        tokens = tokens.to(self._device)
        ids = tokens.tolist()
        for row, token in enumerate(ids):
            if self.constraints[row] is not None:
                self.constraints[row].advance(token)
            if self.want[row] and self._last is not None:
                dist = self._last[row]
                k = self.rows[row].top_logprobs or 0
                top = torch.topk(dist, k) if k else None
                self.logprobs[row].append(TokenLogprob(
                    token, float(dist[token]),
                    list(zip(top.indices.tolist(), top.values.tolist(), strict=True)) if top is not None else []))
        if any(r.frequency_penalty or r.presence_penalty for r in self.rows):
            if self._counts is None:
                self._counts = torch.zeros((len(ids), self._vocab), device=tokens.device)
            self._counts[torch.arange(len(ids), device=tokens.device), tokens] += 1

    def close(self, last_tokens: list[int]) -> None:
        """Record the step generate() ended on (no further call sees its token)."""
        if self._width is not None:
            self._chosen(torch.tensor(last_tokens))
