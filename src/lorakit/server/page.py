"""The fine-tuning page at `/`: static files (server/web/) that call the server's public API and nothing else.

`GET /` and `GET /static/<name>` are answered without the key (they hold no data; the page asks for the key and
sends it with its API calls) and under the browser rules of every route (browsers.py: Host, Origin). Each answer
forbids framing by another page, inline and foreign scripts, and connections anywhere but this server.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Response

from lorakit.server.api_errors import APIError

WEB = Path(__file__).with_name("web")
PREFIX = "/static/"
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-frame-options": "DENY", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def is_page(method: str, path: str) -> bool:
    """A request for the page itself (open without the key)."""
    return method in {"GET", "HEAD"} and (path == "/" or path.startswith(PREFIX))


def _answer(path: Path) -> Response:
    return Response(path.read_bytes(), media_type=TYPES[path.suffix], headers=HEADERS)


def router(state) -> APIRouter:  # noqa: ARG001 - every router takes the state
    api = APIRouter()
    assets = {p.name: p for p in WEB.iterdir() if p.suffix in TYPES}

    @api.get("/")
    async def index():
        return _answer(WEB / "index.html")

    @api.get(PREFIX + "{name}")
    async def asset(name: str):
        if name not in assets:
            raise APIError(404, f"no such file of the page: {name}", code="not_found")
        return _answer(assets[name])

    return api
