"""Merge a LoRA adapter into its base model and save a standalone model (safetensors + tokenizer).

Usage:
    python -m lorakit.merge outputs/<run>/adapter                       # writes outputs/<run>/merged
    python -m lorakit.merge outputs/<run>/adapter --out my-model --dtype bfloat16 --base /path/to/base
    python -m train ... stages=[prepare,train,evaluate,merge]            # the same, as the last pipeline stage

The base is always loaded unquantized, also for adapters trained on a 4-bit or 8-bit base (QLoRA): the adapter is
added to the original bf16 weights. Adding it to dequantized 4-bit weights instead would bake the quantization error
into every merged weight. The merged model therefore answers like the adapter on the full-precision base, which
is at least as close to the trained behaviour as the quantized base is; re-quantize it afterwards if you serve it
in 4 bits. Merging needs no GPU: an 8B model merges on the CPU in about 16 GB of RAM in bf16.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from lorakit.models.loading import quiet_peft_deprecation

log = logging.getLogger(__name__)


def base_of(adapter_dir: Path) -> str:
    """The base model an adapter was trained on, as PEFT recorded it in adapter_config.json."""
    config = adapter_dir / "adapter_config.json"
    if not config.is_file():
        raise FileNotFoundError(f"{adapter_dir} holds no adapter_config.json: pass the adapter/ folder of a run")
    return json.loads(config.read_text())["base_model_name_or_path"]


def merge(adapter_dir: Path | str, out_dir: Path | str, *, base: str | None = None, dtype: str = "auto") -> Path:
    """Load base (unquantized) + adapter, merge, save to out_dir; return out_dir.

    dtype: "auto" keeps the base checkpoint's dtype; "bfloat16", "float16" or "float32" converts.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter_dir, out_dir = Path(adapter_dir), Path(out_dir)
    base = base or base_of(adapter_dir)
    torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
    log.info("merging %s into %s (%s) -> %s", adapter_dir, base, dtype, out_dir)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch_dtype, low_cpu_mem_usage=True)
    quiet_peft_deprecation()
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(out_dir))
    AutoTokenizer.from_pretrained(str(adapter_dir)).save_pretrained(str(out_dir))  # with the training chat template
    log.info("merged model saved to %s (load it with AutoModelForCausalLM.from_pretrained)", out_dir)
    return out_dir
