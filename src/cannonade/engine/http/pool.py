"""A VU's keep-alive pool, and opening connections (TCP, then TLS, timed apart).

The pool is deliberately dumb data: the client's hot path reads ``idle`` directly
(one dict get, one list pop) instead of calling through methods.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from time import perf_counter

from cannonade.engine.http.connection import Connection
from cannonade.engine.http.errors import (
    CONNECT_TIMEOUT,
    REFUSED,
    TIMEOUT,
    TLS,
    TransportFailure,
    classify,
    describe,
)
from cannonade.engine.http.urls import Origin


def make_ssl_context(verify: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class Opened:
    """A new connection and how long its TCP connect and TLS handshake took."""

    __slots__ = ("conn", "connecting", "tls")

    def __init__(self, conn: Connection, connecting: float, tls: float | None) -> None:
        self.conn = conn
        self.connecting = connecting
        self.tls = tls


async def open_connection(
    origin: Origin,
    ssl_context: ssl.SSLContext | None,
    connect_timeout: float,
    budget: float,
) -> Opened:
    """Connect to ``origin`` within ``min(connect_timeout, budget)`` seconds.

    Failures are raised as :class:`TransportFailure` with their kind. When the request's
    own ``budget`` is the tighter limit its expiry is a ``timeout``, else a
    ``connect_timeout``. ``loop.start_tls`` rather than ``create_connection(ssl=...)``
    so the TCP connect and the handshake are measured apart.
    """
    loop = asyncio.get_running_loop()
    conn = Connection(loop)
    limit = min(connect_timeout, budget)
    transport: asyncio.Transport | None = None
    t0 = perf_counter()
    tls_time: float | None = None
    step = "connect"
    try:
        async with asyncio.timeout(limit if limit > 0 else 0.0):
            transport, _ = await loop.create_connection(lambda: conn, origin.host, origin.port)
            t1 = perf_counter()
            if ssl_context is not None:
                step = "tls"
                tls_transport = await loop.start_tls(
                    transport, conn, ssl_context, server_hostname=origin.host
                )
                if tls_transport is None:
                    raise ConnectionResetError("connection closed during the TLS handshake")
                transport = tls_transport
                conn.connection_made(tls_transport)
                tls_time = perf_counter() - t1
    except TimeoutError:
        if transport is not None:
            transport.abort()
        kind = CONNECT_TIMEOUT if connect_timeout <= budget else TIMEOUT
        raise TransportFailure(
            kind, f"{step} to {origin.host}:{origin.port} took over {limit:g}s"
        ) from None
    except (OSError, ssl.SSLError) as exc:
        if transport is not None:
            transport.abort()
        kind = classify(exc)
        if step == "tls" and kind != REFUSED:
            kind = TLS
        raise TransportFailure(
            kind, f"{step} to {origin.host}:{origin.port} failed: {describe(exc)}"
        ) from None
    except BaseException:
        if transport is not None:
            transport.abort()
        raise
    return Opened(conn, t1 - t0, tls_time)


class Pool:
    """Connections of one VU: ``idle`` per origin key (a LIFO stack), ``open`` all of them.

    LIFO reuse keeps the most recently used connection warm and lets the rest go idle
    long enough for the server to reap them, which is what a browser-like client does.
    """

    __slots__ = ("_connect_timeout", "_ssl", "idle", "open")

    def __init__(self, ssl_context: Callable[[], ssl.SSLContext], connect_timeout: float) -> None:
        self.idle: dict[str, list[Connection]] = {}
        self.open: set[Connection] = set()
        self._ssl = ssl_context
        self._connect_timeout = connect_timeout

    async def connect(self, origin: Origin, budget: float) -> Opened:
        ctx = self._ssl() if origin.tls else None
        opened = await open_connection(origin, ctx, self._connect_timeout, budget)
        self.open.add(opened.conn)
        if origin.key not in self.idle:
            self.idle[origin.key] = []
        return opened

    def drop(self, conn: Connection) -> None:
        """Forget a connection that will not be reused (closing it if still open)."""
        conn.close()
        self.open.discard(conn)

    def close(self) -> None:
        for conn in self.open:
            conn.close()
        self.open.clear()
        self.idle.clear()
