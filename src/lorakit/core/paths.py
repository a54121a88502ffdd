"""Where lorakit's own files are (its configuration, its example data, the checkout it runs from), and a path
written as a Hydra value.

conf/ and data/ live at the checkout's root (the layout users asked for); the package holds links to them
(src/lorakit/conf, src/lorakit/example_data), which a wheel or `pip install .` turns into copies, so an installed
lorakit finds its configuration and the quickstart's data wherever it is installed.
"""

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # src/lorakit (site-packages/lorakit once installed)
CONF_DIR = PACKAGE / "conf"
DATA_DIR = PACKAGE / "example_data"
_CHECKOUT = PACKAGE.parents[1]
# the checkout lorakit runs from (for .venv-vllm beside .venv), else the current folder of an installed lorakit
ROOT = _CHECKOUT if (_CHECKOUT / "pyproject.toml").is_file() and PACKAGE.parent.name == "src" else Path.cwd()


def quoted(path: Path | str) -> str:
    """A path as a quoted Hydra override value (spaces, '=' and brackets are safe in it)."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"
