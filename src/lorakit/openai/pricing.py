"""OpenAI fine-tuning prices: the estimated cost of training on the billed tokens, from conf/pricing (dated rates)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def openai_cost(pricing, billed_tokens: int) -> dict:
    """Estimated hosted fine-tuning cost: billed tokens (all tokens of the training file x epochs) x the rate."""
    rates = dict(pricing.usd_per_1m_training_tokens)
    rate = rates.get(pricing.model)
    return {"model": pricing.model, "usd_per_1m_training_tokens": rate, "rates_as_of": str(pricing.as_of),
            "billed_tokens": billed_tokens, "usd": None if rate is None else round(billed_tokens * rate / 1e6, 4),
            "note": "tokens counted with the target model's tokenizer; OpenAI's own count differs by a few percent"}
