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
from array import array
from collections import deque
from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import parse_qsl

import httptools
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from cannonade.errors import TargetError
from cannonade.target.responses import (
    _CLOSE,
    _KEEP,
    _KEEP_EXPLICIT,
    _NOT_FOUND,
    LINGER_S,
    MAX_BODY,
    MAX_HEAD,
    MAX_HEAD_RAW,
    MAX_PATHS,
    MAX_TOKENS,
    OTHER_PATHS,
    QUEUE_HIGH,
    QUEUE_LOW,
    WS_MAX_MESSAGE,
    _text_response,
)
from cannonade.target.routes import (
    _PREFIX_ROUTES,
    _ROUTES,
    _UNCOUNTED,
)

__all__ = ["TargetServer", "TargetState", "main", "serve"]

log = logging.getLogger(__name__)


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
