"""Responses, built for free and read lazily.

A ``Response`` holds the raw bytes as received. Headers are split out of them on first
access; the body is de-chunked (by re-running httptools over the bytes) and
decompressed on first access. A scenario that looks only at ``status`` pays for none
of it.
"""

from __future__ import annotations

import contextlib
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from cannonade.engine.http.errors import ContentDecodeError, HttpStatusError

RawHeaders = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Head:
    """The final (non-1xx) status line and headers found at the start of a response."""

    status: int
    headers: RawHeaders
    body_offset: int


def parse_head(data: bytes) -> Head | None:
    """Split the head of a response that llhttp already accepted; None if incomplete.

    Interim 1xx responses (100 Continue) are skipped. No validation happens here: the
    bytes reached this point only through the strict parser.
    """
    pos = 0
    while True:
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            return None
        lines = data[pos:end].split(b"\r\n")
        fields = lines[0].split(b" ", 2)
        status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
        pos = end + 4
        if 100 <= status < 200 and status != 101:
            continue
        headers: RawHeaders = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name, value.strip(b" \t")))
        return Head(status, headers, pos)


# The first header line that is a Set-Cookie (any case) or the blank line ending the head,
# whichever comes first: one scan that stops at the end of the head, for first chunks
# too large to lower() whole.
_SET_COOKIE_OR_END = re.compile(rb"\r\n(?:[sS][eE][tT]-[cC][oO][oO][kK][iI][eE]:|\r\n)")
_LOWER_LIMIT = 2048


def might_set_cookie(raw: bytes, whole: bool) -> bool:
    """Cheap pre-check on a response's first chunk: can it carry Set-Cookie?

    ``whole`` says ``raw`` is the entire response, so its head is all there. False only
    when the head has no Set-Cookie field, in any case; a Set-Cookie line inside a body
    only costs a proper look at the head. (Per docs/http-client.md, lower() + find is
    ~2,400 instructions, the regex ~4,200, an ``on_header`` callback ~1,500 per header.)
    A 1xx before the final response ends the regex's scan early, so the client checks
    responses that had one the slow way.
    """
    if whole and len(raw) <= _LOWER_LIMIT:
        return raw.lower().find(b"\nset-cookie:") >= 0
    match = _SET_COOKIE_OR_END.search(raw)
    return match is None or match.end() - match.start() != 4


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only response headers; repeated fields join with ", "."""

    __slots__ = ("_items", "_map")

    def __init__(self, raw: RawHeaders) -> None:
        self._items = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw]
        merged: dict[str, str] = {}
        for name, value in self._items:
            key = name.lower()
            seen = merged.get(key)
            merged[key] = value if seen is None else f"{seen}, {value}"
        self._map = merged

    def __getitem__(self, name: str) -> str:
        return self._map[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._map

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._map)

    def get_all(self, name: str) -> list[str]:
        """Every value of a field, unjoined (for Set-Cookie, whose values hold commas)."""
        key = name.lower()
        return [v for n, v in self._items if n.lower() == key]

    @property
    def raw(self) -> list[tuple[str, str]]:
        """The fields in arrival order with their original case."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class _BodyCollector:
    """httptools callbacks that keep the body of the last message fed."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def on_message_begin(self) -> None:
        self.parts = []  # a 1xx before the final response has no body to keep

    def on_body(self, body: bytes) -> None:
        self.parts.append(body)


def _decode(body: bytes, encoding: str) -> bytes:
    codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
    try:
        for coding in reversed(codings):  # the last coding listed was applied last
            if coding in ("gzip", "x-gzip"):
                body = zlib.decompress(body, wbits=16 + zlib.MAX_WBITS)
            elif coding == "deflate":
                # "deflate" means a zlib stream, but some servers send raw deflate.
                try:
                    body = zlib.decompress(body)
                except zlib.error:
                    body = zlib.decompress(body, wbits=-zlib.MAX_WBITS)
            elif coding != "identity":
                return body  # not one we asked for: hand it over undecoded
    except zlib.error as exc:
        raise ContentDecodeError(f"body is not valid {encoding}: {exc}") from exc
    return body


class Response:
    """What one request got back. ``status`` is 0 when ``error`` is set (transport failure)."""

    __slots__ = (
        "_body",
        "_head",
        "_headers",
        "_more",
        "_raw",
        "elapsed",
        "error",
        "error_kind",
        "history",
        "method",
        "status",
        "url",
    )

    def __init__(
        self,
        method: str,
        url: str,
        status: int,
        elapsed: float,
        raw: bytes | None,
        more: list[bytes] | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.elapsed = elapsed
        self.error_kind: str | None = None  # set with error for a transport failure
        self.error: str | None = None
        self.history: Sequence[Response] = ()
        self._raw = raw
        self._more = more
        self._head: Head | None = None
        self._headers: Headers | None = None
        self._body: bytes | None = None

    @classmethod
    def failure(cls, method: str, url: str, elapsed: float, kind: str, message: str) -> Response:
        """A response that never came: ``status`` 0, the transport error's kind and text."""
        response = cls(method, url, 0, elapsed, None)
        response.error_kind = kind
        response.error = message
        return response

    @property
    def ok(self) -> bool:
        return self.error is None and self.status < 400

    def raise_for_status(self) -> Response:
        if not self.ok:
            raise HttpStatusError(self)
        return self

    @property
    def headers(self) -> Headers:
        headers = self._headers
        if headers is None:
            head = self._parse_head()
            headers = self._headers = Headers(head.headers if head is not None else [])
        return headers

    @property
    def body(self) -> bytes:
        body = self._body
        if body is None:
            body = self._body = self._read_body()
        return body

    @property
    def text(self) -> str:
        charset = "utf-8"
        for param in self.headers.get("content-type", "").split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def raw_size(self) -> int:
        """Bytes received for this response, head included."""
        return len(self._data())

    def set_cookie_values(self) -> list[str]:
        head = self._parse_head()
        if head is None:
            return []
        return [v.decode("latin-1") for n, v in head.headers if n.lower() == b"set-cookie"]

    def _data(self) -> bytes:
        raw = self._raw
        if raw is None:
            return b""
        if self._more is None:
            return raw
        joined = raw + b"".join(self._more)
        self._raw, self._more = joined, None
        return joined

    def _parse_head(self) -> Head | None:
        if self._head is None and self._raw is not None:
            self._head = parse_head(self._data())
        return self._head

    def _read_body(self) -> bytes:
        if self.error is not None or self.method == "HEAD" or self._raw is None:
            return b""
        collector = _BodyCollector()
        parser = HttpResponseParser(collector)
        # The bytes were accepted once already; a 101 ends the HTTP part: keep what parsed.
        with contextlib.suppress(HttpParserError, HttpParserUpgrade):
            parser.feed_data(self._data())
        body = collector.parts[0] if len(collector.parts) == 1 else b"".join(collector.parts)
        encoding = self.headers.get("content-encoding")
        return _decode(body, encoding) if encoding else body

    def __repr__(self) -> str:
        if self.error is not None:
            return f"<Response {self.method} {self.url} error={self.error_kind}: {self.error}>"
        return f"<Response {self.method} {self.url} {self.status}>"
