"""lorakit as an installed package, not a checkout: a wheel built from this tree and installed elsewhere finds its
configuration and the quickstart's data, and its `lorakit` command runs the pipeline from any folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from lorakit.core.paths import ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel, installed into a folder of its own (the environment's libraries serve it, not the checkout)."""
    tmp = tmp_path_factory.mktemp("wheel")
    tree = tmp / "tree"  # the sources copied (links kept), so the build leaves nothing in the checkout
    for name in ("src", "conf", "data"):
        shutil.copytree(ROOT / name, tree / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tree / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(tmp / "dist"), str(tree)], capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = (tmp / "dist").glob("lorakit-*.whl")
    target = tmp / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                           str(wheel)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    env = {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    return target, env


def test_the_installed_package_holds_its_configuration_and_example_data(installed, tmp_path):
    target, env = installed
    where = subprocess.run([sys.executable, "-c", "import json, lorakit.core.paths as p; print(json.dumps("
                            "[str(p.PACKAGE), str(p.CONF_DIR), str(p.DATA_DIR), str(p.ROOT)]))"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr
    package, conf, data, root = json.loads(where.stdout)
    assert package == str(target / "lorakit") and root == str(tmp_path)  # not the checkout: the current folder
    assert not os.path.islink(conf) and os.path.isfile(os.path.join(conf, "experiment", "quickstart.yaml"))
    assert os.path.isfile(os.path.join(data, "tool_picker", "train.jsonl"))
    page = target / "lorakit" / "server" / "web"  # the fine-tuning page, every file its index loads
    assert {"index.html", "app.js", "style.css"} <= {p.name for p in page.iterdir()}
    imported = {m for p in page.glob("*.js") for m in re.findall(r'from "\./([\w.]+)"', p.read_text())}
    assert imported and all((page / m).is_file() for m in imported)


def test_the_lorakit_command_trains_from_any_folder(installed, tmp_path, tiny_dir):
    target, env = installed
    lorakit = str(target / "bin" / "lorakit")
    helped = subprocess.run([lorakit, "--help"], env=env, capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and "migrate" in helped.stdout and "serve" in helped.stdout
    wrong = subprocess.run([lorakit, "trian"], env=env, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 2 and "no command 'trian'" in wrong.stderr
    ran = subprocess.run([lorakit, "train", "+experiment=quickstart", "model=tiny-llama", "stages=[prepare,train]",
                          "+train.max_steps=2", "logger=none", "hydra.run.dir=run"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    report = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert report["files"]["train_file"] == str(target / "lorakit" / "example_data" / "tool_picker" / "train.jsonl")
    assert report["accounting"]["used"]["train"] == 270  # the shipped example, every line accounted for
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
    served = subprocess.run([lorakit, "serve", "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert served.returncode == 0 and "--aliases" in served.stdout
