"""The embedded target: a small, fast, exactly-counting HTTP/1.1 server.

One asyncio loop (uvloop when available), one ``asyncio.Protocol`` per connection and
``httptools`` for parsing. Everything a run may want to check afterwards (request counts,
injected delays, issued tokens) lives on a ``TargetState`` owned by the server.

Counting rule: a request is counted the moment its last byte has been parsed, before any
response is produced. A client that gives up during ``/delay`` has still been counted, and
the count never depends on whether or when the response was written. Requests that never
parse completely (malformed bytes, oversized heads or bodies) are not counted as requests;
they appear under ``rejected`` instead.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import math
import os
import random
import secrets
import signal
import socket
import sys
import time
import zlib
from array import array
from collections import deque
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import parse_qsl

import httptools
import orjson
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from cannonade.errors import TargetError
from cannonade.target.delays import DelayParamError, parse_distribution

__all__ = ["TargetServer", "TargetState", "main", "serve"]

log = logging.getLogger(__name__)

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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


class TargetState:
    """Everything the target remembers, shared by all its connections."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng if rng is not None else random.Random()
        self.connections: set[_Connection] = set()
        self.tokens: dict[str, str] = {}
        self._token_order: deque[str] = deque()
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.paths: dict[bytes, int] = {}
        self.delays = array("d")
        self.delays_by_dist: dict[str, list[float]] = {}
        self.rejected = 0
        self.stalls = 0
        self.stall_ms = 0.0
        self.connections_opened = 0
        self.ws_messages = 0

    def record_delay(self, dist: str, ms: float) -> None:
        self.delays.append(ms)
        entry = self.delays_by_dist.get(dist)
        if entry is None:
            self.delays_by_dist[dist] = [1, ms]
        else:
            entry[0] += 1
            entry[1] += ms

    def issue_token(self, user: str) -> str:
        token = secrets.token_hex(16)
        self.tokens[token] = user
        self._token_order.append(token)
        # Bounded so that a long login-heavy run cannot grow the target without limit.
        if len(self._token_order) > MAX_TOKENS:
            self.tokens.pop(self._token_order.popleft(), None)
        return token

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "paths": {path.decode("latin-1"): n for path, n in self.paths.items()},
            "delays": {
                "count": len(self.delays),
                "sum_ms": math.fsum(self.delays),
                "by_dist": {
                    name: {"count": int(count), "sum_ms": total}
                    for name, (count, total) in self.delays_by_dist.items()
                },
            },
            "rejected": self.rejected,
            "stalls": {"count": self.stalls, "sum_ms": self.stall_ms},
            "connections": {"opened": self.connections_opened, "open": len(self.connections)},
            "ws_messages": self.ws_messages,
        }


class _Reject(Exception):
    """Raised from a parser callback to abandon a request; the status is on the connection."""


class _Queued:
    """A response waiting its turn: pipelined responses must leave in request order."""

    __slots__ = ("close", "data", "stream", "timer")

    def __init__(self, data: bytes | None, stream: Iterator[bytes] | None, close: bool) -> None:
        self.data = data  # None while a delay is pending
        self.stream = stream
        self.close = close
        self.timer: asyncio.TimerHandle | None = None


Handler = Callable[["_Connection", bytes], "bytes | None"]


