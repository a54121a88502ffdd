"""Log-probabilities in OpenAI's shapes: chat's `logprobs.content` (token, logprob, bytes, top_logprobs) and the
legacy completions' `logprobs` (tokens, token_logprobs, top_logprobs, text_offset)."""

from __future__ import annotations

from lorakit.inference.rules import TokenLogprob


def token_text(tokenizer, token: int) -> str:
    return tokenizer.decode([token], skip_special_tokens=False)


def _entry(tokenizer, token: int, logprob: float) -> dict:
    text = token_text(tokenizer, token)
    return {"token": text, "logprob": logprob, "bytes": list(text.encode())}


def chat(tokenizer, logprobs: list[TokenLogprob] | None) -> dict | None:
    if logprobs is None:
        return None
    return {"content": [{**_entry(tokenizer, t.token, t.logprob),
                         "top_logprobs": [_entry(tokenizer, i, lp) for i, lp in t.top]} for t in logprobs],
            "refusal": None}


def completion(tokenizer, logprobs: list[TokenLogprob], start_offset: int = 0) -> dict:
    """Legacy completions: the first prompt token (echo) has no log-probability (null), as OpenAI's."""
    tokens, values, tops, offsets, at = [], [], [], [], start_offset
    for t in logprobs:
        text = token_text(tokenizer, t.token)
        tokens.append(text)
        values.append(t.logprob)
        tops.append(None if t.logprob is None else {token_text(tokenizer, i): lp for i, lp in t.top})
        offsets.append(at)
        at += len(text)
    return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}
