"""SFTTrainer with a loss that scores trained positions only, on every device.

TRL's fused LM head scores only the positions that carry a label on devices with Triton (CUDA), but every
position elsewhere (CPU). With loss on assistant tokens only, most positions are prompt: on 2 CPU cores the
vocabulary projection of those positions took more than half of each SmolLM2 step. Here the LM head runs on
the labelled positions alone; the loss value is the same token-mean cross-entropy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from trl import SFTTrainer
from trl.kernels.chunked_logprob import _use_triton


class CompactLossSFTTrainer(SFTTrainer):
    """`trl.SFTTrainer` that, off Triton devices, computes the LM head and loss only where labels != -100."""

    def _uses_default_loss(self, device: torch.device) -> bool:
        return (_use_triton(device) or self.args.loss_type != "nll" or self.label_smoother is not None
                or self.compute_loss_func is not None or self.aux_loss_enabled)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels = inputs["labels"]
        if return_outputs or self._uses_default_loss(labels.device):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        mode = "train" if self.model.training else "eval"
        lm = self.accelerator.unwrap_model(model)
        if hasattr(lm, "get_base_model"):  # PeftModel: the LoRA layers live inside the base model's modules
            lm = lm.get_base_model()
        model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
        hidden = lm.base_model(**model_inputs, use_cache=False).last_hidden_state[:, :-1]
        targets = labels[:, 1:]
        mask = targets != -100
        logits = lm.get_output_embeddings()(hidden[mask]).float()
        token_loss = F.cross_entropy(logits, targets[mask], reduction="sum")
        n_tokens = mask.sum() if num_items_in_batch is None else num_items_in_batch
        loss = token_loss / torch.as_tensor(n_tokens).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes

        with torch.no_grad():
            n_valid = int(mask.sum())
            correct = int((logits.argmax(-1) == targets[mask]).sum())
            self._metrics[mode]["mean_token_accuracy"].append(correct / n_valid if n_valid else 0.0)
            if mode == "train":
                attn_mask = inputs.get("attention_mask")  # padding-free batches have none: every position is a token
                self._total_train_tokens += int(attn_mask.sum()) if attn_mask is not None else inputs["input_ids"].numel()
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        return loss
