"""Preference metrics of a DPO adapter on held-out pairs, as DPO defines its implicit reward.

reward(y | x) = beta * (log p_tuned(y | x) - log p_reference(y | x)), the reference being where DPO started (the base
model, or the adapter given as init_from). reward_accuracy: the share of pairs whose preferred reply gets the higher
reward; reward_margin: the mean of reward(preferred) - reward(non-preferred). Both sides are tokenized as in training
(lorakit.data.encoding.encode_pairs): the exact inference prompt, each reply through its end of turn.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from lorakit.data.encoding import encode_pairs
from lorakit.data.reading import Example
from lorakit.models.loading import BaseModel, load_model, quiet_peft_deprecation

log = logging.getLogger(__name__)


def held_out_pairs(rows: list[dict]) -> list[Example]:
    """The test rows that are preference pairs (they carry the non-preferred reply)."""
    return [Example(r.get("file", ""), r.get("line", 0), r["messages"], r.get("tools"), i, r["rejected"])
            for i, r in enumerate(rows) if r.get("rejected")]


@torch.no_grad()
def reply_logps(model, pairs: list[dict], side: str, batch_size: int) -> list[float]:
    """log p(reply | prompt) summed over the reply's tokens, for the `side` ("chosen" or "rejected") of every pair.

    Left-padded, so that every reply ends the row: the LM head runs on the last (longest reply + 1) positions only."""
    out = []
    device = next(model.parameters()).device
    for start in range(0, len(pairs), batch_size):
        batch = pairs[start:start + batch_size]
        seqs = [p["prompt_ids"] + p[f"{side}_ids"] for p in batch]
        width, keep = max(map(len, seqs)), max(len(p[f"{side}_ids"]) for p in batch) + 1
        ids = torch.zeros(len(seqs), width, dtype=torch.long)
        mask = torch.zeros(len(seqs), width, dtype=torch.long)
        for i, seq in enumerate(seqs):
            ids[i, width - len(seq):], mask[i, width - len(seq):] = torch.tensor(seq), 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device),
                       logits_to_keep=keep).logits.float()
        logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, width - keep + 1:, None].to(device))[..., 0]
        for i, p in enumerate(batch):
            n = len(p[f"{side}_ids"])
            out.append(float(logps[i, keep - 1 - n:].sum()))
    return out


def reward_metrics(cfg: DictConfig, base: BaseModel, adapter_dir: Path, start: Path | None, rows: list[dict], *,
                   cuda: bool) -> dict[str, float]:
    """reward_accuracy and reward_margin of the adapter on the held-out pairs among `rows` ({} when there are none);
    `start`: the adapter DPO started from (None: the base model)."""
    from peft import PeftModel

    examples = held_out_pairs(rows)
    pairs, _ = encode_pairs(examples, base.tokenizer, base.eot_ids, cfg.data)
    if not pairs:
        return {}
    quiet_peft_deprecation()
    model = PeftModel.from_pretrained(load_model(base, OmegaConf.to_container(cfg.quant, resolve=True), cuda=cuda),
                                      str(adapter_dir), adapter_name="tuned")
    if start is not None:
        model.load_adapter(str(start), adapter_name="start")
    model.eval()
    batch = int(cfg.eval.batch_size)
    logps = {}
    for name in ("tuned", "start"):
        if name == "start" and start is not None:
            model.set_adapter("start")
        with model.disable_adapter() if name == "start" and start is None else nullcontext():
            logps[name] = {side: reply_logps(model, pairs, side, batch) for side in ("chosen", "rejected")}
        model.set_adapter("tuned")
    beta = float(cfg.method.get("beta", 0.1))
    margins = [beta * ((tc - sc) - (tr - sr)) for tc, sc, tr, sr in zip(
        logps["tuned"]["chosen"], logps["start"]["chosen"], logps["tuned"]["rejected"], logps["start"]["rejected"],
        strict=True)]
    result = {"reward_accuracy": sum(m > 0 for m in margins) / len(margins),
              "reward_margin": sum(margins) / len(margins)}
    log.info("held-out pairs (%d): reward accuracy %.3f, mean reward margin %.3f", len(margins),
             result["reward_accuracy"], result["reward_margin"])
    return result
