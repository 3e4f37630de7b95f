"""The target on the wire: exact counting under load, pipelining, bad input, limits."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import httptools
import pytest

from cannonade.target.process import TargetProcess

pytestmark = pytest.mark.e2e


class Responses:
    """Collects every response httptools parses off a socket."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[dict[str, Any]] = []
        self._current: dict[str, Any] = {}

    def on_message_begin(self) -> None:
        self._current = {"headers": {}, "body": bytearray()}

    def on_header(self, name: bytes, value: bytes) -> None:
        self._current["headers"][name.decode().lower()] = value.decode()

    def on_headers_complete(self) -> None:
        self._current["status"] = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self._current["body"] += body

    def on_message_complete(self) -> None:
        self._current["body"] = bytes(self._current["body"])
        self.done.append(self._current)


def connect(target: TargetProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", target.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_all(sock: socket.socket) -> tuple[list[dict[str, Any]], bool]:
    """Read until the server closes; the responses, and whether it did close (EOF)."""
    collected = Responses()
    while True:
        try:
            data = sock.recv(1 << 16)
        except TimeoutError:
            return collected.done, False
        if not data:
            return collected.done, True
        collected.parser.feed_data(data)


def read_n(sock: socket.socket, n: int) -> list[dict[str, Any]]:
    collected = Responses()
    while len(collected.done) < n:
        data = sock.recv(1 << 16)
        assert data, f"connection closed after {len(collected.done)} of {n} responses"
        collected.parser.feed_data(data)
    return collected.done


def exchange(
    target: TargetProcess, wire: bytes, timeout: float = 5
) -> tuple[list[dict[str, Any]], bool]:
    with connect(target) as sock:
        sock.settimeout(timeout)
        sock.sendall(wire)
        return read_all(sock)


def still_serving(target: TargetProcess) -> bool:
    with connect(target) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        body: bytes = read_n(sock, 1)[0]["body"]
        return body == b"ok\n"


# -- counting ------------------------------------------------------------------------------


async def _hammer(port: int, path: bytes, requests: int) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ok = 0
    try:
        for _ in range(requests):
            writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            ok += head.startswith(b"HTTP/1.1 200 ")
    finally:
        writer.close()
        await writer.wait_closed()
    return ok


def test_exact_count_under_concurrent_keep_alive_load(target: TargetProcess) -> None:
    async def load() -> list[int]:
        return await asyncio.gather(*(_hammer(target.port, b"/", 500) for _ in range(8)))

    assert asyncio.run(load()) == [500] * 8
    stats = target.stats()
    assert stats["requests"] == 4000
    assert stats["paths"] == {"/": 4000}
    assert stats["rejected"] == 0


def test_exact_count_across_paths(target: TargetProcess) -> None:
    paths = [b"/", b"/json", b"/status/201", b"/delay?ms=1", b"/bytes/10"]

    async def load() -> None:
        await asyncio.gather(*(_hammer(target.port, p, 200) for p in paths for _ in range(2)))

    asyncio.run(load())
    stats = target.stats()
    assert stats["requests"] == 2000
    assert stats["paths"] == {
        "/": 400,
        "/json": 400,
        "/status/201": 400,
        "/delay": 400,
        "/bytes/10": 400,
    }
    assert stats["delays"]["count"] == 400
    assert len(target.delays()) == 400


def test_a_request_counts_when_received_even_if_the_client_leaves(target: TargetProcess) -> None:
    with connect(target) as sock:
        sock.sendall(b"GET /delay?ms=3000 HTTP/1.1\r\nHost: t\r\n\r\n")
        deadline = time.monotonic() + 2
        while target.stats()["requests"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
    # The client is gone long before the delay would end; the count stands.
    stats = target.stats()
    assert stats["paths"] == {"/delay": 1}
    assert target.delays() == [3000.0]
    assert still_serving(target)


# -- pipelining ----------------------------------------------------------------------------


def test_pipelined_responses_keep_request_order(target: TargetProcess) -> None:
    wire = (
        b"GET /delay?ms=300 HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /delay?ms=50 HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /status/201 HTTP/1.1\r\nHost: t\r\n\r\n"
        b"GET /bytes/200000 HTTP/1.1\r\nHost: t\r\n\r\n"
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
    )
    started = time.monotonic()
    with connect(target) as sock:
        sock.sendall(wire)
        replies = read_n(sock, 6)
    assert time.monotonic() - started >= 0.3
    assert [r["status"] for r in replies] == [200, 200, 200, 201, 200, 200]
    assert replies[0]["body"] == b'{"delay_ms":300.0,"dist":"fixed"}'
    assert replies[1]["body"] == b"ok\n"
    assert replies[2]["body"] == b'{"delay_ms":50.0,"dist":"fixed"}'
    assert len(replies[4]["body"]) == 200_000
    assert replies[5]["body"] == b"hello"
    assert target.stats()["requests"] == 6


def test_many_pipelined_requests(target: TargetProcess) -> None:
    with connect(target) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 2000)
        replies = read_n(sock, 2000)
    assert all(r["body"] == b"ok\n" for r in replies)
    assert target.stats()["requests"] == 2000


def test_pipelined_requests_behind_a_delay_are_all_answered(target: TargetProcess) -> None:
    # More than the queue's high-water mark, so the server pauses reading on the way.
    wire = b"GET /delay?ms=100 HTTP/1.1\r\nHost: t\r\n\r\n" + b"GET / HTTP/1.1\r\n\r\n" * 1000
    with connect(target) as sock:
        sock.sendall(wire)
        replies = read_n(sock, 1001)
    assert [r["status"] for r in replies] == [200] * 1001
    assert target.stats()["requests"] == 1001


def test_half_close_after_pipelining_still_gets_every_answer(target: TargetProcess) -> None:
    with connect(target) as sock:
        sock.sendall(b"GET /delay?ms=100 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        replies, closed = read_all(sock)
    assert [r["status"] for r in replies] == [200, 200]
    assert closed


# -- connection management -----------------------------------------------------------------


def test_connection_close_is_honoured(target: TargetProcess) -> None:
    replies, closed = exchange(
        target,
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET /json HTTP/1.1\r\n\r\n",
    )
    assert closed
    assert len(replies) == 1
    assert replies[0]["headers"]["connection"] == "close"
    assert target.stats()["paths"] == {"/": 1}


def test_http10_keep_alive_is_acknowledged(target: TargetProcess) -> None:
    replies, closed = exchange(
        target,
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    )
    assert [r["headers"].get("connection") for r in replies] == ["keep-alive", "close"]
    assert closed


def test_delayed_response_to_connection_close(target: TargetProcess) -> None:
    replies, closed = exchange(target, b"GET /delay?ms=50 HTTP/1.0\r\n\r\n")
    assert closed
    assert replies[0]["status"] == 200


def test_declined_upgrade_keeps_speaking_http(target: TargetProcess) -> None:
    with connect(target) as sock:
        sock.sendall(
            b"GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
            b"GET /status/202 HTTP/1.1\r\n\r\n"
        )
        replies = read_n(sock, 2)
    assert [r["status"] for r in replies] == [200, 202]


def test_expect_100_continue(target: TargetProcess) -> None:
    with connect(target) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        assert read_n(sock, 1)[0]["body"] == b"hello"


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "wire",
    [
        b"GARBAGE\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64),  # a TLS ClientHello
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    ],
)
def test_malformed_request_gets_400_and_close(target: TargetProcess, wire: bytes) -> None:
    replies, closed = exchange(target, wire)
    assert closed
    assert [r["status"] for r in replies] == [400]
    assert replies[0]["headers"]["connection"] == "close"
    assert still_serving(target)
    stats = target.stats()
    assert stats["rejected"] == 1
    assert stats["paths"] == {"/": 1}  # only the still_serving probe


def test_good_requests_before_garbage_are_answered_first(target: TargetProcess) -> None:
    replies, closed = exchange(
        target, b"GET /delay?ms=50 HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n@@@\r\n"
    )
    assert closed
    assert [r["status"] for r in replies] == [200, 200, 400]


def test_body_over_64_mib_by_content_length_is_413(target: TargetProcess) -> None:
    replies, closed = exchange(
        target, b"POST /echo HTTP/1.1\r\nContent-Length: 67108865\r\n\r\nsome"
    )
    assert closed
    assert [r["status"] for r in replies] == [413]
    assert still_serving(target)


def test_chunked_body_over_64_mib_is_413(target: TargetProcess) -> None:
    block = b"%x\r\n%s\r\n" % (1 << 20, bytes(1 << 20))
    with connect(target) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            for _ in range(65):
                sock.sendall(block)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may stop reading once it has said no
        replies, closed = read_all(sock)
    assert [r["status"] for r in replies] == [413]
    assert closed
    assert still_serving(target)


def test_exactly_64_mib_is_accepted(target: TargetProcess) -> None:
    size = 64 * 1024 * 1024
    with connect(target) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % size)
        sock.sendall(bytes(size))
        reply = read_n(sock, 1)[0]
    assert reply["status"] == 200
    assert len(reply["body"]) == size


def test_oversized_head_is_431(target: TargetProcess) -> None:
    replies, closed = exchange(target, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    assert closed
    assert [r["status"] for r in replies] == [431]
    replies, closed = exchange(target, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")
    assert [r["status"] for r in replies] == [431]
    assert still_serving(target)


def test_endless_header_line_is_cut_off(target: TargetProcess) -> None:
    with connect(target) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nX-Endless: ")
        try:
            for _ in range(40):
                sock.sendall(b"a" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            pass
        replies, closed = read_all(sock)
    assert [r["status"] for r in replies] == [431]
    assert closed


def test_abrupt_disconnects_do_not_hurt(target: TargetProcess) -> None:
    for wire in (b"GET / HT", b"POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc", b""):
        sock = connect(target)
        sock.sendall(wire)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST
    assert still_serving(target)
