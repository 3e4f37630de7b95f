"""The virtual user a scenario function receives."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import TYPE_CHECKING, Any

from cannonade.model.metrics import CHECKS, Key, Kind
from cannonade.model.recorder import FALSE, TRUE, Recorder, Samples
from cannonade.protocol.foreign import ForeignEvent
from cannonade.runners.record import ForeignRecorder

if TYPE_CHECKING:
    from cannonade.engine.http import HttpClient
    from cannonade.engine.ws import WsClient


class RetireVU(Exception):
    """Raised by an iteration to retire its VU (a plan's data source ran out with
    ``on_eof: stop``): the iteration is not counted as an error, and the VU runs no more."""


class Timer:
    """``with vu.timer("login"):`` records the block's wall time as a custom trend (OCT)."""

    __slots__ = ("_samples", "_t0")

    def __init__(self, samples: Samples) -> None:
        self._samples = samples
        self._t0 = 0.0

    def __enter__(self) -> Timer:
        self._t0 = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._samples.values.append(time.perf_counter() - self._t0)

    async def __aenter__(self) -> Timer:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class CounterHandle:
    """``vu.counter("name").add(n)``: a custom counter (loads' custom counters)."""

    __slots__ = ("_key", "_recorder")

    def __init__(self, recorder: Recorder, key: Key) -> None:
        self._recorder = recorder
        self._key = key

    def add(self, n: float = 1.0) -> None:
        self._recorder.add(self._key, n)


def _text_name(name: object, what: str, usage: str = "") -> None:
    """A metric name that is not text would make every interval of the cannon that
    recorded it unencodable (and so lost): refused where it is first used, as an error
    of that iteration, checked once per name (the handles are cached after)."""
    if not isinstance(name, str):
        hint = f": {usage}" if usage else ""
        raise TypeError(f"a {what}'s name is text, got {name!r}{hint}")


class Metrics:
    """Per-cannon cache of custom metric handles, so a VU does not build keys per call."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._foreign: ForeignRecorder | None = None
        self._timers: dict[str, Samples] = {}
        self._counters: dict[str, CounterHandle] = {}
        self._checks: dict[str, tuple[Key, Key]] = {}

    def timer_samples(self, name: str) -> Samples:
        s = self._timers.get(name)
        if s is None:
            _text_name(name, "timer")
            self._recorder.define(name, Kind.TREND)
            s = self._timers[name] = self._recorder.samples(Key(name))
        return s

    def counter(self, name: str) -> CounterHandle:
        c = self._counters.get(name)
        if c is None:
            _text_name(name, "counter")
            self._recorder.define(name, Kind.COUNTER)
            c = self._counters[name] = CounterHandle(self._recorder, Key(name))
        return c

    def foreign(self) -> ForeignRecorder:
        if self._foreign is None:
            self._foreign = ForeignRecorder(self._recorder)
        return self._foreign

    def check(self, name: str, ok: bool) -> None:
        keys = self._checks.get(name)
        if keys is None:
            # vu.check(name, condition) swapped is the usual way to get here.
            _text_name(name, "check", "vu.check(condition, name)")
            keys = self._checks[name] = (Key(CHECKS, name, "", TRUE), Key(CHECKS, name, "", FALSE))
        self._recorder.add(keys[0] if ok else keys[1])


class VU:
    """One virtual user: its HTTP client (keep-alive, cookies), state and helpers.

    ``id`` is global across every cannon and agent of the run; ``iteration`` counts this
    VU's iterations from 0. ``state`` is free for the scenario's own per-VU data.
    """

    __slots__ = (
        "_metrics",
        "_ws",
        "cycle_users",
        "http",
        "id",
        "iteration",
        "retired",
        "setup_data",
        "state",
    )

    def __init__(
        self,
        vu_id: int,
        http: HttpClient,
        metrics: Metrics,
        setup_data: Any = None,
    ) -> None:
        self.id = vu_id
        self.iteration = 0
        self.http = http
        self._ws: WsClient | None = None
        self.state: dict[str, Any] = {}
        self.setup_data = setup_data
        self.cycle_users = 0  # users of the current cycle step (loads runners are told)
        self.retired = False  # set by RetireVU: this VU runs no more iterations
        self._metrics = metrics

    @property
    def ws(self) -> WsClient:
        """WebSocket client, made on first use (most scenarios never open one)."""
        if self._ws is None:
            from cannonade.engine.ws import WsClient

            self._ws = WsClient(self.http.shared, cookies=self.http.cookies)
        return self._ws

    def check(self, condition: object, name: str) -> bool:
        """Count a named check as passed or failed; returns the condition's truth."""
        ok = bool(condition)
        self._metrics.check(name, ok)
        return ok

    def timer(self, name: str) -> Timer:
        return Timer(self._metrics.timer_samples(name))

    def counter(self, name: str) -> CounterHandle:
        return self._metrics.counter(name)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def record_foreign(self, events: list[ForeignEvent]) -> None:
        """Measurements a program reported (``--exec``): hits, tests, counters, timers."""
        self._metrics.foreign().record_all(events)

    def record_unparsable(self, line: bytes) -> None:
        """A line of a program's output that is no result: counted, the first kept."""
        self._metrics.foreign().recorder.error(
            "unparsable output",
            "a line that is not a go-lo or cannonade result",
            line[:500].decode("utf-8", "replace"),
        )

    def __repr__(self) -> str:
        return f"<VU {self.id} iteration={self.iteration}>"
