"""The hot-path side of measurement: cheap appends now, binning once a second.

A cannon owns one :class:`Recorder`. Request code holds on to a :class:`RequestSlot`
(found once per request name) and appends floats to its lists; nothing per request
builds a dict, formats a string or touches numpy. :meth:`Recorder.flush` swaps the
lists out and turns them into an :class:`IntervalDelta` of histograms and counts.

Callers must keep the slot, never one of its lists: flush replaces the lists.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from cannonade.model.histogram import Histogram
from cannonade.model.metrics import (
    BUILTIN_KINDS,
    DATA_RECEIVED,
    DATA_SENT,
    HTTP_ERRORS,
    HTTP_REQ_CONNECTING,
    HTTP_REQ_DURATION,
    HTTP_REQ_DURATION_UNCORRECTED,
    HTTP_REQ_FAILED,
    HTTP_REQ_RECEIVING,
    HTTP_REQ_TLS,
    HTTP_REQ_WAITING,
    HTTP_REQS,
    HTTP_STATUS,
    ErrorGroup,
    IntervalDelta,
    Key,
    Kind,
    SourceId,
    TrendDelta,
)

TRUE = "true"
FALSE = "false"


class RequestSlot:
    """Per (request name, method) buffers for one interval.

    ``status`` is 0 for a transport error, whose kind is counted in ``errors``.
    ``uncorrected`` is filled only under an open (arrival-rate) model, where
    ``duration`` is measured from the intended start.
    """

    __slots__ = (
        "connecting",
        "duration",
        "errors",
        "failed_asserts",
        "method",
        "name",
        "received",
        "receiving",
        "sent",
        "status",
        "tls",
        "uncorrected",
        "waiting",
    )

    def __init__(self, name: str, method: str) -> None:
        self.name = name
        self.method = method
        self._reset()

    def _reset(self) -> None:
        self.duration: list[float] = []
        self.uncorrected: list[float] = []
        self.waiting: list[float] = []
        self.receiving: list[float] = []
        self.connecting: list[float] = []
        self.tls: list[float] = []
        self.status: list[int] = []
        self.sent = 0
        self.received = 0
        self.errors: dict[str, int] = {}
        # Answered with a good status but failed a plan's `assert`: counted as failed.
        self.failed_asserts = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class Samples:
    """A buffer of one trend's samples, in seconds (every trend is a duration)."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: list[float] = []


def trend_delta(values: list[float]) -> TrendDelta:
    h = Histogram()
    h.record_many(values)
    return TrendDelta(h.count, h.sum, h.min, h.max, h.sparse())


class Recorder:
    """Collects one cannon's measurements between flushes. Not thread-safe: one loop."""

    def __init__(self, source: SourceId | None = None) -> None:
        self.source = source or SourceId()
        self._seq = 0
        self._requests: dict[tuple[str, str], RequestSlot] = {}
        self._samples: dict[Key, Samples] = {}
        self._counters: dict[Key, float] = {}
        self._gauges: dict[Key, float] = {}
        self._errors: dict[tuple[str, str], ErrorGroup] = {}
        self._custom: dict[str, Kind] = {}

    # -- handles for the hot path ----------------------------------------------------
    def request_slot(self, name: str, method: str) -> RequestSlot:
        slot = self._requests.get((name, method))
        if slot is None:
            slot = self._requests[(name, method)] = RequestSlot(name, method)
        return slot

    def samples(self, key: Key) -> Samples:
        s = self._samples.get(key)
        if s is None:
            s = self._samples[key] = Samples()
        return s

    # -- less frequent events --------------------------------------------------------
    def add(self, key: Key, n: float = 1.0) -> None:
        self._counters[key] = self._counters.get(key, 0.0) + n

    def rate(self, metric: str, name: str, value: bool) -> None:
        self.add(Key(metric, name, "", TRUE if value else FALSE))

    def gauge(self, key: Key, value: float) -> None:
        self._gauges[key] = value

    def error(self, kind: str, message: str, sample: str = "") -> None:
        g = self._errors.get((kind, message))
        if g is None:
            self._errors[(kind, message)] = ErrorGroup(kind, message, 1, sample)
        else:
            g.count += 1

    def define(self, metric: str, kind: Kind) -> None:
        """Declare a custom metric; its name must not clash with a built-in one."""
        if metric in BUILTIN_KINDS:
            raise ValueError(f"metric name {metric!r} is a built-in metric")
        known = self._custom.get(metric)
        if known is not None and known is not kind:
            raise ValueError(f"metric {metric!r} is a {known.value}, not a {kind.value}")
        self._custom[metric] = kind

    # -- the interval flush ------------------------------------------------------------
    def flush(self, second: int, final: bool = False) -> IntervalDelta:
        delta = IntervalDelta(
            self.source, self._seq, second, custom_kinds=dict(self._custom), final=final
        )
        self._seq += 1
        trends = delta.trends
        counters = delta.counters
        for slot in self._requests.values():
            if not (slot.status or slot.errors or slot.connecting):
                continue
            name, method = slot.name, slot.method
            statuses = slot.status
            for metric, values in (
                (HTTP_REQ_DURATION, slot.duration),
                (HTTP_REQ_DURATION_UNCORRECTED, slot.uncorrected),
                (HTTP_REQ_WAITING, slot.waiting),
                (HTTP_REQ_RECEIVING, slot.receiving),
                (HTTP_REQ_CONNECTING, slot.connecting),
                (HTTP_REQ_TLS, slot.tls),
            ):
                if values:
                    trends[Key(metric, name, method)] = trend_delta(values)
            arr = np.asarray(statuses, dtype=np.int64)
            failed = int(np.count_nonzero((arr >= 400) | (arr == 0)))
            failed = min(arr.size, failed + slot.failed_asserts)
            counters[Key(HTTP_REQS, name, method)] = float(arr.size)
            if failed:
                counters[Key(HTTP_REQ_FAILED, name, method, TRUE)] = float(failed)
            if arr.size - failed:
                counters[Key(HTTP_REQ_FAILED, name, method, FALSE)] = float(arr.size - failed)
            for code, n in Counter(statuses).items():
                counters[Key(HTTP_STATUS, name, method, str(code))] = float(n)
            for kind, n in slot.errors.items():
                counters[Key(HTTP_ERRORS, name, method, kind)] = float(n)
            if slot.sent:
                counters[Key(DATA_SENT, name, method)] = float(slot.sent)
            if slot.received:
                counters[Key(DATA_RECEIVED, name, method)] = float(slot.received)
            slot._reset()
        for key, samples in self._samples.items():
            if samples.values:
                values, samples.values = samples.values, []
                trends[key] = trend_delta(values)
        for key, amount in self._counters.items():
            if amount:
                counters[key] = counters.get(key, 0.0) + amount
        self._counters = {}
        delta.gauges = dict(self._gauges)
        delta.errors = list(self._errors.values())
        self._errors = {}
        return delta
