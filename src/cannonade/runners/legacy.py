"""loads-style test classes: ``cannonade run pkg.module.Class.test_x -u 10:20 --hits 5``.

A test class is a ``unittest.TestCase`` whose tests use ``self.session`` (a small
requests-like synchronous client; every call is a hit) and ``self.incr_counter(name)``.
loads' own base class is ``loads.case.TestCase``: when no ``loads`` package is
installed, the loader provides one under that name, so such modules import unchanged.

Each iteration of a VU runs the test once, in a worker thread (the code is
synchronous and must not stall the cannon's event loop), and then records what it did:
the test's start, its outcome (an assertion is a failure, any other exception an
error, both with their traceback), its hits and counters.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import http.client
import importlib.util
import json
import sys
import time
import types
import unittest
import urllib.parse
from pathlib import Path
from typing import Any

from cannonade.errors import ScenarioError
from cannonade.protocol.foreign import (
    CounterEvent,
    ExcInfo,
    ForeignEvent,
    Hit,
    Origin,
    TestEvent,
    TestOutcome,
)
from cannonade.scenarios.loader import LoadedScenario, ScenarioFn

ORIGIN = Origin()
MAX_THREADS = 2000  # concurrent synchronous tests in one cannon


class Response:
    """What ``self.session.get(...)`` returns: the parts of requests' that tests use."""

    def __init__(self, url: str, status: int, headers: dict[str, str], content: bytes) -> None:
        self.url = url
        self.status_code = status
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def ok(self) -> bool:
        return self.status_code < 400


class Session:
    """A synchronous HTTP/1.1 client with keep-alive per host, recording every call."""

    def __init__(self, events: list[ForeignEvent], timeout: float = 60.0) -> None:
        self._events = events
        self._timeout = timeout
        self._conns: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def request(
        self,
        method: str,
        url: str,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        parts = urllib.parse.urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        body = data.encode() if isinstance(data, str) else data
        started = time.time()
        t0 = time.perf_counter()
        try:
            conn = self._conn(parts.scheme, parts.netloc)
            conn.request(method.upper(), path, body=body, headers=headers or {})
            resp = conn.getresponse()
            content = resp.read()
        except (OSError, http.client.HTTPException) as e:
            self._conns.pop((parts.scheme, parts.netloc), None)
            elapsed = time.perf_counter() - t0
            self._events.append(
                Hit(ORIGIN, url, method, 0, started, elapsed, error=type(e).__name__)
            )
            raise
        elapsed = time.perf_counter() - t0
        self._events.append(Hit(ORIGIN, url, method, resp.status, started, elapsed, len(content)))
        return Response(url, resp.status, dict(resp.getheaders()), content)

    def _conn(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        conn = self._conns.get((scheme, netloc))
        if conn is None:
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            conn = self._conns[(scheme, netloc)] = cls(netloc, timeout=self._timeout)
        return conn

    def get(self, url: str, **kw: Any) -> Response:
        return self.request("GET", url, **kw)

    def post(self, url: str, data: bytes | str | None = None, **kw: Any) -> Response:
        return self.request("POST", url, data=data, **kw)

    def put(self, url: str, data: bytes | str | None = None, **kw: Any) -> Response:
        return self.request("PUT", url, data=data, **kw)

    def delete(self, url: str, **kw: Any) -> Response:
        return self.request("DELETE", url, **kw)

    def head(self, url: str, **kw: Any) -> Response:
        return self.request("HEAD", url, **kw)

    def close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


class TestCase(unittest.TestCase):
    """loads' ``TestCase``: ``self.session`` and ``self.incr_counter``."""

    session: Session
    _events: list[ForeignEvent]

    def incr_counter(self, name: str, value: float = 1.0) -> None:
        self._events.append(CounterEvent(ORIGIN, name, value))


def install_loads_shim() -> None:
    """Let ``from loads.case import TestCase`` work where loads is not installed."""
    if importlib.util.find_spec("loads") is not None:
        return
    loads = types.ModuleType("loads")
    case = types.ModuleType("loads.case")
    case.TestCase = TestCase  # type: ignore[attr-defined]
    loads.case = case  # type: ignore[attr-defined]
    sys.modules.setdefault("loads", loads)
    sys.modules.setdefault("loads.case", case)


def split_target(target: str) -> tuple[str, str, str]:
    """``pkg.module.Class.test_x`` -> (module, class, method)."""
    parts = target.split(".")
    if len(parts) < 3 or not all(p.isidentifier() for p in parts):
        raise ScenarioError(f"{target!r} is not MODULE.Class.test_method")
    return ".".join(parts[:-2]), parts[-2], parts[-1]


def find_module_file(module: str, base: Path) -> Path:
    path = base.joinpath(*module.split(".")).with_suffix(".py")
    if not path.is_file():
        raise ScenarioError(f"no module {module!r} at {path}")
    return path


def load_test(path: Path, cls_name: str, method: str) -> type[unittest.TestCase]:
    install_loads_shim()
    name = f"cannonade_legacy_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ScenarioError("cannot be imported", str(path))
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise ScenarioError(f"{type(e).__name__} while importing: {e}", str(path)) from None
    cls = getattr(module, cls_name, None)
    if not isinstance(cls, type) or not issubclass(cls, unittest.TestCase):
        raise ScenarioError(f"{cls_name} is not a TestCase class", str(path))
    if not callable(getattr(cls, method, None)):
        raise ScenarioError(f"{cls_name} has no method {method}", str(path))
    return cls


def run_once(cls: type[unittest.TestCase], method: str, name: str) -> list[ForeignEvent]:
    """Run the test once (in a worker thread) and say what happened."""
    events: list[ForeignEvent] = [TestEvent(ORIGIN, TestOutcome.START, name)]
    case = cls(method)
    session = Session(events)
    case.session = session  # type: ignore[attr-defined]
    case._events = events  # type: ignore[attr-defined]
    result = unittest.TestResult()
    try:
        case.run(result)
    finally:
        session.close()
    if result.failures:
        events.append(TestEvent(ORIGIN, TestOutcome.FAILURE, name, _exc(result.failures[0][1])))
    elif result.errors:
        events.append(TestEvent(ORIGIN, TestOutcome.ERROR, name, _exc(result.errors[0][1])))
    else:
        events.append(TestEvent(ORIGIN, TestOutcome.SUCCESS, name))
    events.append(TestEvent(ORIGIN, TestOutcome.STOP, name))
    return events


def _exc(formatted: str) -> ExcInfo:
    last = formatted.strip().splitlines()[-1] if formatted.strip() else ""
    kind, _, message = last.partition(": ")
    return ExcInfo(kind or "Exception", message, formatted)


def legacy_scenario(path: Path, target: str) -> LoadedScenario:
    _, cls_name, method = split_target(target)
    cls = load_test(path, cls_name, method)
    name = f"{cls_name}.{method}"
    # One thread per running VU at most: asyncio's default pool (cores + 4) would cap
    # the concurrency of a 20-user cycle at six. Threads are made as VUs need them.
    pool = concurrent.futures.ThreadPoolExecutor(MAX_THREADS, thread_name_prefix="legacy")

    async def run(vu: Any) -> None:
        loop = asyncio.get_running_loop()
        events = await loop.run_in_executor(pool, run_once, cls, method, name)
        vu.record_foreign(events)

    return LoadedScenario(path=target, sha256="", scenarios=(ScenarioFn(name, run, 1.0),))