class _Connection(asyncio.Protocol):
    __slots__ = (
        "_body",
        "_body_size",
        "_closing",
        "_conn",
        "_drain_then_close",
        "_expect_continue",
        "_head_raw",
        "_head_size",
        "_headers",
        "_in_head",
        "_keep_alive_asked",
        "_linger",
        "_loop",
        "_method",
        "_parser",
        "_query",
        "_queue",
        "_read_paused",
        "_reject",
        "_state",
        "_timer_round",
        "_transport",
        "_url",
        "_write_paused",
        "_ws",
    )

    def __init__(
        self, state: TargetState, loop: asyncio.AbstractEventLoop, timer_round: float
    ) -> None:
        self._state = state
        self._loop = loop
        self._timer_round = timer_round
        self._transport: asyncio.Transport = cast(asyncio.Transport, None)
        self._parser = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] | None = None
        self._body_size = 0
        self._in_head = False
        self._head_size = 0
        self._head_raw = 0
        self._keep_alive_asked = False
        self._expect_continue = False
        self._reject: tuple[int, str] | None = None
        self._method = b""
        self._query = b""
        self._conn = _KEEP
        self._queue: deque[_Queued] = deque()
        self._closing = False
        self._drain_then_close = False
        self._write_paused = False
        self._read_paused = False
        self._linger: asyncio.TimerHandle | None = None
        self._ws: ServerProtocol | None = None

    # -- transport events -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._state.connections.add(self)
        self._state.connections_opened += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._state.connections.discard(self)
        for item in self._queue:
            if item.timer is not None:
                item.timer.cancel()
        self._queue.clear()
        if self._linger is not None:
            self._linger.cancel()

    def pause_writing(self) -> None:
        self._write_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        self._flush()

    def eof_received(self) -> bool:
        if self._ws is not None and not self._closing:
            self._ws.receive_eof()
            self._ws_flush()
        if self._queue:
            # The client half-closed after pipelining: answer what is pending, then close.
            self._drain_then_close = True
            return True
        return False

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return  # the final response is out; whatever follows is not served
        if self._ws is not None:
            self._ws_received(data)
            return
        if self._in_head:
            self._head_raw += len(data)
            if self._head_raw > MAX_HEAD_RAW:
                self._fail(431, "request head larger than 64 KiB")
                return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        while True:
            try:
                self._parser.feed_data(data)
                return
            except httptools.HttpParserUpgrade as exc:
                data = data[exc.args[0] :]
                if self._ws is not None:
                    if data:
                        self._ws_received(data)
                    return
                if self._closing or not data:
                    return
                # An upgrade we declined (anything but /ws): carry on with plain HTTP.
            except httptools.HttpParserError as exc:
                if self._closing:
                    return  # e.g. bytes after "Connection: close", which llhttp refuses
                if self._reject is not None:
                    self._fail(*self._reject)
                else:
                    self._fail(400, f"malformed request: {exc}")
                return

    # -- parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = []
        self._body = None
        self._body_size = 0
        self._in_head = True
        self._head_size = 0
        self._head_raw = 0
        self._keep_alive_asked = False
        self._expect_continue = False

    def _head_too_large(self) -> _Reject:
        self._reject = (431, "request head larger than 64 KiB")
        return _Reject()

    def on_url(self, url: bytes) -> None:
        self._url = url if not self._url else self._url + url
        self._head_size += len(url)
        if self._head_size > MAX_HEAD:
            raise self._head_too_large()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        n = len(name)
        self._head_size += n + len(value)
        if self._head_size > MAX_HEAD:
            raise self._head_too_large()
        if n == 14 and name.lower() == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return  # llhttp rejects it on its own
            if length > MAX_BODY:
                self._reject = (413, "request body larger than 64 MiB")
                raise _Reject
        elif n == 10 and name.lower() == b"connection" and b"keep-alive" in value.lower():
            self._keep_alive_asked = True
        elif n == 6 and name.lower() == b"expect" and value.lower() == b"100-continue":
            self._expect_continue = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._expect_continue:
            # curl waits a second for this before sending a large body; say go ahead.
            self._send(b"HTTP/1.1 100 Continue\r\n\r\n", False)

    def on_body(self, body: bytes) -> None:
        if self._body is None:
            self._body = [body]
        else:
            self._body.append(body)
        self._body_size += len(body)
        if self._body_size > MAX_BODY:
            self._reject = (413, "request body larger than 64 MiB")
            raise _Reject

    def on_message_complete(self) -> None:
        if self._closing:
            return
        url = self._url
        q = url.find(b"?")
        if q < 0:
            path = url
            self._query = b""
        else:
            path = url[:q]
            self._query = url[q + 1 :]
        if path[:1] != b"/":
            path = self._origin_form(url)
        state = self._state
        if path not in _UNCOUNTED:
            state.requests += 1
            paths = state.paths
            seen = paths.get(path)
            if seen is not None:
                paths[path] = seen + 1
            elif len(paths) < MAX_PATHS:
                paths[path] = 1
            else:
                paths[OTHER_PATHS] = paths.get(OTHER_PATHS, 0) + 1

        keep = self._parser.should_keep_alive()
        conn = self._conn = (
            (_KEEP_EXPLICIT if self._keep_alive_asked else _KEEP) if keep else _CLOSE
        )
        method = self._method = self._parser.get_method()
        response: bytes | None
        try:
            route = _ROUTES.get(path)
            arg = b""
            if route is None:
                slash = path.find(b"/", 1)
                if slash > 0:
                    route = _PREFIX_ROUTES.get(path[:slash])
                    arg = path[slash + 1 :]
            if route is None:
                response = _NOT_FOUND[conn]
            else:
                handler, methods = route
                if methods is not None and method not in methods:
                    allow = b"allow: " + b", ".join(sorted(methods)) + b"\r\n"
                    response = _text_response(405, "method not allowed\n", conn, allow)
                else:
                    response = handler(self, arg)
        except Exception:  # a bug in a handler must not take the server down
            log.exception("target: handler for %r failed", url)
            response, keep = _text_response(500, "internal error\n", _CLOSE), False
        self._body = None
        if response is not None:
            if method == b"HEAD":
                response = response[: response.index(b"\r\n\r\n") + 4]
            self._send(response, not keep)

    def _origin_form(self, url: bytes) -> bytes:
        # Absolute-form targets ("GET http://host/x") come from proxies and odd clients.
        try:
            parsed = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            return url
        self._query = parsed.query or b""
        path: bytes = parsed.path or b"/"
        return path

    # -- writing ------------------------------------------------------------------------

    def _send(self, data: bytes, close: bool) -> None:
        if close:
            self._closing = True
        if self._queue:
            self._queue.append(_Queued(data, None, close))
            self._update_reading()
            return
        self._transport.write(data)
        if close:
            self._finish()

    def _send_stream(self, head: bytes, stream: Iterator[bytes]) -> None:
        close = self._conn is _CLOSE
        if close:
            self._closing = True
        if self._method == b"HEAD":
            self._queue.append(_Queued(head, None, close))
        else:
            self._queue.append(_Queued(head, stream, close))
        self._flush()

    def _send_later(self, delay_s: float, data: bytes) -> None:
        close = self._conn is _CLOSE
        if close:
            self._closing = True
        if self._method == b"HEAD":
            data = data[: data.index(b"\r\n\r\n") + 4]
        item = _Queued(None, None, close)
        self._arm(item, data, time.monotonic() + delay_s)
        self._queue.append(item)
        self._update_reading()

    def _arm(self, item: _Queued, data: bytes, deadline: float) -> None:
        wait = deadline - time.monotonic() + self._timer_round
        item.timer = self._loop.call_later(wait, self._delay_elapsed, item, data, deadline)

    def _delay_elapsed(self, item: _Queued, data: bytes, deadline: float) -> None:
        if time.monotonic() < deadline:
            # Loop timers count whole milliseconds from a clock read at some point in the
            # current iteration, so they can fire a fraction of a ms early; a delay must
            # never be shorter than asked.
            self._arm(item, data, deadline)
            return
        item.timer = None
        item.data = data
        self._flush()

    def _flush(self) -> None:
        queue = self._queue
        transport = self._transport
        while queue:
            item = queue[0]
            if item.data is None:
                break
            if item.data:
                transport.write(item.data)
                item.data = b""
            stream = item.stream
            if stream is not None:
                while not self._write_paused:
                    piece = next(stream, None)
                    if piece is None:
                        item.stream = stream = None
                        break
                    transport.write(piece)
                if stream is not None:
                    break  # resume_writing() continues from here
            queue.popleft()
            if item.close:
                self._finish()
                return
        if not queue and self._drain_then_close:
            transport.close()
            return
        self._update_reading()

    def _update_reading(self) -> None:
        transport = self._transport
        if transport.is_closing():
            return
        if self._read_paused:
            if not self._write_paused and len(self._queue) <= QUEUE_LOW:
                self._read_paused = False
                transport.resume_reading()
        elif self._write_paused or len(self._queue) > QUEUE_HIGH:
            self._read_paused = True
            transport.pause_reading()

    def _finish(self) -> None:
        """Close after a final response without losing it to a RST."""
        self._closing = True
        transport = self._transport
        if transport.is_closing():
            return
        if self._drain_then_close:
            transport.close()  # the client has closed its side already
        elif transport.can_write_eof():
            transport.write_eof()
            if self._read_paused:
                self._read_paused = False
                transport.resume_reading()  # to see the client's EOF
            self._linger = self._loop.call_later(LINGER_S, transport.close)
        else:
            transport.close()

    def _fail(self, status: int, message: str) -> None:
        self._state.rejected += 1
        self._send(_text_response(status, message + "\n", _CLOSE), True)

    def close(self) -> None:
        self._closing = True
        self._transport.close()

    # -- request helpers ----------------------------------------------------------------

    def header(self, name: bytes) -> bytes | None:
        """The first request header called ``name`` (lower case)."""
        for key, value in self._headers:
            if key.lower() == name:
                return value
        return None

    def params(self) -> dict[str, str]:
        return dict(parse_qsl(self._query.decode("latin-1"), keep_blank_values=True))

    def body(self) -> bytes:
        return b"".join(self._body) if self._body else b""

    # -- websocket ----------------------------------------------------------------------

    def start_websocket(self) -> None:
        headers = Headers(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in self._headers
        )
        # The handshake was parsed by httptools, so one protocol object only checks it and
        # writes the answer; a second one, born OPEN, speaks frames (one started in
        # CONNECTING would expect to parse the HTTP request itself). No extensions are
        # offered, so nothing negotiated needs to carry over.
        handshake = ServerProtocol()
        response = handshake.accept(Request(self._url.decode("latin-1"), headers))
        handshake.send_response(response)
        if response.status_code == 101:
            self._ws = ServerProtocol(state=State.OPEN, max_size=WS_MAX_MESSAGE)
        self._ws_flush(handshake)

    def _ws_received(self, data: bytes) -> None:
        ws = cast(ServerProtocol, self._ws)
        ws.receive_data(data)
        for event in ws.events_received():
            # Frames that arrive with the client's close are not echoed: after a close
            # the protocol may send nothing but its own close.
            if not isinstance(event, Frame) or ws.state is not State.OPEN:
                continue
            opcode = event.opcode
            if opcode is Opcode.TEXT:
                ws.send_text(event.data, fin=event.fin)
            elif opcode is Opcode.BINARY:
                ws.send_binary(event.data, fin=event.fin)
            elif opcode is Opcode.CONT:
                ws.send_continuation(event.data, fin=event.fin)
            else:
                continue  # pings are answered by the protocol itself
            if event.fin:
                self._state.ws_messages += 1
        self._ws_flush()

    def _ws_flush(self, protocol: ServerProtocol | None = None) -> None:
        ws = protocol if protocol is not None else self._ws
        if ws is None:
            return
        out = ws.data_to_send()
        if not out:
            return
        # An empty chunk is the protocol asking us to end the TCP stream.
        eof = not out[-1]
        self._send(b"".join(out), eof)


