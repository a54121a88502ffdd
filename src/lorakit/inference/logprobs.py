"""The log-probability of every token of a prompt given the tokens before it, in one forward pass: what
`/v1/completions` with `echo` and `logprobs` returns, and what lm-eval's loglikelihood tasks sum.

The first token has none (nothing comes before it: its logprob is None), as in OpenAI's legacy completions.
"""

from __future__ import annotations

import torch

from lorakit.inference.rules import TokenLogprob


@torch.inference_mode()
def prompt_logprobs(model, prompt_ids: list[list[int]], *, pad_id: int, top: int,
                    adapter_names: list[str] | None = None) -> list[list[TokenLogprob]]:
    """Per prompt, per token: its log-probability (None for the first) and the `top` most likely tokens at
    that place. Prompts are right-padded into one batch (each row's positions start at 0, as alone)."""
    device = next(model.parameters()).device
    width = max(len(ids) for ids in prompt_ids)
    input_ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for row, ids in enumerate(prompt_ids):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[row, : len(ids)] = 1
    mixed = {"adapter_names": adapter_names} if adapter_names else {}
    logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device), **mixed).logits
    out = []
    for row, ids in enumerate(prompt_ids):
        dist = torch.log_softmax(logits[row, : len(ids) - 1].float(), dim=-1)  # position t predicts token t+1
        chosen = dist.gather(1, torch.tensor(ids[1:], device=dist.device)[:, None])[:, 0].tolist()
        best = torch.topk(dist, top) if top else None
        rows = [TokenLogprob(ids[0], None, [])]
        for t, token in enumerate(ids[1:]):
            alternatives = (list(zip(best.indices[t].tolist(), best.values[t].tolist(), strict=True))
                            if best is not None else [])
            rows.append(TokenLogprob(token, chosen[t], alternatives))
        out.append(rows)
    return out
