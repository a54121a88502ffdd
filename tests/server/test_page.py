"""The fine-tuning page in a real browser (Debian's headless Chromium, driven by Playwright) against a real
lorakit.serve with a key: every check reads what the page shows and holds it against the API's own answer."""

from __future__ import annotations

import json

import httpx
import pytest

import openai
from helpers import browser, serving, tool_picker_rows, write_jsonl
from helpers.fixtures import KEY

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency (pip install -e .[dev])")
expect = playwright_api.expect


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_dir):
    with serving.running(tmp_path_factory.mktemp("page") / "data", "--model", "tiny-llama", key=KEY) as srv:
        yield srv


@pytest.fixture(scope="module")
def chromium():
    with playwright_api.sync_playwright() as p:
        launched = browser.launch(p)
        yield launched
        launched.close()


def open_page(chromium, site, view: str = "#/jobs", *, width: int = 1280):
    """A new browser session on the page, the key given once in its form."""
    context = chromium.new_context(viewport={"width": width, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    page = context.new_page()
    page.goto(f"{site.url}/{view}")
    page.fill("#key", KEY)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-form")).to_be_hidden()
    return page


def test_the_page_is_open_its_data_is_not(site):
    page = httpx.get(f"{site.url}/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"] and page.headers["x-frame-options"] == "DENY"
    script = httpx.get(f"{site.url}/static/app.js", timeout=10)
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    for outside in ("..%2Fpage.py", "..%2F..%2F__init__.py", "nope.js"):  # only the page's own files
        assert httpx.get(f"{site.url}/static/{outside}", timeout=10).status_code == 404, outside
    assert httpx.get(f"{site.url}/v1/models", timeout=10).status_code == 401
    rebound = httpx.get(f"{site.url}/", headers={"Host": "attacker.example"}, timeout=10)
    assert rebound.status_code == 403 and rebound.json()["error"]["code"] == "host_not_allowed"
    foreign = httpx.get(f"{site.url}/v1/files/file-x/report", timeout=10,  # a page of another origin, key or not
                        headers={"Origin": "http://evil.example", "Authorization": f"Bearer {KEY}"})
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "origin_not_allowed"


def test_the_key_is_asked_once_per_session_and_never_put_in_a_url(chromium, site):
    context = chromium.new_context()
    page = context.new_page()
    urls = []
    page.on("request", lambda r: urls.append(r.url))
    page.goto(f"{site.url}/#/models")
    expect(page.locator("#key-form")).to_be_visible()
    page.fill("#key", "sk-wrong")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#error .message")).to_have_text("Incorrect API key provided.")  # the API's words
    page.fill("#key", KEY)
    page.click("#key-form button[type=submit]")
    expect(page.locator("table.models")).to_contain_text("tiny-llama")
    page.reload()  # the same browser session: not asked again
    expect(page.locator("table.models")).to_contain_text("tiny-llama")
    assert page.locator("#key-form").is_hidden()
    assert page.evaluate("sessionStorage.getItem('lorakit.key')") == KEY
    assert all(KEY not in url for url in urls + [page.url])
    other = chromium.new_context().new_page()  # another session asks again
    other.goto(f"{site.url}/#/models")
    expect(other.locator("#key-form")).to_be_visible()
    context.close()


def test_an_upload_with_bad_lines_shows_each_finding_as_the_api_reports_it(chromium, site, tmp_path):
    rows = [json.dumps(r) for r in tool_picker_rows("train", 12)]
    rows.insert(3, "{not json")                                               # line 4
    rows.insert(7, json.dumps({"messages": [{"role": "user", "content": "hi"}]}))  # line 8: nothing to learn
    rows.insert(10, json.dumps({"messages": [{"role": "narrator", "content": "x"},
                                             {"role": "assistant", "content": "y"}]}))  # line 11
    bad = write_jsonl(tmp_path / "bad.jsonl", rows)
    page = open_page(chromium, site, "#/files")
    page.set_input_files("#upload-file", str(bad))
    table = page.locator("table.findings tbody tr")
    expect(table).to_have_count(3)
    file_id = page.url.rsplit("/", 1)[1]
    report = httpx.get(f"{site.url}/v1/files/{file_id}/report", headers={"Authorization": f"Bearer {KEY}"}).json()
    shown = [[cell.strip() for cell in row.split("\t")] for row in table.all_inner_texts()]
    assert [(s[0], s[1], s[3]) for s in shown] == [(str(f["line"]), f["category"], f["message"]) for f in report["findings"]]
    assert [s[0] for s in shown] == ["4", "8", "11"]
    expect(page.locator("#refused-note")).to_contain_text("A fine-tuning job refuses this file")  # status error
    counts = page.locator(".counts").inner_text()
    assert "15 records" in counts and "12 to train on" in counts and "3 dropped" in counts
    assert f"{report['openai_cost']['billed_tokens']:,}".replace(",", "") in page.locator(".cost").inner_text().replace(",", "")
    page.goto(f"{site.url}/#/files")
    row = page.locator("table.files tbody tr", has_text=file_id)
    expect(row.locator(".status")).to_have_text("error")
    row.get_by_role("button", name="Delete").click()
    expect(page.locator("table.files", has_text=file_id)).to_have_count(0)
    with pytest.raises(openai.NotFoundError):
        site.client().files.retrieve(file_id)


def test_long_lists_are_paged(chromium, site, tmp_path):
    lines = [json.dumps(tool_picker_rows("train", 1)[0])] + ["{broken"] * 55
    client = site.client()
    noisy = client.files.create(file=open(write_jsonl(tmp_path / "noisy.jsonl", lines), "rb"), purpose="fine-tune")
    for n in range(21 - len(client.files.list().data)):
        client.files.create(file=(f"small{n}.jsonl", b'{"prompt": "a", "completion": "b"}\n'), purpose="fine-tune")
    page = open_page(chromium, site, f"#/files/{noisy.id}")
    expect(page.locator("table.findings tbody tr")).to_have_count(50)
    expect(page.locator(".pager span")).to_have_text("page 1 of 2 (55)")
    page.get_by_role("button", name="Next").click()
    expect(page.locator("table.findings tbody tr")).to_have_count(5)
    page.goto(f"{site.url}/#/files")
    expect(page.locator("table.files tbody tr")).to_have_count(20)
    page.get_by_role("button", name="Next").click()
    expect(page.locator("table.files tbody tr")).to_have_count(len(client.files.list().data) - 20)


def watch_the_curve(page) -> list[tuple[str, int]]:
    """(status, points of the loss curve) as the job's page shows them, until the job ends."""
    seen = []
    status = page.locator("#job-status")
    for _ in range(600):
        if status.count():
            chart = page.locator("figure.chart[data-title=Loss]")
            seen.append((status.inner_text(), int(chart.get_attribute("data-points") or 0) if chart.count() else 0))
            if seen[-1][0] in {"succeeded", "failed", "cancelled"}:
                return seen
        page.wait_for_timeout(250)
    raise AssertionError(f"the job did not end on the page: {seen[-5:]}")


def test_a_job_started_on_the_page_learns_is_copied_tried_and_deleted(chromium, site, tmp_path):
    client = site.client()
    upload = client.files.create(file=open(write_jsonl(tmp_path / "train.jsonl", tool_picker_rows("train", 40)), "rb"),
                                 purpose="fine-tune")
    page = open_page(chromium, site, "#/new")
    page.select_option("#training-file", upload.id)
    page.fill("#hyperparameters input[name=n_epochs]", "8")
    page.fill("#suffix", "page")
    page.click("#create-job")
    page.wait_for_url("**/#/jobs/ftjob-*")
    job_id = page.url.rsplit("/", 1)[1]

    seen = watch_the_curve(page)
    job = client.fine_tuning.jobs.retrieve(job_id)
    assert job.status == "succeeded" and seen[-1][0] == "succeeded", seen
    steps = [e.data["step"] for e in client.fine_tuning.jobs.list_events(job_id, limit=1000).data if e.type == "metrics"]
    points = [n for _, n in seen]
    assert points == sorted(points) and points[-1] == len(set(steps)), seen  # it grew, to every step's loss
    assert any(0 < n < points[-1] for status, n in seen if status == "running"), f"never seen part-drawn: {seen}"
    hp = dict(r.split("\t") for r in page.locator("table.hp tbody tr").all_inner_texts())
    assert hp["n_epochs"] == "8" and hp["batch_size"] == str(job.hyperparameters.batch_size)

    expect(page.locator("#fine-tuned-model")).to_have_text(job.fine_tuned_model)
    page.locator(f"button.copy[data-copy='{job.fine_tuned_model}']").click()
    assert page.evaluate("navigator.clipboard.readText()") == job.fine_tuned_model

    page.get_by_role("link", name="try it").click()
    page.fill("#max-tokens", "12")
    page.fill("#message", "what's the weather in Oslo?")
    page.click("#send")
    answers = {}
    for side in ("a", "b"):
        turn = page.locator(f".transcript[data-side={side}] .turn.assistant[data-done=true]")
        expect(turn).to_have_count(1, timeout=60_000)
        answers[page.locator(f"select.model[data-side={side}]").input_value()] = turn.locator(".text").inner_text()
    assert set(answers) == {"tiny-llama", job.fine_tuned_model}
    for model, shown in answers.items():  # temperature 0: the page shows exactly the model's answer
        direct = client.chat.completions.create(model=model, max_tokens=12, temperature=0, messages=[
            {"role": "user", "content": "what's the weather in Oslo?"}])
        assert shown.strip() == direct.choices[0].message.content.strip()

    page.goto(f"{site.url}/#/models")
    delete = page.locator(f"button[data-model='{job.fine_tuned_model}']")
    delete.click()
    delete.click()  # the second click deletes
    expect(page.locator("table.models", has_text=f"{job.fine_tuned_model} ")).to_have_count(0)
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(job.fine_tuned_model)


def test_a_running_job_is_paused_resumed_and_cancelled_from_its_page(chromium, site, tmp_path):
    client = site.client()
    upload = client.files.create(file=open(write_jsonl(tmp_path / "long.jsonl", tool_picker_rows("train", 40)), "rb"),
                                 purpose="fine-tune")
    job = client.fine_tuning.jobs.create(training_file=upload.id, model="tiny-llama", hyperparameters={"n_epochs": 50})
    serving.wait_for(client, job.id, {"running"}, timeout=120)
    page = open_page(chromium, site, f"#/jobs/{job.id}")
    for button, status in (("Pause", "paused"), ("Resume", None), ("Cancel", "cancelled")):
        page.get_by_role("button", name=button).click()
        if status:
            expect(page.locator("#job-status")).to_have_text(status, timeout=30_000)
            assert client.fine_tuning.jobs.retrieve(job.id).status == status
        else:
            expect(page.locator("#job-status")).not_to_have_text("paused", timeout=30_000)
    other = client.fine_tuning.jobs.create(training_file=upload.id, model="tiny-llama", hyperparameters={"n_epochs": 50})
    page.goto(f"{site.url}/#/jobs")
    row = page.locator("table.jobs tbody tr", has_text=other.id)
    expect(row.locator(".status")).not_to_have_text("cancelled")
    client.fine_tuning.jobs.cancel(other.id)  # elsewhere: the list shows it without a reload
    expect(row.locator(".status")).to_have_text("cancelled", timeout=15_000)


def test_a_grader_is_tried_on_a_sample_before_the_job(chromium, site):
    page = open_page(chromium, site, "#/new")
    page.select_option("#method", "reinforcement")
    page.click("#grader-test")  # the exact-answer grader on "Paris" against {"answer": "Paris"}
    expect(page.locator("#grader-result b")).to_have_text("reward 1")
    page.fill("#grader-sample", "London")
    page.click("#grader-test")
    expect(page.locator("#grader-result b")).to_have_text("reward 0")
    page.fill("#grader", json.dumps({"type": "python", "name": "broken",
                                     "source": "def grade(sample, item):\n    raise ValueError('boom')\n"}))
    page.click("#grader-test")  # run in the sandbox: its error is shown, as graders/run reports it
    expect(page.locator("#grader-result")).to_contain_text("python_grader_runtime_error", timeout=60_000)
    expect(page.locator("#grader-result")).to_contain_text("ValueError: boom")
    page.fill("#grader", json.dumps({"type": "no_such_grader"}))
    page.click("#grader-test")
    refused = httpx.post(f"{site.url}/v1/fine_tuning/alpha/graders/run", headers={"Authorization": f"Bearer {KEY}"},
                         json={"grader": {"type": "no_such_grader"}, "model_sample": "London"}).json()["error"]
    expect(page.locator("#error .message")).to_have_text(refused["message"])


@pytest.mark.parametrize("width", [1280, 1024])
def test_every_view_fits_a_laptop_screen(chromium, site, width):
    page = open_page(chromium, site, width=width)
    for view in ("#/files", "#/new", "#/jobs", "#/playground", "#/models"):
        page.goto(f"{site.url}/{view}")
        expect(page.locator("main h1")).to_be_visible()
        scroll, client = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert scroll <= client, f"{view} is {scroll} px wide in a {client} px window"
