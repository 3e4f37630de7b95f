"""The HTTP client against small real servers with canned (and broken) answers.

Each test starts ``asyncio.start_server`` on 127.0.0.1:0 in the test's own loop and
runs on both plain asyncio and uvloop. Timing is never asserted tightly.
"""

from __future__ import annotations

import asyncio
import gzip
import shutil
import socket
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvloop

from cannonade.engine.http import HttpClient, HttpShared
from cannonade.errors import ConfigError
from cannonade.model.recorder import Recorder, RequestSlot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

Handler = Callable[["Conn"], Awaitable[None]]


class Conn:
    """One server-side connection with request-reading helpers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def request(self) -> tuple[bytes, dict[str, str], bytes] | None:
        """(request line, lower-cased headers, body), or None at EOF."""
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        line, *rest = head[:-4].split(b"\r\n")
        headers = {}
        for h in rest:
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return line, headers, body

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def reset(self) -> None:
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


class Server:
    def __init__(self, url: str) -> None:
        self.url = url
        self.connections = 0
        self.requests: list[tuple[bytes, dict[str, str], bytes]] = []


@asynccontextmanager
async def serve(handler: Handler, ssl_ctx: ssl.SSLContext | None = None) -> AsyncIterator[Server]:
    tasks: set[asyncio.Task[Any]] = set()
    server_box: list[Server] = []

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        server_box[0].connections += 1
        try:
            await handler(Conn(reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # cancelled at teardown; swallowed so start_server does not log it
        finally:
            writer.close()

    srv = await asyncio.start_server(on_conn, "127.0.0.1", 0, ssl=ssl_ctx)
    port = srv.sockets[0].getsockname()[1]
    server = Server(f"{'https' if ssl_ctx else 'http'}://127.0.0.1:{port}")
    server_box.append(server)
    try:
        yield server
    finally:
        srv.close()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await srv.wait_closed()


def answer(*responses: bytes, record: Server | None = None) -> Handler:
    """Answer successive requests on a connection with ``responses`` (the last repeats)."""

    async def handler(c: Conn) -> None:
        i = 0
        while (req := await c.request()) is not None:
            if record is not None:
                record.requests.append(req)
            await c.send(responses[min(i, len(responses) - 1)])
            i += 1

    return handler


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, None]], None]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def runner(coro: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=factory) as r:
            r.run(asyncio.wait_for(coro, 20))

    return runner


def slot(rec: Recorder, name: str, method: str = "GET") -> RequestSlot:
    return rec.request_slot(name, method)


def assert_exact(s: RequestSlot, n: int) -> None:
    """Every request appends exactly one duration and one status."""
    assert len(s.duration) == n
    assert len(s.status) == n


# -- keep-alive and connection reuse -------------------------------------------------------


def test_keep_alive_reuses_one_connection(run: Any) -> None:
    async def t() -> None:
        rec = Recorder()
        async with serve(answer(OK)) as srv:
            c = HttpClient(HttpShared(rec, base_url=srv.url))
            for _ in range(10):
                r = await c.get("/a?x=1")
                assert (r.status, r.ok, r.body) == (200, True, b"ok")
            await c.close()
            assert srv.connections == 1
        s = slot(rec, "/a")
        assert_exact(s, 10)
        assert s.status == [200] * 10
        assert len(s.connecting) == 1
        assert len(s.waiting) == 10
        assert len(s.receiving) == 10
        assert not s.tls
        assert not s.uncorrected
        assert not s.errors
        assert s.sent > 0
        assert s.received == 10 * len(OK)

    run(t())


def test_concurrent_requests_open_extra_connections(run: Any) -> None:
    async def t() -> None:
        rec = Recorder()
        gate = asyncio.Event()

        async def slow(c: Conn) -> None:
            while await c.request() is not None:
                await gate.wait()
                await c.send(OK)

        async with serve(slow) as srv:
            c = HttpClient(HttpShared(rec, base_url=srv.url))
            pending = asyncio.gather(*(c.get("/") for _ in range(4)))
            while srv.connections < 4:
                await asyncio.sleep(0.01)
            gate.set()
            assert [r.status for r in await pending] == [200] * 4
            await asyncio.gather(*(c.get("/") for _ in range(4)))
            await c.close()
            assert srv.connections == 4
        assert_exact(slot(rec, "/"), 8)
        assert len(slot(rec, "/").connecting) == 4

    run(t())


def test_connection_close_and_http10_reconnect(run: Any) -> None:
    async def t() -> None:
        rec = Recorder()
        close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"
        http10 = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
        for canned in (close, http10):
            async with serve(answer(canned)) as srv:
                c = HttpClient(HttpShared(rec, base_url=srv.url))
                for _ in range(3):
                    assert (await c.get("/")).status == 200
                await c.close()
                assert srv.connections == 3
        assert_exact(slot(rec, "/"), 6)
        assert not slot(rec, "/").errors

    run(t())


def test_stale_keep_alive_is_retried_once_for_idempotent(run: Any) -> None:
    async def t() -> None:
        rec = Recorder()

        async def one_then_close(c: Conn) -> None:
            if await c.request() is not None:
                await c.send(OK)  # says keep-alive, then closes while the client is idle
            c.writer.close()

        async with serve(one_then_close) as srv:
            c = HttpClient(HttpShared(rec, base_url=srv.url))
            assert (await c.get("/")).status == 200
            await asyncio.sleep(0.1)  # the FIN arrives while idle: the pool notices
            assert (await c.get("/")).status == 200
            assert srv.connections == 2
            # Now race it: write on a connection whose FIN is not processed yet.
            for conn in c._pool.open:
                conn.closed = False  # pretend we did not notice the close
            r = await c.get("/")
            assert r.status == 200, r
            r = await c.post("/p")
            await c.close()
        s = slot(rec, "/")
        assert_exact(s, 3)
        assert s.status == [200, 200, 200]
        assert not s.errors

    run(t())


def test_stale_connection_is_not_retried_for_post(run: Any) -> None:
    async def t() -> None:
        rec = Recorder()

        async def one_then_rst(c: Conn) -> None:
            if await c.request() is not None:
                await c.send(OK)
            await c.request()
            c.reset()

        async with serve(one_then_rst) as srv:
            c = HttpClient(HttpShared(rec, base_url=srv.url))
            assert (await c.post("/p", data=b"1")).status == 200
            r = await c.post("/p", data=b"2")
            assert r.status == 0
            assert r.error_kind in ("reset", "closed")
            await c.close()
        s = slot(rec, "/p", "POST")
        assert_exact(s, 2)
        assert s.status == [200, 0]
        assert sum(s.errors.values()) == 1

    run(t())


# -- transport errors ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_refused(run: Any) -> None:
    async def t() -> None:
        rec = Recorder()
        c = HttpClient(HttpShared(rec))
        url = f"http://127.0.0.1:{free_port()}/x"
        r = await c.get(url)
        assert (r.status, r.error_kind, r.ok) == (0, "refused", False)
        assert r.error
        assert "127.0.0.1" in r.error
        s = slot(rec, url)
        assert_exact(s, 1)
        assert s.status == [0]
        assert s.errors == {"refused": 1}
        assert not s.connecting
        assert not s.waiting

    run(t())


def test_response_timeout_and_lag(run: Any) -> None:
    async def t() -> None:
        rec = Recorder()

        async def silent(c: Conn) -> None:
            await c.request()
            await asyncio.sleep(30)

        async with serve(silent) as srv:
            c = HttpClient(HttpShared(rec, base_url=srv.url, open_model=True))
            c.lag = 1.5
            r = await c.get("/slow", timeout=0.2)
            assert (r.status, r.error_kind) == (0, "timeout")
            assert 0.15 < r.elapsed < 5
            await c.close()
        s = slot(rec, "/slow")
        assert_exact(s, 1)
        assert s.errors == {"timeout": 1}
        assert s.duration[0] == pytest.approx(s.uncorrected[0] + 1.5)

    run(t())


def test_timeout_applies_across_a_slow_body(run: Any) -> None:
    async def t() -> None:
        rec = Recorder()

        async def dribble(c: Conn) -> None:
            await c.request()
            await c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            for _ in range(100):
                await c.send(b"x")
                await asyncio.sleep(0.05)

        async with serve(dribble) as srv:
            c = HttpClient(HttpShared(rec, base_url=srv.url, timeout=0.3))
            r = await c.get("/")
            assert r.error_kind == "timeout"
            await c.close()

    run(t())


def test_reset_closed_and_bad_response(run: Any) -> None:
    async def t() -> None:
        rec = Recorder()

        async def rst(c: Conn) -> None:
            await c.request()
            c.reset()

        async def half(c: Conn) -> None:
            await c.request()
            await c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nonly-part")

        async def garbage(c: Conn) -> None:
            await c.request()
            await c.send(b"SMTP ready, not HTTP\r\n\r\n")
            await asyncio.sleep(5)

        c = HttpClient(HttpShared(rec))
        for handler, kind in ((rst, "reset"), (half, "closed"), (garbage, "bad_response")):
            async with serve(handler) as srv:
                r = await c.post(srv.url + "/e", name="e")
                assert (r.status, r.error_kind) == (0, kind), r
        await c.close()
        s = slot(rec, "e", "POST")
        assert_exact(s, 3)
        assert s.errors == {"reset": 1, "closed": 1, "bad_response": 1}

    run(t())


def test_dns_failure() -> None:
    async def t() -> None:
        rec = Recorder()
        loop = asyncio.get_running_loop()

        async def no_such_host(*args: Any, **kwargs: Any) -> Any:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        loop.getaddrinfo = no_such_host  # type: ignore[method-assign]
        c = HttpClient(HttpShared(rec))
        r = await c.get("http://no-such-host.invalid/")
        assert (r.status, r.error_kind) == (0, "dns")
        assert_exact(slot(rec, "http://no-such-host.invalid/"), 1)

    asyncio.run(t())


def test_cancellation_propagates_unrecorded_and_closes(run: Any) -> None:
    async def t() -> None:
        rec = Recorder()
        saw_eof = asyncio.Event()

        async def hang(c: Conn) -> None:
            await c.request()
            await c.request()  # returns None at EOF, when the client drops the connection
            saw_eof.set()

        async with serve(hang) as srv:
            c = HttpClient(HttpShared(rec, base_url=srv.url))
            task = asyncio.create_task(c.get("/hang"))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(saw_eof.wait(), 5)
            assert not c._pool.open
        s = slot(rec, "/hang")
        assert_exact(s, 0)
        assert not s.errors

    run(t())


def test_relative_url_without_base_is_config_error(run: Any) -> None:
    async def t() -> None:
        c = HttpClient(HttpShared(Recorder()))
        with pytest.raises(ConfigError, match="/nobase"):
            await c.get("/nobase")

    run(t())


# -- bodies --------------------------------------------------------------------------------


def test_response_bodies(run: Any) -> None:
    async def t() -> None:
        rec = Recorder()
        payload = orjson.dumps({"hello": "world"})
        gz = gzip.compress(payload)
        responses = {
            b"/chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            b"/gzip": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Type: application/json"
            b"\r\nContent-Length: %d\r\n\r\n" % len(gz) + gz,
            b"/continue": b"HTTP/1.1 100 Continue\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nc",
            b"/empty": b"HTTP/1.1 204 No Content\r\n\r\n",
            b"/head": b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
        }

        async def route(c: Conn) -> None:
            while (req := await c.request()) is not None:
                await c.send(responses[req[0].split(b" ")[1]])

        async with serve(route) as srv:
            c = HttpClient(HttpShared(rec, base_url=srv.url))
            r = await c.get("/chunked")
            assert r.text == "hello world"
            r = await c.get("/gzip")
            assert r.json() == {"hello": "world"}
            assert r.headers["Content-Encoding"] == "gzip"
            r = await c.get("/continue")
            assert (r.status, r.body) == (200, b"c")
            r = await c.get("/empty")
            assert (r.status, r.body) == (204, b"")
            r = await c.head("/head")
            assert (r.status, r.body, r.headers["content-length"]) == (200, b"", "1234")
            r = await c.get("/chunked")  # the connection is still in step after HEAD
            assert r.body == b"hello world"
            await c.close()
            assert srv.connections == 1

    run(t())


def test_body_until_close(run: Any) -> None:
    async def t() -> None:
        async def eof_body(c: Conn) -> None:
            await c.request()
            await c.send(b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 100_000)

        async with serve(eof_body) as srv:
            c = HttpClient(HttpShared(Recorder(), base_url=srv.url))
            r = await c.get("/")
            assert (r.status, r.error, len(r.body)) == (200, None, 100_000)
            await c.close()

    run(t())


def test_request_encoding(run: Any) -> None:
    async def t() -> None:
        srv = Server("")  # collects the requests
        async with serve(answer(OK, record=srv)) as real:
            shared = HttpShared(
                Recorder(), base_url=real.url + "/api", headers={"X-Team": "a", "accept": "text/x"}
            )
            c = HttpClient(shared)
            await c.get("/items", params={"page": 2, "q": "a b"})
            await c.post("/items", json={"n": 1})
            await c.put("/items/1", data={"k": "v w"})
            await c.patch("/items/1", data="plain")
            await c.post("/empty")
            await c.delete("/items/1", headers={"X-Team": "b", "Host": "override.test"})
            await c.options("/items")
            await c.close()
        lines = [r[0] for r in srv.requests]
        assert lines == [
            b"GET /api/items?page=2&q=a+b HTTP/1.1",
            b"POST /api/items HTTP/1.1",
            b"PUT /api/items/1 HTTP/1.1",
            b"PATCH /api/items/1 HTTP/1.1",
            b"POST /api/empty HTTP/1.1",
            b"DELETE /api/items/1 HTTP/1.1",
            b"OPTIONS /api/items HTTP/1.1",
        ]
        get, post, put, patch, empty, delete, _ = srv.requests
        assert get[1]["host"] == real.url.removeprefix("http://")
        assert get[1]["accept-encoding"] == "gzip, deflate"
        assert get[1]["user-agent"].startswith("cannonade/")
        assert (get[1]["x-team"], get[1]["accept"]) == ("a", "text/x")
        assert "cookie" not in get[1]
        assert "content-length" not in get[1]
        assert (post[1]["content-type"], orjson.loads(post[2])) == ("application/json", {"n": 1})
        assert put[1]["content-type"] == "application/x-www-form-urlencoded"
        assert put[2] == b"k=v+w"
        assert patch[2] == b"plain"
        assert empty[1]["content-length"] == "0"
        assert (delete[1]["x-team"], delete[1]["host"]) == ("b", "override.test")

    run(t())


def test_json_and_data_together_is_a_programming_error(run: Any) -> None:
    async def t() -> None:
        c = HttpClient(HttpShared(Recorder(), base_url="http://127.0.0.1:9"))
        with pytest.raises(TypeError):
            await c.post("/", json={}, data=b"")
        with pytest.raises(TypeError):
            await c.post("/", json={1, 2})  # not JSON-serialisable

    run(t())


# -- cookies and redirects -----------------------------------------------------------------


def test_cookies_round_trip_per_vu(run: Any) -> None:
    async def t() -> None:
        srv_box = Server("")

        async def cookie_server(c: Conn) -> None:
            while (req := await c.request()) is not None:
                srv_box.requests.append(req)
                if req[0].startswith(b"GET /login"):
                    await c.send(
                        b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=abc; Path=/\r\n"
                        b"set-cookie: theme=dark; Max-Age=3600\r\nContent-Length: 0\r\n\r\n"
                    )
                elif req[0].startswith(b"GET /logout"):
                    await c.send(
                        b"HTTP/1.1 200 OK\r\nSet-Cookie: sid=; Max-Age=0\r\n"
                        b"Content-Length: 0\r\n\r\n"
                    )
                else:
                    await c.send(OK)

        async with serve(cookie_server) as srv:
            shared = HttpShared(Recorder(), base_url=srv.url)
            a, b = HttpClient(shared), HttpClient(shared)
            await a.get("/page")
            await a.get("/login")
            await a.get("/page")
            await b.get("/page")
            await a.get("/logout")
            await a.get("/page")
            assert a.cookies.get("theme") == "dark"
            assert a.cookies.get("sid") is None
            await a.close()
            await b.close()
        cookies = [r[1].get("cookie") for r in srv_box.requests]
        both = "sid=abc; theme=dark"
        assert cookies == [None, None, both, None, both, "theme=dark"]

    run(t())


def redirect(status: bytes, location: bytes) -> bytes:
    return b"HTTP/1.1 " + status + b"\r\nLocation: " + location + b"\r\nContent-Length: 0\r\n\r\n"


def test_redirects(run: Any) -> None:
    async def t() -> None:
        rec = Recorder()
        seen = Server("")

        async def redirector(c: Conn) -> None:
            while (req := await c.request()) is not None:
                seen.requests.append(req)
                path = req[0].split(b" ")[1]
                if path.startswith(b"/r/"):
                    n = int(path[3:])
                    loc = b"/r/%d" % (n - 1) if n > 1 else b"/final"
                    await c.send(redirect(b"302 Found", loc))
                elif path == b"/see-other":
                    await c.send(redirect(b"303 See Other", b"/final?x=1"))
                elif path == b"/temp":
                    await c.send(redirect(b"307 Temporary Redirect", b"/final"))
                else:
                    await c.send(OK)

        async with serve(redirector) as srv:
            c = HttpClient(HttpShared(rec, base_url=srv.url))
            r = await c.get("/r/3")
            assert r.status == 302  # off by default
            r = await c.get("/r/3", follow_redirects=True)
            assert (r.status, r.url, len(r.history)) == (200, srv.url + "/final", 3)
            assert [h.status for h in r.history] == [302, 302, 302]
            seen.requests.clear()
            r = await c.post("/see-other", json={"a": 1}, follow_redirects=True)
            assert seen.requests[1][0] == b"GET /final?x=1 HTTP/1.1"
            assert seen.requests[1][2] == b""
            seen.requests.clear()
            r = await c.post("/temp", data=b"keep", follow_redirects=True)
            assert seen.requests[1][0] == b"POST /final HTTP/1.1"
            assert seen.requests[1][2] == b"keep"
            shared = HttpShared(rec, base_url=srv.url, follow_redirects=True, max_redirects=1)
            c2 = HttpClient(shared)
            r = await c2.get("/r/3")
            assert (r.status, len(r.history)) == (302, 1)
            await c.close()
            await c2.close()
        # every hop is one recorded request, named after its own URL
        assert len(slot(rec, "/r/3").status) == 3
        assert len(slot(rec, "/r/2").status) == 2
        assert len(slot(rec, "/final").status) == 2
        assert len(slot(rec, "/final", "POST").status) == 1

    run(t())


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed (needed to make a self-signed certificate)")
    d = tmp_path_factory.mktemp("tls")
    key, crt = d / "key.pem", d / "cert.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return crt, key


def server_tls(cert: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    return ctx


def test_tls_is_timed_apart_and_verified(run: Any, cert: tuple[Path, Path]) -> None:
    async def t() -> None:
        rec = Recorder()
        async with serve(answer(OK), ssl_ctx=server_tls(cert)) as srv:
            insecure = HttpClient(HttpShared(rec, base_url=srv.url, verify_tls=False))
            for _ in range(3):
                assert (await insecure.get("/")).body == b"ok"
            await insecure.close()
            strict = HttpClient(HttpShared(rec, base_url=srv.url))
            r = await strict.get("/strict")
            assert (r.status, r.error_kind) == (0, "tls")
            await strict.close()
            assert srv.connections == 1  # the refused handshake never reached the handler
        s = slot(rec, "/")
        assert_exact(s, 3)
        assert len(s.connecting) == 1
        assert len(s.tls) == 1
        assert s.tls[0] > 0

    run(t())


def test_tls_against_plain_server_is_tls_error(run: Any) -> None:
    async def t() -> None:
        async def plain(c: Conn) -> None:
            await c.reader.read(1)  # a ClientHello: answer like an HTTP server would
            await c.send(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")

        async with serve(plain) as srv:
            c = HttpClient(HttpShared(Recorder(), verify_tls=False))
            r = await c.get(srv.url.replace("http://", "https://") + "/")
            assert (r.status, r.error_kind) == (0, "tls")
            await c.close()

    run(t())


def test_stalled_tls_handshake_is_connect_timeout(run: Any) -> None:
    async def t() -> None:
        async def mute(c: Conn) -> None:
            await asyncio.sleep(30)  # accepts TCP, never answers the ClientHello

        rec = Recorder()
        async with serve(mute) as srv:
            c = HttpClient(HttpShared(rec, connect_timeout=0.2, verify_tls=False))
            r = await c.get(srv.url.replace("http://", "https://") + "/")
            assert (r.status, r.error_kind) == (0, "connect_timeout")
            r = await c.get(srv.url.replace("http://", "https://") + "/", timeout=0.1)
            assert (r.status, r.error_kind) == (0, "timeout")  # the request's budget was tighter
            await c.close()

    run(t())


def test_close_fails_requests_in_flight_without_retry(run: Any) -> None:
    async def t() -> None:
        async def hang(c: Conn) -> None:
            await c.request()
            await asyncio.sleep(30)

        rec = Recorder()
        async with serve(hang) as srv:
            c = HttpClient(HttpShared(rec, base_url=srv.url))
            task = asyncio.create_task(c.get("/"))
            while srv.connections < 1:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            await c.close()
            r = await task
            assert (r.status, r.error_kind) == (0, "other")
            assert srv.connections == 1
            assert not c._pool.open
        assert_exact(slot(rec, "/"), 1)

    run(t())


def test_close_closes_idle_connections(run: Any) -> None:
    async def t() -> None:
        eofs = 0

        async def count_eof(c: Conn) -> None:
            nonlocal eofs
            while (req := await c.request()) is not None:
                assert req
                await c.send(OK)
            eofs += 1

        async with serve(count_eof) as srv:
            c = HttpClient(HttpShared(Recorder(), base_url=srv.url))
            await asyncio.gather(c.get("/"), c.get("/"))
            await c.close()
            for _ in range(100):
                if eofs == srv.connections:
                    break
                await asyncio.sleep(0.01)
            assert eofs == srv.connections >= 1

    run(t())


def test_a_cookie_after_identical_cookie_free_responses_is_kept(run: Any) -> None:
    # The client remembers the last cookie-free response per request and skips the scan
    # when the bytes repeat; a response that differs must still be scanned.
    set_cookie = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nSet-Cookie: sid=42; Path=/\r\n\r\nok"

    async def t() -> None:
        rec = Recorder()
        async with serve(answer(OK, OK, OK, set_cookie, OK)) as srv:
            shared = HttpShared(rec, base_url=srv.url)
            c = HttpClient(shared)
            other = HttpClient(shared)  # same prepared request, another VU
            for _ in range(3):
                await c.get("/")
            assert not c.cookies.store
            await c.get("/")
            assert c.cookies.store
            await other.get("/")
            assert not other.cookies.store
            await c.close()
            await other.close()

    run(t())
