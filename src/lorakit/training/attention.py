"""Padding-free attention that needs no hub kernel: PyTorch's own FlashAttention varlen kernel.

With `train.padding_free: true` TRL's collator concatenates a batch's examples into one row and passes their
boundaries (`cu_seq_lens_q`, `max_length_q`) to the model. transformers then needs a varlen attention kernel:
`flash_attention_2` wants the `flash-attn` package (a long CUDA build) and the `kernels` hub fetches code at run
time, which offline machines cannot do. PyTorch >= 2.10 ships the same kernel as
`torch.nn.attention.varlen.varlen_attn`; this module registers it with transformers as `lorakit_varlen`.

Examples never attend to each other: each one is its own causal sequence. On devices without the kernel (CPU,
fp32, older torch) the same contract is met by one causal SDPA call per example, so tests on CPU exercise the same
code path and masks. Batches without boundaries (padded batches, generation) go to transformers' SDPA.
"""

from __future__ import annotations

import inspect
import itertools

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

NAME = "lorakit_varlen"

try:
    from torch.nn.attention.varlen import varlen_attn as _varlen_attn

    _PARAMS = inspect.signature(_varlen_attn).parameters
except ImportError:  # torch < 2.10
    _varlen_attn, _PARAMS = None, {}


def kernel_available(device: torch.device, dtype: torch.dtype) -> bool:
    """True where PyTorch's FlashAttention varlen kernel runs: CUDA, bf16/fp16, torch >= 2.10."""
    return _varlen_attn is not None and device.type == "cuda" and dtype in (torch.bfloat16, torch.float16)


def _flash_varlen(q, k, v, cu_seqlens, max_len: int, scale: float | None) -> torch.Tensor:
    """q, k, v: (tokens, heads, head_dim). Causal within each sequence."""
    kwargs = {"scale": scale}
    if q.shape[1] != k.shape[1]:  # grouped-query attention
        if "enable_gqa" in _PARAMS:
            kwargs["enable_gqa"] = True
        else:
            k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
            v = v.repeat_interleave(q.shape[1] // v.shape[1], dim=1)
    if "window_size" in _PARAMS:  # torch >= 2.11
        kwargs["window_size"] = (-1, 0)
    else:  # torch 2.10
        kwargs["is_causal"] = True
    return _varlen_attn(q, k, v, cu_seqlens, cu_seqlens, max_len, max_len, **kwargs)


def _sdpa_per_sequence(q, k, v, cu_seqlens, scale: float | None) -> torch.Tensor:
    """The same contract on any device: one causal attention per sequence, no cross-sequence terms."""
    out = torch.empty_like(q)
    groups = q.shape[1] // k.shape[1]
    bounds = cu_seqlens.tolist()
    for start, end in itertools.pairwise(bounds):
        if end <= start:
            continue
        qs, ks, vs = (t[start:end].transpose(0, 1) for t in (q, k, v))  # (heads, len, dim)
        if groups > 1:
            ks, vs = ks.repeat_interleave(groups, dim=0), vs.repeat_interleave(groups, dim=0)
        out[start:end] = F.scaled_dot_product_attention(qs, ks, vs, is_causal=True, scale=scale).transpose(0, 1)
    return out


def varlen_attention_forward(module, query, key, value, attention_mask, dropout: float = 0.0,
                             scaling: float | None = None, **kwargs):
    """transformers attention function. query: (batch, heads, seq, dim); returns ((batch, seq, heads, dim), None)."""
    cu_seqlens = kwargs.get("cu_seq_lens_q")
    if cu_seqlens is None or query.shape[0] != 1 or query.shape[2] != key.shape[2]:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    if dropout:
        raise ValueError("lorakit_varlen attention does not support attention dropout; set it to 0 in the model config")
    cu_seqlens = cu_seqlens.to(device=query.device, dtype=torch.int32)
    q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (tokens, heads, dim)
    if kernel_available(query.device, query.dtype):
        max_len = int(kwargs.get("max_length_q") or int(cu_seqlens.diff().max()))
        out = _flash_varlen(q.contiguous(), k.contiguous(), v.contiguous(), cu_seqlens, max_len, scaling)
    else:
        out = _sdpa_per_sequence(q, k, v, cu_seqlens, scaling)
    return out.unsqueeze(0), None


def register() -> str:
    """Make `attn_implementation="lorakit_varlen"` known to transformers (idempotent); return its name."""
    if NAME not in AttentionInterface._global_mapping:
        AttentionInterface.register(NAME, varlen_attention_forward)
        # Padded batches (evaluation, generation) fall through to SDPA and need its 4D mask. Padding-free batches
        # carry no attention mask, so transformers builds one from position_ids that this function ignores.
        ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, sdpa_mask)
    return NAME
