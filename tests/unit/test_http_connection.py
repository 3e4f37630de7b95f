"""The connection protocol driven by hand through a fake transport (no sockets)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Callable, Coroutine
from time import perf_counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cannonade.engine.http.connection import Connection
from cannonade.engine.http.response import Response


class FakeTransport:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.written: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.conn.connection_lost(None)

    def abort(self) -> None:
        self.aborted = True
        self.close()


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 5))


async def started(
    head: bool = False, timeout: float = 5.0
) -> tuple[Connection, asyncio.Future[None]]:
    loop = asyncio.get_running_loop()
    conn = Connection(loop)
    conn.connection_made(FakeTransport(conn))  # type: ignore[arg-type]
    waiter = conn.send(b"GET / HTTP/1.1\r\n\r\n", perf_counter() + timeout, head)
    return conn, waiter


def test_response_in_pieces_then_keep_alive() -> None:
    async def t() -> None:
        conn, waiter = await started()
        conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Le")
        conn.data_received(b"ngth: 2\r\n\r\nh")
        assert not waiter.done()
        conn.data_received(b"i")
        assert waiter.done()
        assert (conn.status, conn.error_kind, conn.keep_alive) == (200, None, True)
        assert conn.raw == b"HTTP/1.1 200 OK\r\nContent-Le"
        assert conn.more == [b"ngth: 2\r\n\r\nh", b"i"]
        assert conn.received == len(conn.raw) + sum(map(len, conn.more))
        assert conn.first_byte <= conn.done_at
        # the next response on the same connection parses from a clean state
        w2 = conn.send(b"GET / HTTP/1.1\r\n\r\n", perf_counter() + 5, False)
        conn.data_received(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        assert w2.done()
        assert conn.status == 404
        assert conn.more is None

    run(t)


def test_connection_close_and_http10() -> None:
    async def t() -> None:
        conn, waiter = await started()
        conn.data_received(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        assert waiter.done()
        assert not conn.keep_alive
        conn, waiter = await started()
        conn.data_received(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
        assert waiter.done()
        assert not conn.keep_alive

    run(t)


def test_head_completes_at_headers_and_next_request_parses() -> None:
    async def t() -> None:
        conn, waiter = await started(head=True)
        conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        assert waiter.done()
        assert conn.status == 200
        assert conn.keep_alive
        w2 = conn.send(b"GET / HTTP/1.1\r\n\r\n", perf_counter() + 5, False)
        conn.data_received(b"HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx")
        assert w2.done()
        assert conn.status == 201

    run(t)


def test_interim_response_is_skipped() -> None:
    async def t() -> None:
        conn, waiter = await started()
        conn.data_received(b"HTTP/1.1 100 Continue\r\n\r\n")
        assert not waiter.done()
        conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        assert waiter.done()
        assert conn.status == 200
        assert conn.interim

    run(t)


def test_body_delimited_by_close() -> None:
    async def t() -> None:
        conn, waiter = await started()
        conn.data_received(b"HTTP/1.1 200 OK\r\n\r\nsome body")
        assert not waiter.done()
        conn.transport.close()  # type: ignore[union-attr]
        assert waiter.done()
        assert conn.error_kind is None
        assert conn.status == 200
        assert not conn.keep_alive

    run(t)


def test_close_mid_body_is_closed_error() -> None:
    async def t() -> None:
        conn, waiter = await started()
        conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        conn.transport.close()  # type: ignore[union-attr]
        assert waiter.done()
        assert conn.error_kind == "closed"

    run(t)


def test_reset_is_reset() -> None:
    async def t() -> None:
        conn, waiter = await started()
        conn.connection_lost(ConnectionResetError(104, "Connection reset by peer"))
        assert waiter.done()
        assert conn.error_kind == "reset"
        assert conn.closed

    run(t)


def test_malformed_response_is_bad_response() -> None:
    async def t() -> None:
        conn, waiter = await started()
        conn.data_received(b"HTTP/1.1 abc nonsense\r\n\r\n")
        assert waiter.done()
        assert conn.error_kind == "bad_response"
        assert conn.closed

    run(t)


def test_unsolicited_bytes_abort_an_idle_connection() -> None:
    async def t() -> None:
        conn, _waiter = await started()
        conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        conn.data_received(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
        assert conn.closed
        assert conn.transport.aborted  # type: ignore[union-attr]

    run(t)


def test_one_timer_per_connection_rearms_when_deadline_moves() -> None:
    async def t() -> None:
        asyncio.get_running_loop()
        conn, _waiter = await started(timeout=0.05)
        first_timer = conn.timer
        assert first_timer is not None
        conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        # a second request with a later deadline reuses the armed timer
        w2 = conn.send(b"GET / HTTP/1.1\r\n\r\n", perf_counter() + 0.2, False)
        assert conn.timer is first_timer
        await asyncio.sleep(0.1)  # the first firing finds the deadline moved: re-arms
        assert not w2.done()
        assert conn.timer is not None
        assert conn.timer is not first_timer
        await asyncio.wait_for(w2, 1)
        assert conn.error_kind == "timeout"
        assert conn.closed

    run(t)


def test_shorter_deadline_rearms_earlier_and_idle_timer_lapses() -> None:
    async def t() -> None:
        asyncio.get_running_loop()
        conn, _ = await started(timeout=30)
        conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        w2 = conn.send(b"GET / HTTP/1.1\r\n\r\n", perf_counter() + 0.05, False)
        await asyncio.wait_for(w2, 1)
        assert conn.error_kind == "timeout"

        conn, _waiter = await started(timeout=0.02)
        conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await asyncio.sleep(0.05)
        assert conn.timer is None
        assert not conn.closed

    run(t)


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=3000),
    chunk_sizes=st.lists(st.integers(1, 700), min_size=1, max_size=8),
    cuts=st.lists(st.integers(1, 4000), max_size=6),
    gzip_it=st.booleans(),
)
def test_any_split_of_any_body_reads_back(
    body: bytes, chunk_sizes: list[int], cuts: list[int], gzip_it: bool
) -> None:
    """However a chunked (maybe gzipped) response is cut into reads, the body survives."""
    payload = gzip.compress(body) if gzip_it else body
    chunks, i, k = [], 0, 0
    while i < len(payload):
        n = chunk_sizes[k % len(chunk_sizes)]
        piece = payload[i : i + n]
        chunks.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
        i, k = i + n, k + 1
    encoding = b"Content-Encoding: gzip\r\n" if gzip_it else b""
    wire = (
        b"HTTP/1.1 200 OK\r\n"
        + encoding
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"".join(chunks)
        + b"0\r\n\r\n"
    )
    points = sorted({c for c in cuts if c < len(wire)})

    async def t() -> None:
        conn, waiter = await started()
        start = 0
        for p in [*points, len(wire)]:
            conn.data_received(wire[start:p])
            start = p
        assert waiter.done()
        assert conn.error_kind is None
        r = Response("GET", "http://h/", conn.status, 0.0, conn.raw, conn.more)
        assert r.body == body

    run(t)
