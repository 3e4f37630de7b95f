"""The target's /ws WebSocket echo, driven by the ``websockets`` client."""

from __future__ import annotations

import asyncio
import http.client

import pytest
from websockets.asyncio.client import connect

from cannonade.target.process import TargetProcess

pytestmark = pytest.mark.e2e


def ws_url(target: TargetProcess) -> str:
    return target.url.replace("http://", "ws://") + "/ws"


def test_echo_text_binary_and_fragments(target: TargetProcess) -> None:
    async def go() -> tuple[list[str | bytes], int | None]:
        got: list[str | bytes] = []
        async with connect(ws_url(target), open_timeout=5, close_timeout=5) as ws:
            await ws.send("hello")
            got.append(await ws.recv())
            await ws.send(b"\x00\x01\xff")
            got.append(await ws.recv())
            await ws.send(["frag", "ments"])
            got.append(await ws.recv())
            await ws.send("é" * 100_000)
            got.append(await ws.recv())
        return got, ws.close_code

    got, close_code = asyncio.run(go())
    assert got == ["hello", b"\x00\x01\xff", "fragments", "é" * 100_000]
    assert close_code == 1000
    stats = target.stats()
    assert stats["paths"] == {"/ws": 1}
    assert stats["ws_messages"] == 4


def test_ping_is_answered(target: TargetProcess) -> None:
    async def go() -> None:
        async with connect(ws_url(target), open_timeout=5, close_timeout=5) as ws:
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 5)
            await ws.send("still here")
            assert await ws.recv() == "still here"

    asyncio.run(go())


def test_several_sessions_count_one_request_each(target: TargetProcess) -> None:
    async def session(i: int) -> str:
        async with connect(ws_url(target), open_timeout=5, close_timeout=5) as ws:
            await ws.send(f"n{i}")
            reply = await ws.recv()
            assert isinstance(reply, str)
            return reply

    async def go() -> list[str]:
        return await asyncio.gather(*(session(i) for i in range(10)))

    assert asyncio.run(go()) == [f"n{i}" for i in range(10)]
    assert target.stats()["paths"] == {"/ws": 10}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 426),
        (
            {
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "not base64!",
            },
            400,
        ),
        (
            {
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "8",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
            400,
        ),
    ],
)
def test_bad_handshakes_are_refused(
    target: TargetProcess, headers: dict[str, str], status: int
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=5)
    try:
        conn.request("GET", "/ws", headers=headers)
        response = conn.getresponse()
        assert response.status == status
        assert response.headers["connection"] == "close"
        response.read()
    finally:
        conn.close()
    assert target.stats()["paths"] == {"/ws": 1}
