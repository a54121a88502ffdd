"""One answer's tokens -> its text, as they are generated: end of turn, stop strings and the token limit end it,
and the deltas given while streaming add up exactly to the text given without streaming.

Used by the server (`lorakit.server`) for every choice and by the terminal chat (`lorakit.chat`).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class TextStream:
    """Feed tokens with add(); each call returns the text that is now certain (never a partial UTF-8 character,
    never the start of a possible stop string). finish() returns the rest; `text` is the whole answer."""

    def __init__(self, tokenizer, *, eot_ids: set[int], max_tokens: int, stop: list[str] | None = None):
        self.tokenizer, self.eot_ids, self.max_tokens = tokenizer, eot_ids, max_tokens
        self.stop = [s for s in (stop or []) if s]
        self.tokens: list[int] = []
        self.text = ""
        self.emitted = ""
        self.finish_reason: str | None = None  # "stop" (end of turn or a stop string) or "length"

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def add(self, token: int) -> str:
        if self.done:
            return ""
        if token in self.eot_ids:
            self.finish_reason = "stop"
            return ""
        self.tokens.append(token)
        self.text = self.tokenizer.decode(self.tokens, skip_special_tokens=True)
        cut = min((i for i in (self.text.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.text, self.finish_reason = self.text[:cut], "stop"
        elif len(self.tokens) >= self.max_tokens:
            self.finish_reason = "length"
        return "" if self.done else self._delta(self._certain())

    def finish(self) -> str:
        """The text not yet given by add(); ends the answer (a row that ran out of steps ends at "length")."""
        self.finish_reason = self.finish_reason or "length"
        if not self.text.startswith(self.emitted):  # a tokenizer whose decoding of a prefix is no prefix
            log.warning("streamed text %r is not a prefix of the answer %r", self.emitted, self.text)
            return ""
        return self._delta(self.text)

    def _certain(self) -> str:
        text = self.text.rstrip("\ufffd")  # an incomplete UTF-8 character decodes as U+FFFD until it completes
        held = max((n for s in self.stop for n in range(1, len(s)) if text.endswith(s[:n])), default=0)
        return text[: len(text) - held]

    def _delta(self, upto: str) -> str:
        if not upto.startswith(self.emitted) or len(upto) <= len(self.emitted):
            return ""
        delta, self.emitted = upto[len(self.emitted):], upto
        return delta
