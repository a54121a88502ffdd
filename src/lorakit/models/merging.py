"""Merge an adapter into its base: load the base unquantized (also after QLoRA: the adapter is added to the
original bf16 weights, never to dequantized 4-bit ones, which would bake the quantization error into every merged
weight), merge, save safetensors and the adapter's tokenizer. The command is python -m lorakit.merge; the pipeline's
merge stage calls the same merge()."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from lorakit.core.errors import ConfigError
from lorakit.core.runs import ADAPTER_CONFIG
from lorakit.models.loading import quiet_peft_deprecation

log = logging.getLogger(__name__)


def base_of(adapter_dir: Path) -> str:
    """The base model an adapter was trained on, as PEFT recorded it in adapter_config.json."""
    config = adapter_dir / ADAPTER_CONFIG
    if not config.is_file():
        raise ConfigError(f"{adapter_dir} holds no {ADAPTER_CONFIG}: pass the adapter/ folder of a run")
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
