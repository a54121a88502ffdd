"""OpenAI's error body, `{"error": {"message", "type", "param", "code"}}`, for every refusal the server gives."""

from __future__ import annotations

import re

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error",
         404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
         415: "invalid_request_error", 422: "invalid_request_error",
         500: "server_error", 503: "server_error"}


class APIError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code


_PATH = re.compile(r"(?<![\w.:/])/(?:[\w.+@-]+/)+([\w.+@-]+)")


def without_paths(text: str) -> str:
    """The text with the server's file paths cut to their last part (an API answer never shows where the server
    keeps its files): '/srv/lorakit/jobs/ftjob-1/train.log' -> '.../train.log'."""
    return _PATH.sub(r".../\1", text)


def path_of(loc) -> str:
    """A field's place in a request body as OpenAI's `param` writes it: messages[0].role."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": TYPES.get(status, "invalid_request_error"), "param": param,
                      "code": code}}


def response(status: int, message: str, param: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse(body(status, message, param, code), status_code=status)


def install(app) -> None:
    """Every error the app raises answers in OpenAI's shape (an unexpected one: lorakit.server.security.Guard)."""

    @app.exception_handler(APIError)
    async def _api(_: Request, err: APIError):
        return response(err.status, err.message, err.param, err.code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, err: RequestValidationError):  # query parameters and form fields
        first = err.errors()[0] if err.errors() else {}
        param = path_of(first.get("loc", ())[1:]) or None
        return response(400, f"{param or 'request'}: {first.get('msg', 'invalid request')}", param, "invalid_value")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException):
        if err.status_code in (404, 405):  # no such route (or not with this method): say what is served
            routes = getattr(app.state, "served", [])
            return response(err.status_code, f"{request.method} {request.url.path} is not served by lorakit.serve. "
                            f"It serves: {', '.join(routes)}", None, "unknown_url")
        return response(err.status_code, str(err.detail), None, None)
