"""A real browser for the page's tests: headless Chromium from Debian's packages (installed here with apt-get when
it is missing and we are root), driven by Playwright without a browser download of its own."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

CHROMIUM = "/usr/bin/chromium"
# Headless as root; no background connections (this machine's network is closed: Chromium would keep trying).
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _cannot(reason: str):
    """CI must run the browser tests: there, a browser that cannot be had fails them; elsewhere they are skipped."""
    (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)


def chromium() -> str:
    """The browser's path, installing Debian's chromium where we may; a skip naming the reason where we cannot."""
    found = shutil.which("chromium") or (CHROMIUM if os.path.exists(CHROMIUM) else None)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        _cannot("no Chromium, and no way to install it here (needs root and apt-get): apt-get install chromium")
    done = subprocess.run("apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium",
                          shell=True, capture_output=True, text=True, timeout=900)
    if done.returncode != 0 or not os.path.exists(CHROMIUM):
        _cannot(f"apt-get install chromium failed: {(done.stderr or done.stdout)[-500:]}")
    return CHROMIUM


def launch(playwright):
    return playwright.chromium.launch(executable_path=chromium(), args=FLAGS)
