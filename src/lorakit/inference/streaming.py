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
        self.end_token: int | None = None  # the end-of-turn token that ended the answer (not in tokens or text)
        # Incremental decoding: only tokens[prefix:] are decoded at each step (decoding the whole answer at every
        # step costs O(n^2) in the decoding thread); tokens[prefix:read] are those already in self.text.
        self._prefix = self._read = 0

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    def add(self, token: int) -> str:
        if self.done:
            return ""
        if token in self.eot_ids:
            self._decode_new(final=True)
            self.finish_reason, self.end_token = "stop", token
            return ""
        self.tokens.append(token)
        before = len(self.text)
        self._decode_new(final=len(self.tokens) >= self.max_tokens)
        start = max(0, before - max((len(s) for s in self.stop), default=0))  # a stop string may span the new text
        cut = min((i for i in (self.text.find(s, start) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.text, self.finish_reason = self.text[:cut], "stop"
        elif len(self.tokens) >= self.max_tokens:
            self.finish_reason = "length"
        return "" if self.done else self._delta(self._certain())

    def _decode_new(self, final: bool = False) -> None:
        """Append the text of the tokens not yet in self.text, once they decode to whole characters (or at the
        end, as they are)."""
        done = self.tokenizer.decode(self.tokens[self._prefix : self._read], skip_special_tokens=True)
        now = self.tokenizer.decode(self.tokens[self._prefix :], skip_special_tokens=True)
        if len(now) > len(done) and (final or not now.endswith("\ufffd")):
            self.text += now[len(done):]
            self._prefix, self._read = self._read, len(self.tokens)

    def finish(self) -> str:
        """The text not yet given by add(); ends the answer (a row that ran out of steps ends at "length")."""
        if not self.done:  # an incomplete character at the very end is kept as decoded (U+FFFD)
            self._decode_new(final=True)
        self.finish_reason = self.finish_reason or "length"
        if not self.text.startswith(self.emitted):  # a tokenizer whose decoding of a prefix is no prefix
            log.warning("streamed text %r is not a prefix of the answer %r", self.emitted, self.text)
            return ""
        return self._delta(self.text)

    def _certain(self) -> str:
        text = self.text
        held = max((n for s in self.stop for n in range(1, len(s)) if text.endswith(s[:n])), default=0)
        return text[: len(text) - held]

    def _delta(self, upto: str) -> str:
        if not upto.startswith(self.emitted) or len(upto) <= len(self.emitted):
            return ""
        delta, self.emitted = upto[len(self.emitted):], upto
        return delta
