"""The fields of a config dataclass (SFTConfig, DPOConfig, GRPOConfig, LoraConfig), for passing settings through
and for naming the unknown ones; a setting that must be a number in a range; a setting lorakit decided (its value
was null), with the reason."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import asdict, dataclass
from typing import Any


def config_fields(cls: type) -> set[str]:
    """The fields a config dataclass takes in its constructor."""
    return {f.name for f in dataclasses.fields(cls) if f.init}


def unknown_fields(section: str, keys: Any, known: set[str], owner: str) -> list[str]:
    """One problem per key that is not a field of `owner`, with the nearest names."""
    problems = []
    for key in keys:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=3) or [k for k in known if k.startswith(str(key)[:4])][:3]
            hint = f" (did you mean {', '.join(sorted(near))}?)" if near else ""
            problems.append(f"{section}.{key}: not a {owner} field{hint}; remove it or fix the spelling")
    return problems


def bad_number(key: str, value: Any, low: float, *, integer: bool = False, above: bool = False,
                high: float | None = None, null: str | None = None) -> list[str]:
    """[] when value is a number >= low (> low with above, < high when given, an integer with integer); else the
    problem. null: what None means when None is allowed."""
    if value is None and null:
        return []
    kind = "an integer" if integer else "a number"
    ok = not isinstance(value, bool) and isinstance(value, int if integer else (int, float))
    ok = ok and (value > low if above else value >= low) and (high is None or value < high)
    if ok:
        return []
    bounds = f"{'>' if above else '>='} {low:g}" + (f" and < {high:g}" if high is not None else "")
    return [f"{key}: must be {kind} {bounds}{f' (or null: {null})' if null else ''}, got {value!r}"]


@dataclass(frozen=True)
class Decision:
    """A setting lorakit chose for this run (its config value was null), with the reason."""

    setting: str
    value: float | int
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.setting}={self.value:g}: {self.reason}"
