"""The redis plugin against a real redis-server, alone and through cannonade's host.

The server runs on a free loopback port with persistence off, one per module. The tests
skip only when the redis-server binary is absent (scripts/test.sh installs it with apt).
"""

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from cannonade.model.metrics import HTTP_REQ_FAILED, Key
from cannonade.model.recorder import FALSE, TRUE, Recorder
from cannonade.plugins.protocols import ProtocolHost

from cannonade_redis import RedisHandler, create

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None,
    reason="redis-server is not installed (apt-get install redis-server; scripts/test.sh does)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raw(port: int, *commands: bytes) -> list[bytes]:
    """Inline commands on a fresh socket, one reply line each (for setup, not the tests)."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        replies = []
        f = s.makefile("rb")
        for c in commands:
            s.sendall(c + b"\r\n")
            replies.append(f.readline().rstrip())
        return replies


def ready(port: int, proc: subprocess.Popen[bytes], deadline: float) -> bool:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if raw(port, b"PING") == [b"+PONG"]:
                return True
        except OSError:
            time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A redis-server's port; tried on another port if the chosen one was taken."""
    assert REDIS_SERVER is not None
    workdir = tmp_path_factory.mktemp("redis")
    log = workdir / "redis.log"
    for _ in range(3):
        port = free_port()
        with log.open("ab") as out:
            # No persistence: nothing to write, nothing left behind in workdir.
            args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
            args += ["no", "--dir", str(workdir), "--daemonize", "no"]
            proc = subprocess.Popen(
                [REDIS_SERVER, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if ready(port, proc, time.monotonic() + 10):
            break
        stop(proc)
    else:
        pytest.fail(f"redis-server did not start:\n{log.read_text()[-2000:]}")
    try:
        yield port
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def url(server: int) -> str:
    """The server's db 0, emptied for each test."""
    assert raw(server, b"FLUSHALL") == [b"+OK"]
    return f"redis://127.0.0.1:{server}/0"


def req(url: str, *command: Any, name: str = "op", timeout_ms: int = 5000) -> dict[str, Any]:
    return {
        "name": name,
        "method": "CMD",
        "url": url,
        "headers": [],
        "body": b"",
        "timeout_ms": timeout_ms,
        "options": {"command": list(command)},
        "config": {},
    }


def run(handler: RedisHandler, *requests: dict[str, Any]) -> list[dict[str, Any]]:
    async def go() -> list[dict[str, Any]]:
        try:
            return [await handler.execute(r) for r in requests]
        finally:
            await handler.close()

    return asyncio.run(go())


def test_replies(url: str) -> None:
    responses = run(
        create({}),
        req(url, "SET", "k", "v"),
        req(url, "GET", "k"),
        req(url, "GET", "missing"),
        req(url, "RPUSH", "list", "a", "b", "c"),
        req(url, "LRANGE", "list", 0, -1),
        req(url, "HSET", "h", "f1", "1", "f2", "2"),
        req(url, "HGETALL", "h"),
        {**req(url), "options": {"command": "SET s 'two words'"}},
        req(url, "GET", "s"),
    )
    assert all(r["status"] == 1 and r["error"] is None for r in responses), responses
    bodies = [r["body"] for r in responses]
    assert bodies == [
        b"OK",
        b"v",
        b"",
        b"3",
        b'["a","b","c"]',
        b"2",
        b'["f1","1","f2","2"]',  # raw: a flat list, as on the wire
        b"OK",
        b"two words",
    ]
    docs = [r["extras"].get("docs") for r in responses]
    assert docs == [None, None, None, None, 3, None, 4, None, None]  # the list replies
    assert all(r["duration_ms"] > 0 for r in responses)


def test_errors_are_responses(url: str) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    t0 = time.monotonic()
    pushed, wrongtype, unknown, bad_arg, refused = run(
        create({}),
        req(url, "LPUSH", "l", "x"),
        req(url, "GET", "l"),
        req(url, "NOSUCHCOMMAND"),
        req(url, "SET", "k", True),
        req(closed, "PING"),
    )
    assert time.monotonic() - t0 < 5  # redis-py's retries are off: one attempt, one failure
    assert pushed["status"] == 1
    for r in (wrongtype, unknown, bad_arg, refused):
        assert r["status"] == 0
        assert r["body"] == b""
        assert r["extras"] == {}
    assert wrongtype["error"].startswith("WRONGTYPE")
    assert wrongtype["status_text"] == "ResponseError"
    assert "unknown command" in unknown["error"]
    assert bad_arg["status_text"] == "DataError"
    assert refused["status_text"] == "ConnectionError"
    assert "connecting to 127.0.0.1" in refused["error"]


def test_one_pool_per_url_shared_by_every_vu(url: str) -> None:
    db1 = url[: -len("/0")] + "/1"
    handler = create({"max_connections": 4})

    async def info(u: str) -> dict[str, str]:
        r = await handler.execute(req(u, "INFO", "stats"))
        lines = r["body"].decode().splitlines()
        return dict(line.split(":", 1) for line in lines if ":" in line)

    async def go() -> tuple[int, list[dict[str, Any]]]:
        try:
            before = int((await info(url))["total_connections_received"])
            incrs = await asyncio.gather(
                *(handler.execute(req(url, "INCR", "n")) for _ in range(200))
            )
            after = int((await info(url))["total_connections_received"])
            results = [
                await handler.execute(req(db1, "SET", "n", "db1")),
                await handler.execute(req(url, "GET", "n")),
                await handler.execute(req(db1, "GET", "n")),
            ]
            assert all(r["status"] == 1 for r in incrs)
            assert handler.client(url) is handler.client(url)
            return after - before, results
        finally:
            await handler.close()

    opened, (_, n0, n1) = asyncio.run(go())
    assert opened <= 3  # 4 at most in the pool, one of them already open for INFO
    assert n0["body"] == b"200"  # every INCR landed, on db 0
    assert n1["body"] == b"db1"  # /1 is a pool of its own, on db 1


def test_close_disconnects_every_pool(url: str, server: int) -> None:
    handler = create({})

    async def go() -> None:
        await asyncio.gather(*(handler.execute(req(url, "PING")) for _ in range(5)))
        await handler.execute(req(url[:-1] + "2", "PING"))
        await handler.close()

    asyncio.run(go())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with socket.create_connection(("127.0.0.1", server), timeout=2) as s:
            s.sendall(b"CLIENT LIST\r\n")
            time.sleep(0.05)
            listing = s.recv(65536).decode()
        if listing.count(" addr=") == 1:  # only this socket
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"connections left open after close():\n{listing}")


def test_through_cannonade_host(url: str) -> None:
    """The installed entry point: routing, metrics, a hung command cut at timeout_ms."""
    recorder = Recorder()
    host = ProtocolHost(recorder, configs={"redis": {"max_connections": 1}})
    assert host.route(url) == "redis"
    assert host.route("127.0.0.1:6379", "redis") == "redis"

    async def go() -> list[Any]:
        try:
            return [
                await host.call("redis", req(url, "RPUSH", "l", "a", "b", name="push")),
                await host.call("redis", req(url, "LRANGE", "l", 0, -1, name="range")),
                await host.call("redis", req(url, "GET", "l", name="get")),
                await host.call(
                    "redis", req(url, "BLPOP", "empty", 0, name="wait", timeout_ms=100)
                ),
                await host.call("redis", req(url, "LLEN", "l", name="len")),
                await host.call("redis", req(url, "LLEN", "l", name="len")),
                await host.call("redis", req(url, "LLEN", "l", name="len")),
            ]
        finally:
            await host.close()

    push, lrange, wrongtype, hung, *lens = asyncio.run(go())
    assert lrange.text == '["a","b"]'
    assert wrongtype.error.startswith("WRONGTYPE")
    assert hung.error == "timed out after 100 ms"
    # One connection only: had the cancelled BLPOP left it blocked or out of step, the
    # LLENs after it would hang or read the wrong reply.
    assert [r.text for r in lens] == ["2", "2", "2"]
    c = recorder.flush(0).counters
    assert c[Key("redis_reqs", "len", "CMD")] == 3
    assert c[Key("redis_docs", "range", "CMD")] == 2
    assert c[Key(HTTP_REQ_FAILED, "range", "CMD", FALSE)] == 1
    assert c[Key(HTTP_REQ_FAILED, "get", "CMD", TRUE)] == 1
    assert c[Key(HTTP_REQ_FAILED, "wait", "CMD", TRUE)] == 1
    assert push.status == 1
