"""Request encoding: a request becomes its wire bytes once, then is reused.

A :class:`Prepared` request carries everything the hot path needs so that sending it
is attribute reads only: the origin's pool key, the encoded head and body, and (for
cached requests) the recorder slot of its default name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import orjson

from cannonade.engine.http.urls import Origin, Target
from cannonade.model.recorder import RequestSlot

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
# Methods whose requests carry a body by convention; they say "Content-Length: 0" when
# empty, because some servers answer 411 to a bodiless POST.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

Data = bytes | str | Mapping[str, str]


class Prepared:
    """One encoded request. ``wire`` is what goes out when the cookie jar is empty."""

    __slots__ = (
        "body",
        "content_type",
        "cookie_key",
        "head",
        "idempotent",
        "is_head",
        "method",
        "name",
        "no_cookie",
        "origin",
        "path",
        "pool_key",
        "slot",
        "url",
        "wire",
    )

    def __init__(
        self,
        method: str,
        target: Target,
        name: str,
        *,
        head: bytes,
        body: bytes,
        content_type: str | None,
        slot: RequestSlot,
    ) -> None:
        self.method = method
        self.url = target.url
        self.origin: Origin = target.origin
        self.pool_key = target.origin.key
        self.path = target.path
        self.name = name
        self.head = head  # request line and headers, without the closing blank line
        self.body = body
        self.content_type = content_type
        self.wire = head + b"\r\n" + body
        # The last whole response to this request known to carry no Set-Cookie. A
        # static endpoint answers the same bytes many times a second, and comparing
        # bytes (a memcmp) is far cheaper than scanning them: exact, never a guess.
        self.no_cookie = b""
        self.slot = slot
        self.idempotent = method in IDEMPOTENT
        self.is_head = method == "HEAD"
        self.cookie_key = target.origin.key + target.path

    def with_cookie(self, cookie: bytes) -> bytes:
        return b"".join((self.head, b"Cookie: ", cookie, b"\r\n\r\n", self.body))


def encode_body(json: Any, data: Data | None) -> tuple[bytes, str | None]:
    """The body bytes and the Content-Type they imply (None: let the caller decide)."""
    if json is not None:
        if data is not None:
            raise TypeError("pass json= or data=, not both")
        return orjson.dumps(json), "application/json"
    if data is None:
        return b"", None
    if isinstance(data, bytes):
        return data, None
    if isinstance(data, str):
        return data.encode(), None
    return urlencode(list(data.items())).encode(), "application/x-www-form-urlencoded"


def merge_headers(defaults: Mapping[str, str], extra: Mapping[str, str] | None) -> dict[str, str]:
    """``defaults`` overridden case-insensitively by ``extra``; keys keep extra's case."""
    if not extra:
        return dict(defaults)
    lowered = {k.lower() for k in extra}
    merged = {k: v for k, v in defaults.items() if k.lower() not in lowered}
    merged.update(extra)
    return merged


# Framing headers are the client's to write; a scenario's value would corrupt the stream.
_FRAMING = frozenset({"content-length", "transfer-encoding"})

HeaderLines = list[tuple[str, bytes]]  # (lower-case name, b"Name: value\r\n")


def header_lines(headers: Mapping[str, str]) -> HeaderLines:
    lines: HeaderLines = []
    for k, v in headers.items():
        if "\r" in k or "\n" in k or "\r" in v or "\n" in v:
            raise ValueError(f"header {k!r} contains a line break")
        low = k.lower()
        if low not in _FRAMING:
            lines.append((low, f"{k}: {v}\r\n".encode("latin-1")))
    return lines


class Stem:
    """What every request for one (method, URL as written) shares, encoded once.

    Cached on ``HttpShared``, so a request with per-call parts (params, headers, a body)
    costs string joins, not URL parsing and header formatting.
    """

    __slots__ = ("fields", "has_type", "line", "lines", "method", "name", "slot", "target")

    def __init__(
        self,
        method: str,
        target: Target,
        name: str,
        slot: RequestSlot,
        defaults: Mapping[str, str],
    ) -> None:
        self.method = method
        self.target = target
        self.name = name
        self.slot = slot
        self.line = _request_line(method, target)
        lines = header_lines(defaults)
        if not any(low == "host" for low, _ in lines):
            lines.insert(0, ("host", f"Host: {target.origin.host_header}\r\n".encode()))
        self.lines = lines
        self.fields = b"".join(line for _, line in lines)
        self.has_type = any(low == "content-type" for low, _ in lines)

    def prepare(
        self,
        *,
        query: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        name: str | None = None,
        slot: RequestSlot | None = None,
    ) -> Prepared:
        """A request from this stem, with the per-call parts given."""
        method = self.method
        target = self.target
        line = self.line
        if query:
            target = target.with_query(query)
            line = _request_line(method, target)
        fields = self.fields
        has_type = self.has_type
        if headers:
            call = header_lines(headers)
            override = {low for low, _ in call}
            fields = b"".join(
                [line for low, line in self.lines if low not in override]
                + [line for _, line in call]
            )
            has_type = has_type or "content-type" in override
        head = line + fields
        if content_type is not None and not has_type:
            head += f"Content-Type: {content_type}\r\n".encode("latin-1")
        if body or method in BODY_METHODS:
            head += b"Content-Length: %d\r\n" % len(body)
        return Prepared(
            method,
            target,
            self.name if name is None else name,
            head=head,
            body=body,
            content_type=content_type,
            slot=self.slot if slot is None else slot,
        )


def _request_line(method: str, target: Target) -> bytes:
    return f"{method} {target.target} HTTP/1.1\r\n".encode("ascii")
