"""WsClient against the embedded target's /ws echo and small local servers."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from cannonade.engine.http import HttpClient, HttpShared
from cannonade.engine.ws import WebSocketError, WsClient
from cannonade.model.metrics import (
    DATA_RECEIVED,
    DATA_SENT,
    WS_CONNECTING,
    WS_DATA_RECEIVED,
    WS_DATA_SENT,
    WS_MSGS_RECEIVED,
    WS_MSGS_SENT,
    WS_SESSION_DURATION,
    WS_SESSIONS,
    Key,
)
from cannonade.model.recorder import Recorder
from cannonade.target.process import TargetProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]


def test_echo_is_measured(target: TargetProcess) -> None:
    async def t() -> None:
        rec = Recorder()
        ws = WsClient(HttpShared(rec, base_url=target.url))
        async with ws.connect("/ws", name="echo") as session:
            await session.send("héllo")
            assert await session.recv() == "héllo"
            await session.send(b"\x00\x01\x02")
            assert await session.recv() == b"\x00\x01\x02"
        async with ws.connect(target.url.replace("http://", "ws://") + "/ws?x=1") as session:
            await session.send("again")
            assert await session.recv() == "again"
        delta = rec.flush(0)
        c = delta.counters
        assert c[Key(WS_SESSIONS, "echo")] == 1
        assert c[Key(WS_MSGS_SENT, "echo")] == 2
        assert c[Key(WS_MSGS_RECEIVED, "echo")] == 2
        assert c[Key(WS_DATA_SENT, "echo")] == 6 + 3  # "héllo" is 6 bytes in UTF-8
        assert c[Key(WS_DATA_RECEIVED, "echo")] == 9
        assert c[Key(DATA_SENT, "echo")] == 9
        assert c[Key(DATA_RECEIVED, "echo")] == 9
        other = target.url.replace("http://", "ws://") + "/ws"
        assert c[Key(WS_SESSIONS, other)] == 1
        assert delta.trends[Key(WS_CONNECTING, "echo")].count == 1
        assert delta.trends[Key(WS_SESSION_DURATION, "echo")].count == 1
        assert not delta.errors

    asyncio.run(t())
    assert target.stats()["ws_messages"] == 3


def test_failed_open_is_raised_once() -> None:
    async def t() -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        rec = Recorder()
        ws = WsClient(HttpShared(rec))
        with pytest.raises(WebSocketError, match="cannot open"):
            async with ws.connect(f"ws://127.0.0.1:{port}/ws", name="down"):
                pass
        delta = rec.flush(0)
        # The raised error is what the engine counts (as the iteration's error); the
        # client records nothing itself, so a failed open is never counted twice.
        assert delta.errors == []
        assert Key(WS_SESSIONS, "down") not in delta.counters

    asyncio.run(t())


def test_server_close_under_recv_raises_websocket_error() -> None:
    async def t() -> None:
        async def hang_up(conn: ServerConnection) -> None:
            await conn.recv()
            await conn.close(1011, "bye")

        async with serve(hang_up, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            ws = WsClient(HttpShared(Recorder(), base_url=f"http://127.0.0.1:{port}"))
            async with ws.connect("/") as session:
                await session.send("x")
                with pytest.raises(WebSocketError, match="closed"):
                    await session.recv()
                with pytest.raises(WebSocketError):
                    await session.send("y")

    asyncio.run(t())


def test_cookies_and_headers_reach_the_handshake() -> None:
    async def t() -> None:
        seen: dict[str, Any] = {}

        async def record(conn: ServerConnection) -> None:
            assert conn.request is not None
            seen.update({k.lower(): v for k, v in conn.request.headers.raw_items()})
            await conn.close()

        async with serve(record, "127.0.0.1", 0) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            base = f"http://127.0.0.1:{port}"
            shared = HttpShared(Recorder(), base_url=base, headers={"X-A": "1"})
            http = HttpClient(shared)
            http.cookies.set("sid", "abc", domain="127.0.0.1")
            ws = WsClient(shared, cookies=http.cookies)
            async with ws.connect("/", headers={"X-B": "2"}):
                pass
        assert (seen["x-a"], seen["x-b"], seen["cookie"]) == ("1", "2", "sid=abc")
        assert seen["user-agent"].startswith("cannonade/")

    asyncio.run(t())


def test_cancellation_aborts_the_session(target: TargetProcess) -> None:
    async def t() -> None:
        rec = Recorder()
        ws = WsClient(HttpShared(rec, base_url=target.url))

        async def forever() -> None:
            async with ws.connect("/ws", name="c") as session:
                await session.recv()  # the echo server never speaks first

        task = asyncio.create_task(forever())
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        delta = rec.flush(0)
        assert delta.counters[Key(WS_SESSIONS, "c")] == 1
        assert delta.trends[Key(WS_SESSION_DURATION, "c")].count == 1

    asyncio.run(t())
