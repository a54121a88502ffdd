"""Offline settings for every test, set before anything imports lorakit; the shared fixtures are in helpers.fixtures."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may reach a hub; tests must prove that
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# generated answers are cached per test session only: a test must generate, not read an earlier session's answers
os.environ["LORAKIT_GENERATIONS"] = tempfile.mkdtemp(prefix="lorakit-generations-")
atexit.register(shutil.rmtree, os.environ["LORAKIT_GENERATIONS"], ignore_errors=True)  # not one left per run

pytest_plugins = ["helpers.fixtures"]