_UNCOUNTED = frozenset({b"/__stats", b"/__stats/reset", b"/__delays"})


# -- handlers: (connection, path remainder) -> response, or None when sent by the handler --


def _bad(c: _Connection, message: str) -> bytes:
    return _text_response(400, message + "\n", c._conn)


def _int_arg(arg: bytes) -> int | None:
    if not arg or len(arg) > 12 or not arg.isdigit():
        return None
    return int(arg)


def _h_root(c: _Connection, arg: bytes) -> bytes:
    return _ROOT[c._conn]


def _h_delay(c: _Connection, arg: bytes) -> bytes | None:
    try:
        dist = parse_distribution(c.params())
    except DelayParamError as exc:
        return _bad(c, str(exc))
    state = c._state
    ms = dist.sample(state.rng)
    state.record_delay(dist.name, ms)
    response = _json_response(200, {"delay_ms": ms, "dist": dist.name}, c._conn)
    if ms <= 0:
        return response
    c._send_later(ms / 1000.0, response)
    return None


def _h_status(c: _Connection, arg: bytes) -> bytes:
    code = _int_arg(arg)
    if code is None or not 200 <= code <= 599:
        return _bad(c, f"status: {arg.decode('latin-1')!r} is not a code in 200-599")
    return _STATUS[code, c._conn]


