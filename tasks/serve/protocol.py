"""HTTP/1.1 over TLS for esp_https_ota clients: HEAD, Range, If-Range and ETag as RFC 9110 has them.

Only exact paths from an in-memory allowlist are served; nothing maps a URL to the filesystem.
esp_https_ota's partial download (docs/esp-idf.md §7.4): HEAD (needs 200 + Content-Length), then
Range GETs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = [
    "ByteRange",
    "Limits",
    "Malformed",
    "Request",
    "Resource",
    "Response",
    "error",
    "head_bytes",
    "parse_range",
    "read_request",
    "resource",
    "respond",
]

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_VERSION = re.compile(r"HTTP/(\d)\.(\d)")
# At most 19 ASCII digits (below 2**63): a longer number is "ignore the Range", never an int()
# past Python's 4300-digit limit. A real byte position never needs more.
_RANGE = re.compile(r"([0-9]{0,19})[ \t]*-[ \t]*([0-9]{0,19})")
_LENGTH = re.compile(r"[0-9]{1,19}")
_REASONS = {
    200: "OK",
    206: "Partial Content",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    412: "Precondition Failed",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    431: "Request Header Fields Too Large",
    505: "HTTP Version Not Supported",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Resource:
    """One allowlisted body, held in memory; `etag` is strong and quoted."""

    body: bytes
    content_type: str
    etag: str


def resource(body: bytes, content_type: str) -> Resource:
    """A resource whose strong ETag is the SHA-256 of its bytes (so two images never share one)."""
    return Resource(
        body=body, content_type=content_type, etag=f'"{hashlib.sha256(body).hexdigest()}"'
    )


class Lines(Protocol):
    """What the parser reads from: a buffered binary stream (socket.makefile("rb"))."""

    def readline(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    line: int = 8192  # request line and each header line (nginx's large_client_header_buffers)
    headers: int = 64  # header fields per request
    header_bytes: int = 32768
    handshake_timeout: float = 10.0  # each read or write of the TLS handshake
    head_timeout: float = 20.0  # in total: handshake + request head, then each later head
    idle_timeout: float = 15.0  # keep-alive wait for the next request
    send_timeout: float = 60.0  # one send() to a stalled reader
    connections: int = 1024  # ota.max_connections: held at once, idle ones evicted first
    per_client: int = 32  # ota.max_per_client: held at once from one address; more are refused


@dataclass(frozen=True, slots=True)
class ByteRange:
    first: int
    last: int  # inclusive, as Content-Range writes it


def parse_range(value: str, size: int) -> ByteRange | Literal["unsatisfiable"] | None:
    """RFC 9110 §14.1.2 for one resource of `size` bytes.

    None means "ignore the Range field and send 200": bad syntax, another unit, or several ranges
    (which a server may refuse to combine), or a number longer than 19 digits.
    """
    unit, sep, spec = value.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    if len(parts) != 1:
        return None
    match = _RANGE.fullmatch(parts[0])
    if match is None or match[1] == match[2] == "":
        return None
    if match[1] == "":  # suffix: the last N bytes
        suffix = int(match[2])
        return (
            "unsatisfiable"
            if suffix == 0 or size == 0
            else ByteRange(max(0, size - suffix), size - 1)
        )
    first = int(match[1])
    if match[2] and int(match[2]) < first:
        return None
    if first >= size:
        return "unsatisfiable"
    last = int(match[2]) if match[2] else size - 1
    return ByteRange(first, min(last, size - 1))


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    method: str
    target: str
    version: tuple[int, int]
    headers: Mapping[str, str]  # lower-case names; repeated fields joined with ", "
    has_body: bool = False

    def tokens(self, name: str) -> set[str]:
        return {t.strip().lower() for t in self.headers.get(name, "").split(",") if t.strip()}

    @property
    def keep_alive(self) -> bool:
        wanted = self.tokens("connection")
        if self.version >= (1, 1):
            return "close" not in wanted
        return "keep-alive" in wanted


class Malformed(Exception):
    """A request we answer with `status` and then close the connection."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(status)


def _line(stream: Lines, limit: int, status: int) -> bytes:
    raw = stream.readline(limit + 1)
    if len(raw) > limit:
        raise Malformed(status)
    return raw


def read_request(stream: Lines, limits: Limits = Limits()) -> Request | None:
    """The next request's head from `stream`; None at a clean end of the connection.

    Raises:
        Malformed: carrying the status to answer with (400, 414, 431, 505) before closing.
    """
    raw = _line(stream, limits.line, 414)
    for _ in range(4):  # RFC 9112 §2.2: ignore a few empty lines before the request line
        if raw not in (b"\r\n", b"\n"):
            break
        raw = _line(stream, limits.line, 414)
    if not raw.endswith(b"\n"):
        return None
    method, target, version = _request_line(raw)
    headers: dict[str, str] = {}
    count = total = 0
    while True:
        raw = _line(stream, limits.line, 431)
        if not raw.endswith(b"\n"):
            return None
        if raw in (b"\r\n", b"\n"):
            break
        count, total = count + 1, total + len(raw)
        if count > limits.headers or total > limits.header_bytes:
            raise Malformed(431)
        name, value = _header(raw)
        if name == "host" and name in headers:
            raise Malformed(400)
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return _checked(Request(method=method, target=target, version=version, headers=headers))


