"""One HTTP/1.1 connection: an asyncio Protocol driving an httptools response parser.

What runs per response is kept to the minimum a load generator needs: the raw bytes
are kept as they arrive, and the parser calls back into Python once, when the message
is complete. Headers and body are not materialised here; ``Response`` re-reads the raw
bytes lazily, so a scenario that looks only at ``status`` never pays for them. (A
registered ``on_header`` alone costs ~0.35 µs per header per response.)

Timeouts use one timer per connection, not per request: each request only moves
``deadline``; the timer, armed lazily, re-arms itself when it fires early because the
deadline moved, and goes idle with the connection. See docs/http-client.md.
"""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import Any, cast

from httptools import HttpParserError, HttpParserUpgrade, HttpResponseParser

from cannonade.engine.http.errors import (
    BAD_RESPONSE,
    CLOSED,
    OTHER,
    RESET,
    TIMEOUT,
    TLS,
    classify,
    describe,
)
from cannonade.engine.http.response import parse_head

# A timer that fires this close to the deadline counts as expired rather than re-arming
# for a sliver (uvloop timers have millisecond resolution and may fire early by <1 ms).
_TIMER_SLACK = 0.001


class _HeadCallbacks:
    """Parser callbacks for a HEAD request: the message ends with its headers.

    llhttp cannot be told that a response answers HEAD, so it would wait for the body
    that Content-Length announces. Completing at ``on_headers_complete`` and giving the
    connection a fresh parser for its next request sidesteps that.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def on_headers_complete(self) -> None:
        self._conn.on_message_complete()

    def on_message_complete(self) -> None:
        if self._conn.waiter is not None:  # not already completed by the headers
            self._conn.on_message_complete()


class Connection(asyncio.Protocol):
    """Per-response state lives in plain attributes that the client reads when woken.

    ``waiter`` is resolved (never with an exception) when the response is complete or
    failed; ``error_kind`` tells which. The client must read the state before it
    hands the connection to the next request, since :meth:`start` resets it.
    """

    __slots__ = (
        "closed",
        "deadline",
        "done_at",
        "error",
        "error_kind",
        "first_byte",
        "head_mode",
        "interim",
        "keep_alive",
        "loop",
        "more",
        "parser",
        "raw",
        "received",
        "status",
        "timer",
        "timer_at",
        "transport",
        "waiter",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser: Any = HttpResponseParser(self)
        self.head_mode = False
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None
        self.raw: bytes | None = None  # first chunk of the response
        self.more: list[bytes] | None = None  # the chunks after it, if any
        self.received = 0
        self.first_byte = 0.0
        self.done_at = 0.0
        self.status = 0
        self.keep_alive = True
        self.interim = False  # a 1xx response came before the final one
        self.error_kind: str | None = None
        self.error: str | None = None
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = 0.0

    # -- driven by the client ------------------------------------------------------------
    def send(self, wire: bytes, deadline: float, head: bool) -> asyncio.Future[None]:
        """Write a request; the future resolves when its response is complete or failed.

        Only the fields the next response relies on are reset: ``error_kind`` and
        ``error`` need not be, since a failed connection is never used again.
        """
        waiter = self.loop.create_future()
        self.waiter = waiter
        self.raw = None
        self.more = None
        self.received = 0
        if self.interim:
            self.interim = False
        self.deadline = deadline
        if self.timer is None or deadline < self.timer_at:
            self._arm(deadline)
        if head or self.head_mode:
            self.parser = HttpResponseParser(_HeadCallbacks(self) if head else self)
            self.head_mode = head
        self.transport.write(wire)  # type: ignore[union-attr]  # set by connection_made
        return waiter

    def close(self) -> None:
        """Close for good (idempotent).

        A pending request fails as ``other``: this side gave up, so it is neither the
        server's ``closed`` nor a stale keep-alive connection to retry.
        """
        if self.waiter is not None:
            self._fail(OTHER, "connection closed by the client")
            return  # _fail closes
        self.closed = True
        timer = self.timer
        if timer is not None:
            timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection without flushing, e.g. when the request was cancelled."""
        self.waiter = None
        self.closed = True
        timer = self.timer
        if timer is not None:
            timer.cancel()
            self.timer = None
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only look-alikes.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:
            # Bytes nobody asked for (a 408 before closing, garbage): the stream can no
            # longer be trusted to line up with our next request.
            self.abort()
            return
        if self.raw is None:
            self.first_byte = perf_counter()
            self.raw = data
        elif self.more is None:
            self.more = [data]
        else:
            self.more.append(data)
        self.received += len(data)
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade:
            # A 101 answer to a plain request: the stream is no longer HTTP.
            self.keep_alive = False
            self.on_message_complete()
        except HttpParserError as exc:
            self._fail(BAD_RESPONSE, f"malformed response: {exc}")

    def eof_received(self) -> bool | None:
        return None  # let the transport close; connection_lost decides what it meant

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        timer = self.timer
        if timer is not None:
            timer.cancel()
            self.timer = None
        if self.waiter is None:
            return
        if exc is None:
            if self._body_ends_at_eof():
                self.keep_alive = False
                self.on_message_complete()
                return
            self._fail(CLOSED, "server closed the connection before a complete response")
        else:
            kind = classify(exc)
            self._fail(kind if kind in (RESET, TLS) else OTHER, describe(exc))

    # -- httptools callbacks -------------------------------------------------------------
    def on_message_complete(self) -> None:
        parser = self.parser
        status = parser.get_status_code()
        if status < 200 and status != 101:
            self.interim = True  # 100 Continue and friends: the real answer follows
            return
        self.status = status
        if self.keep_alive:
            self.keep_alive = parser.should_keep_alive()
        self.done_at = perf_counter()
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- internals -----------------------------------------------------------------------
    def _fail(self, kind: str, message: str) -> None:
        self.done_at = perf_counter()
        self.error_kind = kind
        self.error = message
        self.keep_alive = False
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self.close()

    def _arm(self, deadline: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        loop = self.loop
        self.timer_at = deadline
        self.timer = loop.call_at(loop.time() + (deadline - perf_counter()), self._on_timer)

    def _on_timer(self) -> None:
        self.timer = None
        waiter = self.waiter
        if waiter is None or waiter.done():
            return  # idle: stay unarmed until the next request
        if self.deadline - perf_counter() > _TIMER_SLACK:
            self._arm(self.deadline)  # the deadline moved since we were armed
            return
        self._fail(TIMEOUT, "no complete response before the timeout")

    def _body_ends_at_eof(self) -> bool:
        """True when the headers are in and they delimit the body by closing (RFC 9112 6.3)."""
        if self.raw is None or self.head_mode:
            return False
        data = self.raw if self.more is None else self.raw + b"".join(self.more)
        head = parse_head(data)
        if head is None or head.status < 200 or head.status in (204, 304):
            return False
        names = {name.lower() for name, _ in head.headers}
        return b"content-length" not in names and b"transfer-encoding" not in names