def _byte_count(c: _Connection, arg: bytes) -> int | bytes:
    n = _int_arg(arg)
    if n is None or n > MAX_BYTES:
        return _bad(c, f"n: {arg.decode('latin-1')!r} is not a byte count in 0-{MAX_BYTES}")
    return n


def _h_bytes(c: _Connection, arg: bytes) -> bytes | None:
    n = _byte_count(c, arg)
    if isinstance(n, bytes):
        return n
    accept = c.header(b"accept-encoding")
    if c.params().get("gzip") == "1" and accept is not None and b"gzip" in accept.lower():
        extra = b"content-encoding: gzip\r\nvary: accept-encoding\r\n"
        if n <= GZIP_INLINE_MAX:
            body = zlib.compress(_pattern_bytes(n), 6, 31)  # wbits 31: gzip container
            return _response(200, body, _OCTETS, c._conn, extra)
        # Compressing 100 MiB up front would block the loop for a while; stream it instead.
        c._send_stream(_head(200, _OCTETS, c._conn, None, extra), _gzip_chunked_pieces(n))
        return None
    if n <= STREAM_CHUNK:
        return _response(200, _PATTERN[:n], _OCTETS, c._conn)
    c._send_stream(_head(200, _OCTETS, c._conn, n), _pattern_pieces(n))
    return None


