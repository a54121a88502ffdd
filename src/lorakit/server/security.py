"""Who may call the server, and how much they may send.

- What a web page may not make a browser send (Host, Origin, Content-Type): browsers.py, checked first on every
  route, with a key or without.
- The key: `LORAKIT_API_KEY`, or the first line of a key file (`--api-key-file`). Clients send it as
  `Authorization: Bearer <key>` (the openai SDK's `api_key`); it is compared in constant time and never logged.
- Without a key the server only listens on a loopback address; on any other address it refuses to start.
- Request bodies over the limit are refused with 413 before they are read in full.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import os
from pathlib import Path

from lorakit.core.errors import UserError
from lorakit.server.api_errors import APIError
from lorakit.server.browsers import BrowserRules, is_preflight
from lorakit.server.page import is_page

OPEN_PATHS = {"/health"}  # answered without the key, as is the fine-tuning page (page.py)
log = logging.getLogger("lorakit.server")


class SecurityError(UserError, ValueError):
    """The server cannot start safely; the message says what to set."""


def load_key(key_file: str | None) -> str | None:
    if key_file:
        path = Path(key_file).expanduser()
        if not path.is_file():
            raise SecurityError(f"--api-key-file {path}: no such file")
        key = path.read_text().strip().splitlines()[0].strip() if path.read_text().strip() else ""
        if not key:
            raise SecurityError(f"--api-key-file {path} is empty; write the key on its first line")
        return key
    return os.environ.get("LORAKIT_API_KEY") or None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, key: str | None) -> None:
    if key is None and not is_loopback(host):
        raise SecurityError(f"refusing to listen on {host} without an API key: anyone who can reach it could use the "
                            "models and start training jobs. Set LORAKIT_API_KEY (or --api-key-file), or listen on "
                            "127.0.0.1")


def _refuse(status: int, message: str, code: str) -> tuple[dict, bytes]:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    return {"type": "http.response.start", "status": status, "headers": headers}, body.encode()


class Guard:
    """ASGI middleware: the browser rules and the bearer key on every route (the key: all but /health and the page's
    static files), and the body size limits."""

    def __init__(self, app, *, key: str | None, max_body: int, max_upload: int, browsers: BrowserRules):
        self.app, self.key, self.max_body, self.max_upload = app, key, max_body, max_upload
        self.browsers = browsers

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        refused = self.browsers.refusal(scope["method"], scope["path"], headers)
        if refused:
            return await self._send(send, *_refuse(*refused))
        if is_preflight(scope["method"], headers):  # an allowed origin's preflight: the CORS middleware answers
            return await self.app(scope, receive, send)
        if self.key is not None and scope["path"] not in OPEN_PATHS and not is_page(scope["method"], scope["path"]):
            given = headers.get(b"authorization", b"").decode("latin-1")
            token = given[7:].strip() if given[:7].lower() == "bearer " else ""
            if not hmac.compare_digest(token.encode("utf-8", "replace"), self.key.encode("utf-8")):
                message = ("Incorrect API key provided." if token else
                           "Missing API key: send it as 'Authorization: Bearer <key>' (the openai SDK's api_key).")
                return await self._send(send, *_refuse(401, message, "invalid_api_key"))
        limit = self.max_upload if scope["path"].rstrip("/") == "/v1/files" else self.max_body
        length = headers.get(b"content-length")
        over = f"request body over the server's limit of {limit:,} bytes"
        if length is not None and length.isdigit() and int(length) > limit:
            return await self._send(send, *_refuse(413, over, "request_too_large"))
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge(413, over, code="request_too_large")
            return message

        started = False

        async def tracked_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked_send)
        except _TooLarge:
            if not started:
                await self._send(send, *_refuse(413, over, "request_too_large"))
        except Exception as err:  # noqa: BLE001 - a lorakit bug: logged once, and the client still gets an answer
            log.exception("unexpected error answering %s %s", scope.get("method"), scope["path"])
            if started:  # a stream already under way: end it rather than drop the connection
                with contextlib.suppress(OSError):  # unless its client has gone already
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await self._send(send, *_refuse(500, f"internal error: {type(err).__name__}; see the server log",
                                                "internal_error"))

    @staticmethod
    async def _send(send, start: dict, body: bytes) -> None:
        await send(start)
        await send({"type": "http.response.body", "body": body})


class _TooLarge(APIError):
    """Raised while the app reads the body; its APIError handler answers 413."""
