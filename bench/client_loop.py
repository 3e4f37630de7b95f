"""Client CPU per request of cannonade's HTTP client, against a bare Protocol+httptools loop.

    .venv/bin/python bench/client_loop.py [--requests N] [--clients 64] [--mode client|bare|both]
                                          [--url URL] [--path /] [--loop uvloop|asyncio]

64 concurrent clients (each one ``HttpClient``, i.e. one VU with one keep-alive
connection) send ``GET`` requests in a closed loop until ``--requests`` are done or
``--max-seconds`` pass. The figure that matters is the client's CPU time per request
(``getrusage(RUSAGE_SELF)`` user + sys over the timed loop, divided by the requests
completed); req/s is printed too, but on a shared machine it is the noisier number.

``bare`` runs the same loop with the least code that can do it (one future per request,
pre-encoded bytes, httptools with only ``on_message_complete``): the floor the client is
compared with. ``both`` alternates the two modes ``--rounds`` times and reports the best
round of each, which is what docs/http-client.md quotes.

Without ``--url`` the embedded target is started in a subprocess (or, if it cannot be
imported, the minimal server below). Loopback only. With two or more CPUs the server is
pinned to the first and this process to the last, so they do not fight over one core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httptools

try:
    import uvloop
except ImportError:  # pragma: no cover - Windows
    uvloop = None  # type: ignore[assignment]

# -- a minimal server, used when the embedded target cannot be imported --------------------

_CANNED = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n"


class _MinimalServer(asyncio.Protocol):
    """Answers every request head (GET, no body) with the same 200; pipelining-safe."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport
        self.tail = b""

    def data_received(self, data: bytes) -> None:
        data = self.tail + data
        n = data.count(b"\r\n\r\n")
        self.tail = data[data.rfind(b"\r\n\r\n") + 4 :] if n else data
        if n:
            self.transport.write(_CANNED * n)


async def _serve_minimal() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_MinimalServer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    await server.serve_forever()


@contextlib.contextmanager
def server(url: str | None, pin: bool) -> Iterator[str]:
    """Yield the URL to load: ``url`` as given, else a server started here."""
    if url is not None:
        yield url
        return
    try:
        from cannonade.target.process import start_target
    except ImportError:
        start_target = None
    if start_target is not None:
        target = start_target()
        _pin(target.pid, 0, pin)
        try:
            yield target.url
        finally:
            target.stop()
        return
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("listening on "):
            raise SystemExit(f"the minimal server did not start: {line!r}")
        _pin(proc.pid, 0, pin)
        yield line.removeprefix("listening on ")
    finally:
        proc.terminate()
        proc.wait(5)


def _pin(pid: int, which: int, pin: bool) -> None:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if pin and len(cpus) >= 2:
        os.sched_setaffinity(pid, {cpus[which]})


# -- the two clients -----------------------------------------------------------------------


async def run_client(url: str, path: str, clients: int, budget: list[int], deadline: float) -> int:
    from cannonade.engine.http import HttpClient, HttpShared
    from cannonade.model.recorder import Recorder

    recorder = Recorder()
    shared = HttpShared(recorder, base_url=url)
    vus = [HttpClient(shared) for _ in range(clients)]
    failed = 0
    flusher = asyncio.create_task(_flush_every_second(recorder))

    async def vu(client: HttpClient) -> int:
        nonlocal failed
        done = 0
        get = client.get
        while budget[0] > 0 and time.monotonic() < deadline:
            budget[0] -= 1
            response = await get(path)
            if response.status != 200:
                failed += 1
            done += 1
        return done

    try:
        done = sum(await asyncio.gather(*(vu(c) for c in vus)))
    finally:
        flusher.cancel()
        for c in vus:
            await c.close()
    recorder.flush(0)
    if failed:
        print(f"warning: {failed} requests failed", file=sys.stderr)
    return done


async def _flush_every_second(recorder: Any) -> None:
    # As the engine does: the recorder's per-second flush is part of the per-request cost.
    while True:
        await asyncio.sleep(1.0)
        recorder.flush(int(time.time()))