def _h_chunked(c: _Connection, arg: bytes) -> bytes | None:
    n = _byte_count(c, arg)
    if isinstance(n, bytes):
        return n
    c._send_stream(_head(200, _OCTETS, c._conn, None), _chunked_pieces(n))
    return None


def _h_echo(c: _Connection, arg: bytes) -> bytes:
    content_type = c.header(b"content-type") or _OCTETS
    return _response(200, c.body(), content_type, c._conn)


def _h_headers(c: _Connection, arg: bytes) -> bytes:
    doc: dict[str, str] = {}
    for raw_name, raw_value in c._headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name in doc:
            doc[name] += ("; " if name == "cookie" else ", ") + value
        else:
            doc[name] = value
    return _json_response(200, doc, c._conn)


def _request_cookies(c: _Connection) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for name, value in c._headers:
        if name.lower() != b"cookie":
            continue
        for pair in value.decode("latin-1").split(";"):
            key, sep, val = pair.strip().partition("=")
            if sep and key:
                cookies[key] = val
    return cookies


def _h_cookies(c: _Connection, arg: bytes) -> bytes:
    return _json_response(200, _request_cookies(c), c._conn)


def _h_cookies_set(c: _Connection, arg: bytes) -> bytes:
    pairs = parse_qsl(c._query.decode("latin-1"), keep_blank_values=True)
    if not pairs:
        return _bad(c, "query: give at least one name=value to set")
    lines = []
    for name, value in pairs:
        # Both end up verbatim in a header line, so anything outside the RFC 6265 alphabet
        # (notably CR/LF from %0d%0a) would let a query inject headers.
        if not name or not _COOKIE_NAME_CHARS.issuperset(name):
            return _bad(c, f"{name!r}: not a valid cookie name")
        if not _COOKIE_VALUE_CHARS.issuperset(value):
            return _bad(c, f"{name}: {value!r} is not a valid cookie value")
        lines.append(f"set-cookie: {name}={value}; Path=/\r\n".encode("ascii"))
    return _json_response(200, dict(pairs), c._conn, b"".join(lines))


