"""The held-out reward: reply log-probabilities from left-padded batches equal those of each pair alone."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from helpers import pair_rows, write_jsonl
from lorakit.data.encoding import encode_pairs
from lorakit.data.reading import read_file
from lorakit.evaluation.preference import reply_logps
from lorakit.models.loading import end_of_turn_ids, load_tokenizer


def test_batched_reply_log_probs_equal_one_pair_at_a_time(tiny_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    tokenizer, model = load_tokenizer(tiny_dir), AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    examples = read_file(write_jsonl(tmp_path / "pairs.jsonl", pair_rows(5))).examples
    pairs, _ = encode_pairs(examples, tokenizer, end_of_turn_ids(tokenizer),
                            OmegaConf.create({"max_length": 1024, "too_long": "drop"}))
    assert len({len(p["prompt_ids"]) + len(p["rejected_ids"]) for p in pairs}) > 1  # the batch needs padding
    for side in ("chosen", "rejected"):
        alone = []
        for p in pairs:
            ids = torch.tensor([p["prompt_ids"] + p[f"{side}_ids"]])
            with torch.no_grad():
                logps = torch.log_softmax(model(ids).logits[0, :-1].float(), -1).gather(-1, ids[0, 1:, None])[:, 0]
            alone.append(float(logps[len(p["prompt_ids"]) - 1:].sum()))
        batched = reply_logps(model, pairs, side, batch_size=3)
        assert torch.allclose(torch.tensor(batched), torch.tensor(alone), atol=1e-4), (batched, alone)
