"""The HTTP client against the embedded target (a real server in its own process)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest
import uvloop

from cannonade.engine.http import HttpClient, HttpShared, HttpStatusError
from cannonade.model.metrics import HTTP_REQ_CONNECTING, HTTP_REQS
from cannonade.model.recorder import Recorder
from cannonade.target.process import TargetProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


def run(coro: Coroutine[Any, Any, None]) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(coro, 40))


def pattern(n: int) -> bytes:
    return bytes(i % 256 for i in range(n))


def test_exact_counts_over_keep_alive(target: TargetProcess) -> None:
    vus, per_vu = 16, 125

    async def t() -> None:
        rec = Recorder()
        shared = HttpShared(rec, base_url=target.url)
        clients = [HttpClient(shared) for _ in range(vus)]

        async def vu(c: HttpClient) -> None:
            for i in range(per_vu):
                r = await c.get(f"/?i={i}")
                assert r.status == 200

        await asyncio.gather(*(vu(c) for c in clients))
        for c in clients:
            await c.close()
        s = rec.request_slot("/", "GET")
        assert len(s.duration) == len(s.status) == vus * per_vu
        assert len(s.connecting) == vus  # one connection per VU, reused
        assert not s.errors

    run(t())
    stats = target.stats()
    assert stats["requests"] == vus * per_vu
    assert stats["paths"] == {"/": vus * per_vu}


def test_bodies(target: TargetProcess) -> None:
    async def t() -> None:
        rec = Recorder()
        c = HttpClient(HttpShared(rec, base_url=target.url))
        r = await c.get("/")
        assert (r.status, r.text) == (200, "ok\n")
        r = await c.get("/bytes/100000", params={"gzip": 1})
        assert r.headers.get("content-encoding") == "gzip"
        assert r.body == pattern(100_000)
        r = await c.get("/chunked/70000")
        assert r.body == pattern(70_000)
        r = await c.get("/bytes/3000000")
        assert r.body == pattern(3_000_000)
        r = await c.head("/bytes/1000")
        assert (r.status, r.body, r.headers["content-length"]) == (200, b"", "1000")
        r = await c.post("/echo", data=b"\x00payload", headers={"Content-Type": "app/x"})
        assert (r.body, r.headers["content-type"]) == (b"\x00payload", "app/x")
        r = await c.get("/headers", headers={"X-Probe": "1"})
        assert r.json()["x-probe"] == "1"
        assert r.json()["accept-encoding"] == "gzip, deflate"
        r = await c.get("/json")
        assert r.json()["user"] == {"name": "ada"}
        r = await c.get("/status/404")
        assert (r.status, r.ok) == (404, False)
        with pytest.raises(HttpStatusError):
            r.raise_for_status()
        await c.close()
        # every request above went over one keep-alive connection
        delta = rec.flush(0)
        connects = [t.count for k, t in delta.trends.items() if k.metric == HTTP_REQ_CONNECTING]
        assert sum(connects) == 1

    run(t())


def test_cookies_with_target(target: TargetProcess) -> None:
    async def t() -> None:
        shared = HttpShared(Recorder(), base_url=target.url)
        a, b = HttpClient(shared), HttpClient(shared)
        await a.get("/cookies/set?session=s1&theme=dark")
        assert (await a.get("/cookies")).json() == {"session": "s1", "theme": "dark"}
        assert (await b.get("/cookies")).json() == {}
        await a.close()
        await b.close()

    run(t())


def test_redirect_hops_are_requests(target: TargetProcess) -> None:
    async def t() -> None:
        rec = Recorder()
        c = HttpClient(HttpShared(rec, base_url=target.url, follow_redirects=True))
        r = await c.get("/redirect/5")
        assert (r.status, r.url, len(r.history)) == (200, target.url + "/", 5)
        r = await c.get("/redirect/3", follow_redirects=False)
        assert r.status == 302
        await c.close()
        reqs = {k.name: n for k, n in rec.flush(0).counters.items() if k.metric == HTTP_REQS}
        assert reqs == {
            "/redirect/5": 1,
            "/redirect/4": 1,
            "/redirect/3": 2,
            "/redirect/2": 1,
            "/redirect/1": 1,
            "/": 1,
        }

    run(t())
    assert target.stats()["requests"] == 7


def test_timeout_then_recovery(target: TargetProcess) -> None:
    async def t() -> None:
        rec = Recorder()
        c = HttpClient(HttpShared(rec, base_url=target.url))
        r = await c.get("/delay?ms=2000", timeout=0.2)
        assert (r.status, r.error_kind) == (0, "timeout")
        r = await c.get("/")
        assert r.status == 200
        await c.close()
        assert rec.request_slot("/delay", "GET").errors == {"timeout": 1}

    run(t())
