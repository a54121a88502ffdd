"""The fields of a config dataclass (SFTConfig, DPOConfig, GRPOConfig, LoraConfig), for passing settings through
and for naming the unknown ones."""

from __future__ import annotations

import dataclasses


def config_fields(cls: type) -> set[str]:
    """The fields a config dataclass takes in its constructor."""
    return {f.name for f in dataclasses.fields(cls) if f.init}
