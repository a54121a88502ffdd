"""Constrained decoding: an answer that must be JSON (any object, or one that validates against a JSON schema) is
decoded with llguidance's matcher masking, at every step, the tokens that cannot continue a valid answer.

llguidance is the grammar engine vLLM and llama.cpp use (Rust, no GPU needed, no compiler at run time). Its
tokenizer view costs about a second to build, so it is built once per tokenizer.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import torch

_TOKENIZERS: dict[tuple[int, tuple[int, ...]], object] = {}
_LOCK = threading.Lock()
_MASKS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lorakit-mask")  # next masks, during forward passes
ANY_OBJECT = {"type": "object"}  # response_format json_object: any JSON object


class GrammarError(ValueError):
    """The schema cannot be compiled to a grammar (the message says why)."""


def _ll_tokenizer(tokenizer, eot_ids: set[int]):
    import llguidance.hf

    key = (id(tokenizer), tuple(sorted(eot_ids)))
    with _LOCK:
        if key not in _TOKENIZERS:
            _TOKENIZERS[key] = llguidance.hf.from_tokenizer(tokenizer, n_vocab=len(tokenizer),
                                                            eos_token=sorted(eot_ids))
        return _TOKENIZERS[key]


_NAMED_SCHEMAS = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}  # name -> schema
_DATA = {"enum", "const", "default", "examples"}  # values, not schemas


def strict(schema):
    """OpenAI's strict mode: an object schema that does not say otherwise takes no properties beyond its own
    (as xgrammar's strict mode reads it), at every depth."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in _DATA:
            out[key] = value
        elif key in _NAMED_SCHEMAS and isinstance(value, dict):
            out[key] = {name: strict(sub) for name, sub in value.items()}
        else:
            out[key] = strict(value)
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def json_grammar(schema: dict | None, tokenizer, eot_ids: set[int]) -> str:
    """The grammar of JSON that validates against `schema` (None: any JSON object), checked before decoding."""
    from llguidance import LLMatcher

    try:
        grammar = LLMatcher.grammar_from_json_schema(json.dumps(ANY_OBJECT if schema is None else schema),
                                                     overrides={"whitespace_flexible": False})
    except (ValueError, TypeError) as err:
        raise GrammarError(str(err)) from None
    failed, messages = LLMatcher.validate_grammar_with_warnings(grammar, _ll_tokenizer(tokenizer, eot_ids))
    if failed:
        raise GrammarError(messages[0])
    return grammar


class Constraint:
    """One row's matcher: mask() the tokens allowed next, advance() with the token chosen. The next mask is
    computed on a worker thread as soon as a token is chosen, while the model runs its next forward pass (a large
    schema's mask takes longer than a small model's step)."""

    def __init__(self, grammar: str, tokenizer, eot_ids: set[int]):
        from llguidance import LLMatcher

        self.eot_ids = eot_ids
        self.matcher = LLMatcher(_ll_tokenizer(tokenizer, eot_ids), grammar, log_level=0)
        self.ended = False
        self._next: Future | None = _MASKS.submit(self.matcher.compute_logit_bias)

    def mask(self, vocab: int) -> torch.Tensor | None:
        """True for each token that may come next (the model's vocabulary may be wider than the tokenizer's);
        None once the row has ended."""
        ahead, self._next = self._next, None
        bias = ahead.result() if ahead is not None else None  # the matcher is not to be touched while it computes
        if self.ended or self.matcher.is_error():
            return None
        bias = bias if bias is not None else self.matcher.compute_logit_bias()
        allowed = torch.frombuffer(bytearray(bias), dtype=torch.uint8) > 0
        out = torch.zeros(vocab, dtype=torch.bool)
        out[: min(vocab, allowed.numel())] = allowed[:vocab]
        return out

    def advance(self, token: int) -> None:
        if self.ended:
            return
        if token in self.eot_ids:
            self.ended = True
            return
        self.matcher.consume_token(token)
        if not self.matcher.is_error():
            self._next = _MASKS.submit(self.matcher.compute_logit_bias)
