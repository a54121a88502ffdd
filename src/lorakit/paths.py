"""Where the project's own folders are: the checkout root, its conf/ (Hydra configs) and data/ (examples)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = ROOT / "conf"
