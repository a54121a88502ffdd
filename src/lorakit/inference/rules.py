"""How each row of a decoding batch chooses its next token, row by row (one batch holds requests with different
asks): its temperature, top_p and seed, and OpenAI's logit_bias, frequency and presence penalties, a
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


class RowDecoder:
    """One row's choice of its next token at each step: its rules applied to its own logits (bias, grammar mask,
    penalties), then greedy at temperature 0, else sampled with its temperature and nucleus top_p (no top-k, as
    OpenAI's API), from its own random generator when a seed is given (the same answer whatever shares its batch).
    `logprobs` holds one TokenLogprob per token chosen, for a row that asked for them."""

    def __init__(self, rules: RowRules | None = None, *, temperature: float = 0.0, top_p: float = 1.0,
                 seed: int | None = None, constraint: Constraint | None = None):
        self.rules, self.temperature, self.top_p, self.seed = rules or RowRules(), temperature, top_p, seed
        self.constraint = constraint
        self.logprobs: list[TokenLogprob] | None = [] if self.rules.top_logprobs is not None else None
        self._counts: torch.Tensor | None = None  # how often each token was chosen (the penalties)
        self._generator: torch.Generator | None = None

    @property
    def greedy_plain(self) -> bool:
        """The next token is the argmax of the raw logits (no rule, no sampling, nothing to record)."""
        return self.temperature == 0 and self.rules.plain and self.constraint is None

    def choose(self, logits: torch.Tensor) -> int:
        """The next token from this row's logits (1-D, the model's vocabulary); the row's state moves on."""
        raw = logits.float()
        if (self.rules.frequency_penalty or self.rules.presence_penalty) and self._counts is None:
            self._counts = torch.zeros(raw.shape[-1], device=raw.device)
        last = torch.log_softmax(raw, dim=-1) if self.logprobs is not None else None
        token = self._pick(self.scores(raw))
        self.chosen(token, last)
        return token

    def scores(self, raw: torch.Tensor) -> torch.Tensor:
        """The logits after this row's bias, grammar mask and penalties (before temperature and top_p)."""
        scores, vocab = raw.clone(), raw.shape[-1]
        for token, bias in self.rules.logit_bias.items():
            if 0 <= token < vocab:
                scores[token] += bias
        if self.constraint is not None and (mask := self.constraint.mask(vocab)) is not None:
            scores[~mask.to(scores.device)] = float("-inf")
        if self._counts is not None:
            scores -= self.rules.frequency_penalty * self._counts + self.rules.presence_penalty * (self._counts > 0)
        return scores

    def _pick(self, scores: torch.Tensor) -> int:
        if self.temperature == 0:
            return int(scores.argmax())
        scores = scores / self.temperature
        if self.top_p < 1.0:  # as transformers' TopPLogitsWarper: the fewest tokens holding top_p, at least one
            ordered, order = torch.sort(scores)
            drop = ordered.softmax(-1).cumsum(-1) <= 1 - self.top_p
            drop[-1] = False
            scores[order[drop]] = float("-inf")
        if self.seed is not None and self._generator is None:
            self._generator = torch.Generator(device=scores.device).manual_seed(self.seed)
        return int(torch.multinomial(scores.softmax(-1), 1, generator=self._generator))

    def chosen(self, token: int, last: torch.Tensor | None = None) -> None:
        """The token this step chose: its log-probability (from `last`, the raw log-softmax) is recorded, the
        grammar matcher and the penalty counts move on."""
        if self.constraint is not None:
            self.constraint.advance(token)
        if self.logprobs is not None and last is not None:
            k = self.rules.top_logprobs or 0
            top = torch.topk(last, k) if k else None
            self.logprobs.append(TokenLogprob(
                token, float(last[token]),
                list(zip(top.indices.tolist(), top.values.tolist(), strict=True)) if top is not None else []))
        if self._counts is not None and 0 <= token < self._counts.numel():
            self._counts[token] += 1
