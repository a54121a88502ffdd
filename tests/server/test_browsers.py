"""Drive-by requests a web page can make a browser send to lorakit.serve, over real HTTP on 127.0.0.1, to a
keyless server (the README's default) and a keyed one: a text/plain "simple" request that needs no preflight, a
DNS-rebinding Host, a foreign Origin. Each is refused before anything runs; the server's own origin and the
origins allowed with --allow-origin are served, with CORS headers for the latter only."""

from __future__ import annotations

import json

import httpx
import pytest

from helpers import serving
from lorakit.server.browsers import BrowserRules, host_name

ALLOWED = "http://localhost:3000"


def _payload(target) -> str:
    source = f"def grade(s, i):\n    open({str(target)!r}, 'w').write('x')\n    return 1.0\n"
    return json.dumps({"grader": {"type": "python", "name": "p", "source": source}, "model_sample": "x"})


@pytest.fixture(scope="module")
def keyless(tmp_path_factory, tiny_dir):
    with serving.running(tmp_path_factory.mktemp("browsers") / "data", "--model", "tiny-llama",
                         "--allow-origin", ALLOWED) as srv:
        yield srv


def test_host_names_are_read_as_browsers_send_them():
    assert [host_name(h) for h in ("127.0.0.1:8000", "[::1]:8000", "LocalHost.", "evil.example:80", "::1")] == [
        "127.0.0.1", "::1", "localhost", "evil.example", "::1"]
    rules = BrowserRules(bind="127.0.0.1")
    assert rules.refusal("GET", "/health", {b"host": b"localhost:8000"}) is None
    assert rules.refusal("GET", "/health", {b"host": b"10.1.2.3:8000"}) is None  # an address is no rebinding
    assert rules.refusal("GET", "/health", {b"host": b"evil.example:8000"})[0] == 403
    assert BrowserRules(bind="127.0.0.1", hosts=frozenset({"gpu-box"})).refusal(
        "GET", "/health", {b"host": b"gpu-box:8000"}) is None


@pytest.mark.parametrize("which", ["keyless", "keyed"])
def test_a_simple_cross_origin_post_runs_nothing(which, keyless, server, tmp_path):
    srv = keyless if which == "keyless" else server
    target = tmp_path / "pwned"
    auth = {"authorization": f"Bearer {srv.key}"} if srv.key else {}
    url = f"{srv.url}/v1/fine_tuning/alpha/graders/run"
    plain = httpx.post(url, content=_payload(target), headers={"content-type": "text/plain", **auth}, timeout=60)
    assert plain.status_code == 415 and plain.json()["error"]["code"] == "unsupported_media_type"  # before: 200
    foreign = httpx.post(url, content=_payload(target), timeout=60,
                         headers={"content-type": "text/plain", "origin": "http://evil.example", **auth})
    assert foreign.status_code == 403 and foreign.json()["error"]["code"] == "origin_not_allowed"
    form = httpx.post(f"{srv.url}/v1/fine_tuning/jobs", data={"training_file": "x"}, headers=auth, timeout=60)
    assert form.status_code == 415
    upload = httpx.post(f"{srv.url}/v1/files", files={"file": ("a.jsonl", b"{}")}, data={"purpose": "fine-tune"},
                        headers={"origin": "http://evil.example", **auth}, timeout=60)
    assert upload.status_code == 403  # multipart needs no preflight either: the Origin refuses it
    assert not target.exists()


@pytest.mark.parametrize("which", ["keyless", "keyed"])
def test_a_rebinding_host_is_refused_on_every_route(which, keyless, server):
    srv = keyless if which == "keyless" else server
    auth = {"authorization": f"Bearer {srv.key}"} if srv.key else {}
    for method, path in (("GET", "/health"), ("GET", "/v1/models"), ("GET", "/v1/files"),
                         ("POST", "/v1/chat/completions"), ("GET", "/"), ("GET", "/static/app.js"),
                         ("GET", "/v1/files/file-x/report")):
        response = httpx.request(method, f"{srv.url}{path}", headers={"host": "evil.example", **auth},
                                 json={"model": "tiny-llama", "messages": []}, timeout=60)
        assert response.status_code == 403 and response.json()["error"]["code"] == "host_not_allowed", path
    assert httpx.get(f"{srv.url}/health", headers={"host": f"localhost:{srv.port}"}, timeout=60).status_code == 200


def test_foreign_origins_get_no_cors_and_allowed_ones_do(keyless):
    chat = {"model": "tiny-llama", "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]}
    url = f"{keyless.url}/v1/chat/completions"
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    evil = httpx.options(url, headers={"origin": "http://evil.example", **preflight}, timeout=60)
    assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers
    evil_post = httpx.post(url, json=chat, headers={"origin": "http://evil.example"}, timeout=60)
    assert evil_post.status_code == 403 and "access-control-allow-origin" not in evil_post.headers
    null = httpx.post(url, json=chat, headers={"origin": "null"}, timeout=60)  # a sandboxed iframe, a file:// page
    assert null.status_code == 403
    own = httpx.post(url, json=chat, headers={"origin": keyless.url}, timeout=120)  # the server's own page
    assert own.status_code == 200
    allowed = httpx.options(url, headers={"origin": ALLOWED, **preflight}, timeout=60)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ALLOWED
    answered = httpx.post(url, json=chat, headers={"origin": ALLOWED}, timeout=120)
    assert answered.status_code == 200 and answered.headers["access-control-allow-origin"] == ALLOWED


def test_the_sdk_and_bodyless_posts_still_work(server):
    client = server.client()
    assert client.models.list().data
    response = httpx.post(f"{server.url}/v1/fine_tuning/jobs/ftjob-nope/cancel",
                          headers={"authorization": f"Bearer {server.key}"}, timeout=60)
    assert response.status_code == 404  # a POST with no body passes the Content-Type rule
