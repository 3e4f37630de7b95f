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
        self.slot = slot
        self.idempotent = method in IDEMPOTENT
        self.is_head = method == "HEAD"
        self.cookie_key = target.origin.key + target.path

    def with_cookie(self, cookie: bytes) -> bytes:
        return b"".join((self.head, b"Cookie: ", cookie, b"\r\n\r\n", self.body))


def encode_body(
    json: Any, data: Data | None
) -> tuple[bytes, str | None]:
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


def merge_headers(
    defaults: Mapping[str, str], extra: Mapping[str, str] | None
) -> dict[str, str]:
    """``defaults`` overridden case-insensitively by ``extra``; keys keep extra's case."""
    if not extra:
        return dict(defaults)
    lowered = {k.lower() for k in extra}
    merged = {k: v for k, v in defaults.items() if k.lower() not in lowered}
    merged.update(extra)
    return merged


def encode_head(
    method: str,
    target: Target,
    headers: Mapping[str, str],
    body: bytes,
    content_type: str | None,
) -> bytes:
    """Request line and header lines (each ending CRLF), without the blank line."""
    lines = [f"{method} {target.target} HTTP/1.1", f"Host: {target.origin.host_header}"]
    has_type = False
    for k, v in headers.items():
        if "\r" in k or "\n" in k or "\r" in v or "\n" in v:
            raise ValueError(f"header {k!r} contains a line break")
        low = k.lower()
        if low in ("host", "content-length", "transfer-encoding"):
            if low == "host":
                lines[1] = f"Host: {v}"
            continue
        has_type = has_type or low == "content-type"
        lines.append(f"{k}: {v}")
    if content_type is not None and not has_type:
        lines.append(f"Content-Type: {content_type}")
    if body or method in BODY_METHODS:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("")
    return "\r\n".join(lines).encode("latin-1")