def _request_line(raw: bytes) -> tuple[str, str, tuple[int, int]]:
    text = raw.rstrip(b"\r\n").decode("latin-1")
    parts = text.split(" ")
    if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]):
        raise Malformed(400)
    method, target, version_text = parts
    version = _VERSION.fullmatch(version_text)
    if version is None or not target or any(not 0x20 < ord(c) < 0x7F for c in target):
        raise Malformed(400)
    if version[1] != "1":
        raise Malformed(505)
    return method, target, (1, int(version[2]))


def _header(raw: bytes) -> tuple[str, str]:
    text = raw.rstrip(b"\r\n").decode("latin-1")
    name, sep, value = text.partition(":")
    # No whitespace before the colon and no obs-fold continuation lines (RFC 9112 §5.1, §5.2).
    if not sep or not _TOKEN.fullmatch(name) or any(c in value for c in "\0\r\n"):
        raise Malformed(400)
    return name.lower(), value.strip(" \t")


def _checked(request: Request) -> Request:
    headers = request.headers
    if request.version >= (1, 1) and "host" not in headers:
        raise Malformed(400)
    length = headers.get("content-length")
    if length is not None and len({v.strip() for v in length.split(",")}) != 1:
        raise Malformed(400)
    length_value = length.split(",")[0].strip() if length is not None else "0"
    if not _LENGTH.fullmatch(length_value):  # not str.isdigit(): int("²") and 5000 digits raise
        raise Malformed(400)
    # We never read request bodies; a request that has one ends the connection after the answer.
    has_body = int(length_value) > 0 or "transfer-encoding" in headers
    return Request(
        method=request.method,
        target=request.target,
        version=request.version,
        headers=headers,
        has_body=has_body,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: memoryview = field(default_factory=lambda: memoryview(b""))
    range_text: str = ""
    close: bool = False


def _path(target: str) -> str | None:
    """The path of an origin-form or absolute-form target; the query is ignored, as nginx's
    `location =` ignores it. Nothing is percent-decoded: an allowlist key matches literally."""
    if target.startswith("/"):
        return target.partition("?")[0]
    for scheme in ("https://", "http://"):
        if target.lower().startswith(scheme):
            rest = target[len(scheme) :]
            slash = rest.find("/")
            return rest[slash:].partition("?")[0] if slash > 0 else None
    return None


def _etags(value: str) -> list[str]:
    return [tag.strip() for tag in value.split(",") if tag.strip()]


def respond(request: Request, resources: Mapping[str, Resource]) -> Response:
    """What to answer (pure): allowlist, then conditionals, then Range (RFC 9110 §13.2.2 order)."""
    path = _path(request.target)
    if path is None:
        return error(400)
    if request.method not in ("GET", "HEAD"):
        return _close_if(request, Response(status=405, headers=(("Allow", "GET, HEAD"),)))
    found = resources.get(path)
    if found is None:
        return _close_if(request, Response(status=404, headers=()))
    common: tuple[tuple[str, str], ...] = (
        ("ETag", found.etag),
        ("Cache-Control", "no-cache"),
        ("Accept-Ranges", "bytes"),
    )
    if_match = request.headers.get("if-match")
    if if_match is not None and "*" not in _etags(if_match) and found.etag not in _etags(if_match):
        return _close_if(request, Response(status=412, headers=common))
    if_none = request.headers.get("if-none-match")
    if if_none is not None:
        tags = [tag.removeprefix("W/") for tag in _etags(if_none)]
        if "*" in tags or found.etag in tags:
            return _close_if(request, Response(status=304, headers=common))
    body = memoryview(found.body)
    typed: tuple[tuple[str, str], ...] = (*common, ("Content-Type", found.content_type))
    wanted = request.headers.get("range") if request.method == "GET" else None
    # If-Range is a strong comparison; a date (we send no Last-Modified) never matches.
    if wanted is not None and request.headers.get("if-range", found.etag) == found.etag:
        chosen = parse_range(wanted, len(body))
        if chosen == "unsatisfiable":
            headers = (*common, ("Content-Range", f"bytes */{len(body)}"))
            return _close_if(request, Response(status=416, headers=headers, range_text=wanted))
        if chosen is not None:
            content_range = f"bytes {chosen.first}-{chosen.last}/{len(body)}"
            part = body[chosen.first : chosen.last + 1]
            headers = (*typed, ("Content-Range", content_range), ("Content-Length", str(len(part))))
            return _close_if(
                request, Response(status=206, headers=headers, body=part, range_text=wanted)
            )
    headers = (*typed, ("Content-Length", str(len(body))))
    return _close_if(
        request, Response(status=200, headers=headers, body=body, range_text=wanted or "")
    )


def _close_if(request: Request, response: Response) -> Response:
    close = request.has_body or not request.keep_alive
    body = response.body if request.method == "GET" else memoryview(b"")
    return Response(
        status=response.status,
        headers=response.headers,
        body=body,
        range_text=response.range_text,
        close=close,
    )


def error(status: int) -> Response:
    """An answer with no body detail that ends the connection."""
    return Response(status=status, headers=(), close=True)


def head_bytes(response: Response, *, version: tuple[int, int] = (1, 1)) -> bytes:
    """Status line and header block; Content-Length 0 is added for bodiless errors."""
    from email.utils import formatdate

    lines = [f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Error')}"]
    lines.append(f"Date: {formatdate(usegmt=True)}")
    lines += [f"{name}: {value}" for name, value in response.headers]
    names = {name.lower() for name, _ in response.headers}
    if response.status not in (304,) and "content-length" not in names:
        lines.append("Content-Length: 0")
    if response.close:
        lines.append("Connection: close")
    elif version < (1, 1):
        lines.append("Connection: keep-alive")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