class _Bare(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[None] | None = None
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        assert self.waiter is not None
        self.waiter.set_result(None)


async def run_bare(url: str, path: str, clients: int, budget: list[int], deadline: float) -> int:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    wire = (
        f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nUser-Agent: bare\r\n"
        "Accept-Encoding: gzip, deflate\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()

    async def one() -> int:
        transport, proto = await loop.create_connection(_Bare, host, port)
        done = 0
        while budget[0] > 0 and time.monotonic() < deadline:
            budget[0] -= 1
            proto.waiter = loop.create_future()
            transport.write(wire)
            await proto.waiter
            done += 1
        transport.close()
        return done

    return sum(await asyncio.gather(*(one() for _ in range(clients))))


# -- measuring -----------------------------------------------------------------------------


@dataclass
class Result:
    mode: str
    requests: int
    seconds: float
    user: float
    sys: float

    @property
    def us_per_request(self) -> float:
        return (self.user + self.sys) / self.requests * 1e6

    def line(self) -> str:
        return (
            f"{self.mode:6s} {self.requests:8d} req in {self.seconds:6.2f} s  "
            f"{self.requests / self.seconds:8.0f} req/s  "
            f"CPU {self.us_per_request:6.2f} µs/req "
            f"(user {self.user / self.requests * 1e6:5.2f}, "
            f"sys {self.sys / self.requests * 1e6:5.2f})"
        )


Runner = Callable[[str, str, int, list[int], float], Awaitable[int]]


def measure(mode: str, runner: Runner, args: argparse.Namespace, url: str) -> Result:
    async def timed() -> Result:
        # Warm up (connections, caches) outside the measured window.
        await runner(url, args.path, args.clients, [args.clients * 20], time.monotonic() + 10)
        budget = [args.requests]
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        done = await runner(
            url, args.path, args.clients, budget, time.monotonic() + args.max_seconds
        )
        seconds = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        return Result(mode, done, seconds, r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime)

    if args.loop == "uvloop" and uvloop is not None:
        return uvloop.run(timed())
    return asyncio.run(timed())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--requests", type=int, default=200_000, help="per measured round")
    p.add_argument("--max-seconds", type=float, default=60.0, help="per measured round")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--mode", choices=["client", "bare", "both"], default="client")
    p.add_argument("--rounds", type=int, default=3, help="rounds per mode with --mode both")
    p.add_argument("--url", help="load this server (loopback) instead of starting one")
    p.add_argument("--path", default="/")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    p.add_argument("--no-pin", action="store_true", help="do not pin server and client to CPUs")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        (uvloop.run if uvloop is not None else asyncio.run)(_serve_minimal())
        return 0
    loopback = ("127.0.0.1", "localhost", "::1")
    if args.url is not None and urlsplit(args.url).hostname not in loopback:
        p.error("--url must be a loopback address")
    modes: list[tuple[str, Runner]] = {
        "client": [("client", run_client)],
        "bare": [("bare", run_bare)],
        "both": [("bare", run_bare), ("client", run_client)] * args.rounds,
    }[args.mode]
    with server(args.url, not args.no_pin) as url:
        _pin(0, -1, not args.no_pin)
        print(f"{url}{args.path}, {args.clients} clients, {args.loop}", flush=True)
        best: dict[str, Result] = {}
        for mode, runner in modes:
            result = measure(mode, runner, args, url)
            print(result.line(), flush=True)
            if mode not in best or result.us_per_request < best[mode].us_per_request:
                best[mode] = result
    if len(best) == 2:
        client, bare = best["client"], best["bare"]
        print(
            f"best: client {client.us_per_request:.2f} µs/req, bare {bare.us_per_request:.2f}"
            f" µs/req: the client adds {client.us_per_request - bare.us_per_request:.2f} µs"
            f" ({client.us_per_request / bare.us_per_request - 1:+.0%})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
