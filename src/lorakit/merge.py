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

import argparse
import logging
from pathlib import Path

from lorakit.core.errors import exit_2_on_user_error
from lorakit.core.runs import RunFolder
from lorakit.models.merging import merge

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lorakit.merge", description=__doc__.split("\n\n")[0])
    parser.add_argument("adapter_dir", type=Path, help="a run's adapter/ folder")
    parser.add_argument("--out", type=Path, help="where to save the merged model (default: <adapter_dir>/../merged)")
    parser.add_argument("--base", help="base model path or hub id (default: the one in adapter_config.json)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float16", "float32"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    with exit_2_on_user_error():
        merge(args.adapter_dir, args.out or RunFolder(args.adapter_dir.parent).merged, base=args.base, dtype=args.dtype)


if __name__ == "__main__":
    main()
