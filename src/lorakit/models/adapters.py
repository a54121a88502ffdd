"""Does an adapter fit a base model: the check compare, chat and the server make before loading one (an adapter
of another base would load with a shape error deep in PEFT, or worse, load and answer nonsense)."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from lorakit.core.errors import UserError


class AdapterError(UserError, ValueError):
    """An adapter that cannot be used with this base model; the message names it and the fix."""


def _safetensors_shapes(path: Path) -> dict[str, list[int]]:
    with path.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    return {k: v["shape"] for k, v in header.items() if k != "__metadata__"}


def check_fits(adapter: Path, model_name: str, model_config, *, name: str, trained_on: str | None = None,
               fix: str) -> None:
    """The adapter must have been trained on this base: the base its run recorded (trained_on, where known) and
    weight shapes that fit the base (hidden size, layer count). name: how the message calls the adapter; fix: what
    to do instead.

    Raises:
        AdapterError: naming both models and the fix.
    """
    if trained_on and trained_on != model_name:
        raise AdapterError(f"{name} was trained on {trained_on!r}, not on {model_name!r}; {fix}")
    weights = Path(adapter) / "adapter_model.safetensors"
    if not weights.is_file():
        raise AdapterError(f"{name}: {weights} is missing; the adapter was not saved completely")
    hidden, layers = model_config.hidden_size, model_config.num_hidden_layers
    for key, shape in _safetensors_shapes(weights).items():
        layer = re.search(r"\.layers\.(\d+)\.", key)
        bad_layer = layer and int(layer.group(1)) >= layers
        bad_width = key.endswith("lora_A.weight") and re.search(r"(q|k|v|gate|up)_proj", key) and shape[-1] != hidden
        if bad_layer or bad_width:
            raise AdapterError(f"{name} does not fit {model_name!r} ({key} has shape {shape}; the base has {layers} "
                               f"layers of width {hidden}): it was trained on another base model; {fix}")
