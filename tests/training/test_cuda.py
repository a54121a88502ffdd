"""The CUDA path: varlen FlashAttention, QLoRA (nf4/int8) training, and merging after QLoRA. Skipped without a GPU.

Run on a GPU box: python -m pytest -m gpu
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from helpers import tiny_trainer
from lorakit.training import attention

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
needs_bnb = pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes (.[cuda])")


def test_flash_varlen_matches_per_sequence_sdpa_forward_and_backward():
    assert attention.kernel_available(torch.device("cuda"), torch.bfloat16), "torch has no varlen FlashAttention"
    torch.manual_seed(0)
    lengths = [37, 300, 5, 1024]
    cu = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32, device="cuda")
    q = torch.randn(sum(lengths), 8, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(sum(lengths), 2, 64, device="cuda", dtype=torch.bfloat16, requires_grad=True)  # GQA 4:1
    v = torch.randn_like(k, requires_grad=True)
    outs, grads = [], []
    for fn in (lambda: attention._flash_varlen(q, k, v, cu, max(lengths), None),
               lambda: attention._sdpa_per_sequence(q, k, v, cu, None)):
        out = fn()
        out.float().pow(2).sum().backward()
        outs.append(out.detach())
        grads.append([t.grad.clone() for t in (q, k, v)])
        for t in (q, k, v):
            t.grad = None
    torch.testing.assert_close(outs[0], outs[1], rtol=2e-2, atol=2e-2)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=5e-2, atol=5e-2)


def _train(tmp_path, tiny_dir, *overrides):
    """12 steps on CUDA. Liger stays off here: it patches transformers' Llama classes for the whole process, and
    later tests build CPU models in this process (the Liger default is tested in its own process below)."""
    trainer, tokenizer = tiny_trainer(tmp_path, tiny_dir, 48, "+experiment=quickstart", "+train.max_steps=12",
                                      "train.learning_rate=5e-3", *overrides, cuda=True)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return trainer, tokenizer, losses


@pytest.mark.parametrize("quant", ["none", pytest.param("nf4", marks=needs_bnb), pytest.param("int8", marks=needs_bnb)])
def test_lora_trains_on_cuda(tmp_path, tiny_dir, quant):
    trainer, _, losses = _train(tmp_path, tiny_dir, f"quant={quant}", "train.use_liger_kernel=false")
    assert trainer.model.config._attn_implementation == "lorakit_varlen"
    assert trainer.args.bf16 and trainer.args.activation_checkpointing
    assert all(map(torch.isfinite, map(torch.tensor, losses)))
    assert losses[-1] < losses[0]


@needs_bnb
@needs_bnb
@pytest.mark.skipif(importlib.util.find_spec("liger_kernel") is None, reason="needs liger-kernel (.[cuda])")
def test_the_cuda_default_trains_with_liger_in_its_own_process(tmp_path, tiny_dir):
    code = f"""
import sys
from pathlib import Path
from helpers import tiny_trainer
trainer, _ = tiny_trainer(Path({str(tmp_path)!r}), {tiny_dir!r}, 48, "+experiment=quickstart", "+train.max_steps=12",
                          "train.learning_rate=5e-3", "quant=nf4", cuda=True)
assert trainer.args.use_liger_kernel, "Liger is the CUDA default when installed"
trainer.train()
losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
assert losses[-1] < losses[0], losses
print("ok", losses[0], losses[-1])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])})
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]


@needs_bnb
def test_merge_after_qlora_uses_the_unquantized_base(tmp_path, tiny_dir):
    from transformers import AutoModelForCausalLM

    from lorakit.models import merging

    trainer, tokenizer, _ = _train(tmp_path, tiny_dir, "quant=nf4", "train.use_liger_kernel=false")
    trainer.model.save_pretrained(str(tmp_path / "adapter"))
    tokenizer.save_pretrained(str(tmp_path / "adapter"))
    out = merging.merge(tmp_path / "adapter", tmp_path / "merged", base=tiny_dir)
    merged = AutoModelForCausalLM.from_pretrained(str(out))
    assert not getattr(merged.config, "quantization_config", None)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
