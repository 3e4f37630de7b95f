"""The embedded target's limits and pre-encoded responses (bytes built once, reused)."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from http import HTTPStatus

import orjson

MAX_BODY = 64 * 1024 * 1024
MAX_BYTES = 100 * 1024 * 1024
MAX_HEAD = 64 * 1024
# httptools keeps an unfinished header line to itself, so a line that never ends can only
# be cut off by counting raw bytes; that count is coarser, hence the looser bound.
MAX_HEAD_RAW = 1024 * 1024
MAX_STALL_S = 30.0
MAX_REDIRECTS = 1000
MAX_TOKENS = 1_000_000
# Distinct paths counted one by one; past this, requests to new paths are counted under
# OTHER_PATHS, so that a run over endless unique URLs cannot grow the target without bound.
MAX_PATHS = 100_000
OTHER_PATHS = b"(other)"
WS_MAX_MESSAGE = 16 * 1024 * 1024
STREAM_CHUNK = 64 * 1024
GZIP_INLINE_MAX = 1024 * 1024
# Pipelined requests queue up behind a pending delay; past this many we stop reading so a
# client cannot make us buffer without bound, and resume once the queue has drained.
QUEUE_HIGH = 256
QUEUE_LOW = 32
# After a final response we half-close and wait this long for the client to close: closing
# a socket with unread input makes the kernel send RST, which can destroy the response.
LINGER_S = 2.0

# The ``connection`` header of a response: nothing for HTTP/1.1 keep-alive; an explicit
# ``keep-alive`` when the client asked for it (HTTP/1.0 clients such as ``ab -k`` need it).
_KEEP = b""
_KEEP_EXPLICIT = b"connection: keep-alive\r\n"
_CLOSE = b"connection: close\r\n"

_GET = frozenset({b"GET", b"HEAD"})
_POST = frozenset({b"POST"})
_BODY_METHODS = frozenset({b"POST", b"PUT"})

_TEXT = b"text/plain; charset=utf-8"
_JSON = b"application/json"
_OCTETS = b"application/octet-stream"


def _phrase(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return "Unknown"


_STATUS_LINES = {
    code: f"HTTP/1.1 {code} {_phrase(code)}\r\n".encode("ascii") for code in range(100, 600)
}


def _head(
    status: int,
    content_type: bytes,
    conn: bytes,
    length: int | None,
    extra: bytes = b"",
) -> bytes:
    """A response head; ``length=None`` means a chunked body. ``extra`` holds header lines."""
    framing = (
        b"transfer-encoding: chunked\r\n" if length is None else b"content-length: %d\r\n" % length
    )
    return b"".join(
        (
            _STATUS_LINES[status],
            b"content-type: ",
            content_type,
            b"\r\n",
            framing,
            extra,
            conn,
            b"\r\n",
        )
    )


def _response(
    status: int, body: bytes, content_type: bytes, conn: bytes, extra: bytes = b""
) -> bytes:
    return _head(status, content_type, conn, len(body), extra) + body


def _json_response(status: int, doc: object, conn: bytes, extra: bytes = b"") -> bytes:
    return _response(status, orjson.dumps(doc), _JSON, conn, extra)


def _text_response(status: int, text: str, conn: bytes, extra: bytes = b"") -> bytes:
    return _response(status, text.encode("utf-8"), _TEXT, conn, extra)


def _status_response(code: int, conn: bytes) -> bytes:
    # 204 and 304 must not carry a body, and a 204 must not even claim a length.
    if code in (204, 304):
        return _STATUS_LINES[code] + conn + b"\r\n"
    return _text_response(code, f"{code} {_phrase(code)}\n", conn)


_CONNS = (_KEEP, _KEEP_EXPLICIT, _CLOSE)
_ROOT = {conn: _response(200, b"ok\n", _TEXT, conn) for conn in _CONNS}
_STATUS = {
    (code, conn): _status_response(code, conn) for code in range(200, 600) for conn in _CONNS
}
_NOT_FOUND = {conn: _text_response(404, "not found\n", conn) for conn in _CONNS}

# Byte i of every /bytes and /chunked body is i % 256, so a client can verify what it got.
# The block is a multiple of 256 long so that consecutive blocks continue the pattern, and
# _PATTERN_EXT lets a chunk start at any offset i % 256 and still be one slice.
_PATTERN = bytes(range(256)) * (STREAM_CHUNK // 256)
_PATTERN_EXT = _PATTERN + _PATTERN[:256]

_COOKIE_NAME_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
# RFC 6265 cookie-octet: visible ASCII except DQUOTE, comma, semicolon and backslash.
_COOKIE_VALUE_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - frozenset('",;\\')


def _pattern_pieces(n: int) -> Iterator[bytes]:
    full, rest = divmod(n, STREAM_CHUNK)
    for _ in range(full):
        yield _PATTERN
    if rest:
        yield _PATTERN[:rest]


def _pattern_bytes(n: int) -> bytes:
    return b"".join(_pattern_pieces(n))


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _chunked_pieces(n: int) -> Iterator[bytes]:
    """``n`` pattern bytes in chunked framing: four chunks when small, 64 KiB ones when not."""
    size = STREAM_CHUNK if n > 4 * STREAM_CHUNK else max(1, -(-n // 4))
    sent = 0
    while sent < n:
        take = min(size, n - sent)
        start = sent % 256
        yield _chunk(_PATTERN_EXT[start : start + take])
        sent += take
    yield b"0\r\n\r\n"


def _gzip_chunked_pieces(n: int) -> Iterator[bytes]:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: gzip container
    for piece in _pattern_pieces(n):
        out = compressor.compress(piece)
        if out:
            yield _chunk(out)
    yield _chunk(compressor.flush())  # never empty: it holds the gzip trailer
    yield b"0\r\n\r\n"
