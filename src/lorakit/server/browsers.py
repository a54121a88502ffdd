"""What a web page may not make the user's browser send to the server: the rules against drive-by requests.

Any page the user opens can send "simple" requests (no CORS preflight) to a server on the user's loopback, and a
page whose DNS name is rebound to 127.0.0.1 is, to the browser, the server's own origin. So, on every route, with a
key or without:

- Host: the Host header must name this server: a loopback name, any IP address (a rebinding needs a DNS name),
  the --host given, this machine's name when listening beyond loopback, or a name given with --allow-host. 403
  otherwise: this is what stops DNS rebinding.
- Origin: a request that carries an Origin (browsers send one with every cross-origin request but plain GETs) is
  refused with 403 unless it is the server's own origin or one given with --allow-origin (as Ollama's
  OLLAMA_ORIGINS and Jupyter's allow_origin do). Only allowed origins get CORS headers.
- Content-Type: a body must be `application/json`, or `multipart/form-data` on the upload route alone (415
  otherwise). Browsers may send text/plain, form and multipart bodies to another origin without asking first; a
  JSON body from another origin always needs a preflight, which the Origin rule refuses.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

UPLOAD_PATH = "/v1/files"
BODY_METHODS = {"POST", "PUT", "PATCH"}
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def host_name(header: str) -> str:
    """The name part of a Host header ('[::1]:8000' -> '::1', 'Example.org.:80' -> 'example.org')."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].split("]", 1)[0]
    if header.count(":") == 1:
        header = header.split(":", 1)[0]
    return header.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class BrowserRules:
    bind: str = "127.0.0.1"                                   # the --host the server listens on
    hosts: frozenset[str] = field(default_factory=frozenset)  # --allow-host: more names, or "*" for any
    origins: frozenset[str] = field(default_factory=frozenset)  # --allow-origin: e.g. http://localhost:3000, "*"

    def __post_init__(self):
        names = set(LOOPBACK_NAMES) | {host_name(h) for h in self.hosts}
        if not _is_ip(host_name(self.bind)):
            names.add(host_name(self.bind))
        elif not ipaddress.ip_address(host_name(self.bind)).is_loopback:  # 0.0.0.0, ::, a LAN address
            names.add(socket.gethostname().lower())
        object.__setattr__(self, "_names", frozenset(names))
        object.__setattr__(self, "_origins", frozenset(o.rstrip("/").lower() for o in self.origins))

    def allowed_origin(self, origin: str, host: str) -> bool:
        origin = origin.rstrip("/").lower()
        return ("*" in self._origins or origin in self._origins
                or origin in {f"http://{host.lower()}", f"https://{host.lower()}"})

    def refusal(self, method: str, path: str, headers: dict[bytes, bytes]) -> tuple[int, str, str] | None:
        """(status, message, code) when a browser's request must be refused, else None."""
        host = headers.get(b"host", b"").decode("latin-1")
        name = host_name(host)
        if host and not ("*" in self._names or name in self._names or _is_ip(name)):
            return (403, f"Host {host!r} is not a name of this server (a DNS-rebinding page uses its own name): "
                         "use 127.0.0.1 or localhost, or start lorakit.serve with --allow-host NAME",
                    "host_not_allowed")
        origin = headers.get(b"origin", b"").decode("latin-1")
        if origin and not self.allowed_origin(origin, host):
            return (403, f"requests from web pages of another origin ({origin}) are refused; start lorakit.serve "
                         f"with --allow-origin {origin} to allow that page", "origin_not_allowed")
        if method in BODY_METHODS:
            return _content_type_refusal(path, headers)
        return None


def is_preflight(method: str, headers: dict[bytes, bytes]) -> bool:
    """A browser's CORS preflight (it carries no key): answered by the CORS middleware for allowed origins."""
    return method == "OPTIONS" and b"origin" in headers and b"access-control-request-method" in headers


def _content_type_refusal(path: str, headers: dict[bytes, bytes]) -> tuple[int, str, str] | None:
    kind = headers.get(b"content-type", b"").decode("latin-1").split(";", 1)[0].strip().lower()
    upload = path.rstrip("/") == UPLOAD_PATH
    wanted = "multipart/form-data" if upload else "application/json"
    if kind == wanted:
        return None
    empty = headers.get(b"content-length", b"0").strip() == b"0" and b"transfer-encoding" not in headers
    if not kind and empty and not upload:  # a POST with no body at all (cancel, pause, resume)
        return None
    return (415, f"{path} takes a {wanted} body, not {kind or 'one without a Content-Type'}",
            "unsupported_media_type")