def _redirect(c: _Connection, location: str) -> bytes:
    extra = b"location: " + location.encode("utf-8") + b"\r\n"
    return _text_response(302, f"redirecting to {location}\n", c._conn, extra)


def _h_redirect(c: _Connection, arg: bytes) -> bytes:
    n = _int_arg(arg)
    if n is None or not 1 <= n <= MAX_REDIRECTS:
        return _bad(c, f"n: {arg.decode('latin-1')!r} is not a count in 1-{MAX_REDIRECTS}")
    return _redirect(c, "/" if n == 1 else f"/redirect/{n - 1}")


def _h_redirect_to(c: _Connection, arg: bytes) -> bytes:
    url = c.params().get("url", "")
    if not url:
        return _bad(c, "url: is required")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return _bad(c, "url: control characters are not allowed")
    return _redirect(c, url)


def _h_json(c: _Connection, arg: bytes) -> bytes:
    doc = {
        "token": f"tok-{c._state.rng.getrandbits(64):016x}",
        "items": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}],
        "user": {"name": "ada"},
    }
    return _json_response(200, doc, c._conn)


def _credentials(c: _Connection) -> dict[str, Any] | None:
    body = c.body()
    if not body.strip():
        return {}
    content_type = (c.header(b"content-type") or b"").lower()
    if b"json" in content_type or (not content_type and body.lstrip()[:1] == b"{"):
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        return doc if isinstance(doc, dict) else None
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _h_login(c: _Connection, arg: bytes) -> bytes:
    creds = _credentials(c)
    if creds is None:
        return _bad(c, "body: expected a JSON object or a form")
    if creds.get("password") == "wrong":
        return _json_response(401, {"error": "invalid credentials"}, c._conn)
    user = creds.get("username", creds.get("user", "ada"))
    token = c._state.issue_token(str(user))
    return _json_response(200, {"token": token, "user": str(user)}, c._conn)


def _h_private(c: _Connection, arg: bytes) -> bytes:
    auth = c.header(b"authorization")
    if auth is not None:
        scheme, _, token = auth.decode("latin-1").partition(" ")
        user = c._state.tokens.get(token.strip())
        if scheme.lower() == "bearer" and user is not None:
            return _json_response(200, {"private": True, "user": user}, c._conn)
    extra = b"www-authenticate: Bearer\r\n"
    return _json_response(401, {"error": "a valid bearer token is required"}, c._conn, extra)


def _h_stall(c: _Connection, arg: bytes) -> bytes:
    raw = c.params().get("s", "1")
    try:
        seconds = float(raw)
    except ValueError:
        return _bad(c, f"s: {raw!r} is not a number")
    if not 0 <= seconds <= MAX_STALL_S:
        return _bad(c, f"s: {raw!r} is outside [0, {MAX_STALL_S:g}]")
    # Deliberately blocks the loop thread: every connection stalls, which is the point
    # (a coordinated-omission scenario for the load generator to survive and report).
    time.sleep(seconds)
    state = c._state
    state.stalls += 1
    state.stall_ms += seconds * 1000.0
    return _text_response(200, f"stalled {seconds:g} s\n", c._conn)


def _h_ws(c: _Connection, arg: bytes) -> None:
    c.start_websocket()


def _h_stats(c: _Connection, arg: bytes) -> bytes:
    return _json_response(200, c._state.snapshot(), c._conn)


def _h_stats_reset(c: _Connection, arg: bytes) -> bytes:
    c._state.reset()
    return _json_response(200, {"reset": True}, c._conn)


