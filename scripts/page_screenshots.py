"""Screenshots of the fine-tuning page (docs/page/*.png, linked from the README), taken as a user would see it:
lorakit.serve on the embedded SmolLM2 on 127.0.0.1, Debian's headless Chromium driven by Playwright.

Usage:
    .venv/bin/python scripts/page_screenshots.py            # about 3 minutes on 2 CPU cores; writes docs/page/

It uploads the tool-picking examples and a copy with broken lines, runs one short supervised job through the New
job form, then shoots each view: the file report, the form (with a grader tried), the job's curves, the
playground, the models. Needs `apt-get install chromium` (the page's tests install it themselves).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

import local_server

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "page"
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def files(tmp: Path) -> tuple[Path, Path]:
    lines = (ROOT / "data" / "tool_picker" / "train.jsonl").read_text().splitlines()[:48]
    good = tmp / "tool_picker.jsonl"
    good.write_text("\n".join(lines) + "\n")
    broken = list(lines[:20])
    broken[3] = broken[3][:-40]  # cut short: not JSON
    broken[7] = json.dumps({"messages": [{"role": "user", "content": "set a timer for 5 minutes"}]})
    broken[12] = json.dumps({"messages": [{"role": "human", "content": "hi"}, {"role": "assistant", "content": "{}"}]})
    bad = tmp / "tool_picker_broken.jsonl"
    bad.write_text("\n".join(broken) + "\n")
    return good, bad


def shoot(page, name: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    print("wrote", OUT / f"{name}.png")


def walk(page, url: str, good: Path, bad: Path) -> None:
    page.goto(f"{url}/#/files")
    page.set_input_files("#upload-file", str(bad))
    expect(page.locator("table.findings")).to_be_visible(timeout=60_000)
    shoot(page, "files-report")
    page.goto(f"{url}/#/files")
    page.set_input_files("#upload-file", str(good))
    expect(page.locator(".counts")).to_be_visible(timeout=60_000)
    page.goto(f"{url}/#/new")
    page.select_option("#method", "reinforcement")
    page.click("#grader-test")
    expect(page.locator("#grader-result b")).to_be_visible()
    shoot(page, "new-job")
    page.select_option("#method", "supervised")
    page.fill("#hyperparameters input[name=n_epochs]", "2")
    page.fill("#suffix", "tools")
    page.click("#create-job")
    page.wait_for_url("**/#/jobs/ftjob-*")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=900_000)
    shoot(page, "job")
    page.get_by_role("link", name="try it").click()
    page.fill("#system", json.loads(good.read_text().splitlines()[0])["messages"][0]["content"])
    page.fill("#max-tokens", "48")
    page.fill("#message", "can you put on some jazz for me")
    page.click("#send")
    for side in ("a", "b"):
        expect(page.locator(f".transcript[data-side={side}] .turn.assistant[data-done=true]")).to_have_count(1, timeout=120_000)
    shoot(page, "playground")
    page.goto(f"{url}/#/models")
    expect(page.locator("table.models")).to_be_visible()
    shoot(page, "models")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = local_server.start(Path(tmp) / "data", log=Path(tmp) / "server.log")
        try:
            good, bad = files(Path(tmp))
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
                walk(browser.new_page(viewport={"width": 1280, "height": 800}), url, good, bad)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
