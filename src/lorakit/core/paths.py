"""Where the project's own folders are (the checkout root, its conf/ and data/), and a path written as a Hydra value."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]  # src/lorakit/core/paths.py
CONF_DIR = ROOT / "conf"


def quoted(path: Path | str) -> str:
    """A path as a quoted Hydra override value (spaces, '=' and brackets are safe in it)."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"