def _h_delays(c: _Connection, arg: bytes) -> bytes:
    return _json_response(200, c._state.delays.tolist(), c._conn)


_Route = tuple[Handler, frozenset[bytes] | None]  # None: any method

_ROUTES: dict[bytes, _Route] = {
    b"/": (_h_root, _GET),
    b"/delay": (_h_delay, None),
    b"/echo": (_h_echo, _BODY_METHODS),
    b"/headers": (_h_headers, _GET),
    b"/cookies": (_h_cookies, _GET),
    b"/cookies/set": (_h_cookies_set, _GET),
    b"/redirect-to": (_h_redirect_to, _GET),
    b"/json": (_h_json, _GET),
    b"/login": (_h_login, _POST),
    b"/private": (_h_private, _GET),
    b"/stall": (_h_stall, _GET),
    b"/ws": (_h_ws, frozenset({b"GET"})),
    b"/__stats": (_h_stats, _GET),
    b"/__stats/reset": (_h_stats_reset, _POST),
    b"/__delays": (_h_delays, _GET),
}

_PREFIX_ROUTES: dict[bytes, _Route] = {
    b"/status": (_h_status, None),
    b"/bytes": (_h_bytes, _GET),
    b"/chunked": (_h_chunked, _GET),
    b"/redirect": (_h_redirect, _GET),
}


class TargetServer:
    """A running target, in this process."""

    def __init__(self, server: asyncio.Server, state: TargetState, host: str, port: int) -> None:
        self._server = server
        self.state = state
        self.host = host
        self.port = port
        self.url = f"http://{_url_host(host)}:{port}"

    def stats(self) -> dict[str, Any]:
        return self.state.snapshot()

    async def close(self) -> None:
        self._server.close()
        for connection in list(self.state.connections):
            connection.close()
        await self._server.wait_closed()


async def serve(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    allow_remote: bool = False,
    rng: random.Random | None = None,
) -> TargetServer:
    """Start the target on the running loop; ``port=0`` picks a free port."""
    if not allow_remote and not _is_loopback(host):
        raise TargetError(
            f"refusing to listen on {host!r}, which is not a loopback address; "
            "pass --allow-remote (allow_remote=True) to expose the target"
        )
    if host == "localhost":
        host = "127.0.0.1"  # one socket, so that port 0 means one port
    loop = asyncio.get_running_loop()
    state = TargetState(rng)
    # uvloop rounds timer delays to the nearest ms; half a ms more makes that a ceiling.
    timer_round = 0.0005 if type(loop).__module__.startswith("uvloop") else 0.0
    try:
        server = await loop.create_server(
            lambda: _Connection(state, loop, timer_round), host, port, backlog=4096
        )
    except OSError as exc:
        raise TargetError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    bound_port = int(server.sockets[0].getsockname()[1])
    return TargetServer(server, state, host, bound_port)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # optional: not a dependency on Windows
    except ImportError:
        return asyncio.new_event_loop()
    return cast(asyncio.AbstractEventLoop, uvloop.new_event_loop())


async def _run(args: argparse.Namespace) -> int:
    target = await serve(args.host, args.port, allow_remote=args.allow_remote)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if args.exit_with_parent:
        parent = os.getppid()

        def watch_parent() -> None:
            if os.getppid() != parent:
                stop.set()
            else:
                loop.call_later(1.0, watch_parent)

        watch_parent()
    print(f"cannonade target listening on {target.url}", flush=True)
    try:
        await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        await target.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the target until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="cannonade target", description="Run cannonade's embedded HTTP target."
    )
    parser.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (loopback)")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding a non-loopback address",
    )
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="exit when the parent process goes away (used by the pytest fixture)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f"cannonade target: error: --port {args.port} is not in 0-65535", file=sys.stderr)
        return 2
    try:
        with asyncio.Runner(loop_factory=_new_loop) as runner:
            return runner.run(_run(args))
    except TargetError as exc:
        print(f"cannonade target: error: {exc}", file=sys.stderr)
        return 2
