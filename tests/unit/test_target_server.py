"""The target's pieces that need no subprocess: framing helpers, state, binding rules."""

from __future__ import annotations

import asyncio
import random
import socket
import time
import zlib

import pytest

from cannonade.errors import TargetError
from cannonade.target import responses, server
from cannonade.target.server import TargetState, main, serve


def _dechunk(pieces: list[bytes]) -> tuple[bytes, int]:
    """Decode chunked framing; also return how many data chunks there were."""
    wire = b"".join(pieces)
    body, chunks = b"", 0
    while True:
        size_line, _, wire = wire.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            assert wire == b"\r\n"
            return body, chunks
        body += wire[:size]
        assert wire[size : size + 2] == b"\r\n"
        wire = wire[size + 2 :]
        chunks += 1


def _pattern(n: int) -> bytes:
    return bytes(i % 256 for i in range(n))


@pytest.mark.parametrize("n", [0, 1, 3, 255, 256, 1000, 65_536, 65_537, 300_000])
def test_chunked_pieces_carry_the_pattern_in_several_chunks(n: int) -> None:
    body, chunks = _dechunk(list(responses._chunked_pieces(n)))
    assert body == _pattern(n)
    assert chunks == (
        0
        if n == 0
        else min(n, 4)
        if n <= 4 * responses.STREAM_CHUNK
        else -(-n // responses.STREAM_CHUNK)
    )


@pytest.mark.parametrize("n", [0, 10, 200_000])
def test_gzip_pieces_decompress_to_the_pattern(n: int) -> None:
    body, _ = _dechunk(list(responses._gzip_chunked_pieces(n)))
    assert zlib.decompress(body, 31) == _pattern(n)


def test_pattern_pieces_sum_to_n() -> None:
    assert responses._pattern_bytes(200_001) == _pattern(200_001)


def test_status_204_and_304_have_no_body_and_204_no_length() -> None:
    r204 = responses._STATUS[204, responses._KEEP]
    assert r204 == b"HTTP/1.1 204 No Content\r\n\r\n"
    r304 = responses._STATUS[304, responses._CLOSE]
    assert r304.endswith(b"connection: close\r\n\r\n")
    assert b"content-length" not in r304


def test_responses_are_minimal_and_date_less() -> None:
    root = responses._ROOT[responses._KEEP]
    assert root == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: 3\r\n\r\nok\n"
    )
    assert b"date" not in root.lower()


def test_state_reset_zeroes_counters_but_keeps_tokens() -> None:
    state = TargetState()
    state.requests = 5
    state.paths[b"/"] = 5
    state.record_delay("fixed", 10.0)
    state.record_delay("fixed", 5.0)
    token = state.issue_token("ada")
    snap = state.snapshot()
    assert snap["requests"] == 5
    assert snap["paths"] == {"/": 5}
    assert snap["delays"]["count"] == 2
    assert snap["delays"]["sum_ms"] == 15.0
    assert snap["delays"]["by_dist"] == {"fixed": {"count": 2, "sum_ms": 15.0}}
    state.reset()
    snap = state.snapshot()
    assert snap["requests"] == 0
    assert snap["paths"] == {}
    assert snap["delays"] == {"count": 0, "sum_ms": 0, "by_dist": {}}
    assert state.tokens[token] == "ada"


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("192.0.2.1", False),
    ],
)
def test_loopback_detection(host: str, loopback: bool) -> None:
    assert server._is_loopback(host) is loopback


def test_serve_refuses_a_remote_address() -> None:
    async def go() -> None:
        with pytest.raises(TargetError, match="allow-remote"):
            await serve("0.0.0.0", 0)

    asyncio.run(go())


def test_serve_on_any_port_in_process() -> None:
    async def go() -> None:
        target = await serve("127.0.0.1", 0)
        try:
            assert target.port > 0
            assert target.url == f"http://127.0.0.1:{target.port}"
            reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert await reader.readexactly(3) == b"ok\n"
            writer.close()
            await writer.wait_closed()
            assert target.stats()["paths"] == {"/": 1}
        finally:
            await target.close()

    asyncio.run(go())


def test_serve_reports_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        async def go() -> None:
            with pytest.raises(TargetError, match=f"127.0.0.1:{port}"):
                await serve("127.0.0.1", port)

        asyncio.run(go())


def test_main_refuses_remote_without_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "0.0.0.0", "--port", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--allow-remote" in captured.err
    assert "0.0.0.0" in captured.err


def test_main_rejects_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err


async def _get_many(port: int, paths: list[str]) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies = []
    try:
        for path in paths:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            replies.append(head + await reader.readexactly(length))
    finally:
        writer.close()
        await writer.wait_closed()
    return replies


def test_distinct_paths_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "MAX_PATHS", 3)

    async def go() -> dict[str, int]:
        target = await serve("127.0.0.1", 0)
        try:
            await _get_many(target.port, ["/a", "/b", "/a", "/c", "/d", "/e", "/b"])
            return dict(target.stats()["paths"])
        finally:
            await target.close()

    assert asyncio.run(go()) == {"/a": 2, "/b": 2, "/c": 1, "(other)": 2}


def test_delay_is_never_early_on_the_default_loop() -> None:
    async def go() -> list[float]:
        target = await serve("127.0.0.1", 0)
        elapsed = []
        try:
            for ms in (1, 7.5, 20):
                started = time.monotonic()
                await _get_many(target.port, [f"/delay?ms={ms}"])
                elapsed.append((time.monotonic() - started) * 1000 - ms)
        finally:
            await target.close()
        return elapsed

    assert min(asyncio.run(go())) >= 0


def test_seeded_rng_makes_delays_reproducible() -> None:
    async def go() -> list[float]:
        target = await serve("127.0.0.1", 0, rng=random.Random(42))
        try:
            await _get_many(target.port, ["/delay?dist=uniform&min=0&max=3"] * 5)
            return target.state.delays.tolist()
        finally:
            await target.close()

    first, second = asyncio.run(go()), asyncio.run(go())
    assert first == second
    assert len(first) == 5
