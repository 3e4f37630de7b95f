"""Metric names, keys and the interval delta that cannons ship.

Names follow k6 where k6 has one. A measurement is addressed by a :class:`Key`:
the metric, the request/scenario/check name it belongs to, the HTTP method, and one
free tag (a status code, an error kind, ``true``/``false`` for rate metrics).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import NamedTuple

from cannonade.model.histogram import SparseBins


class Kind(enum.Enum):
    COUNTER = "counter"
    GAUGE = "gauge"
    RATE = "rate"
    TREND = "trend"


class Key(NamedTuple):
    metric: str
    name: str = ""
    method: str = ""
    tag: str = ""


# Built-in metrics and their kinds. A RATE is stored as two counters (the metric with
# tag "true" and with tag "false") so that merging stays a plain sum.
HTTP_REQS = "http_reqs"
HTTP_REQ_FAILED = "http_req_failed"
HTTP_REQ_DURATION = "http_req_duration"
HTTP_REQ_DURATION_UNCORRECTED = "http_req_duration_uncorrected"
HTTP_REQ_WAITING = "http_req_waiting"
HTTP_REQ_RECEIVING = "http_req_receiving"
HTTP_REQ_CONNECTING = "http_req_connecting"
HTTP_REQ_TLS = "http_req_tls_handshaking"
HTTP_STATUS = "http_status"  # counter, tag = status code ("0" for transport errors)
HTTP_ERRORS = "http_errors"  # counter, tag = transport error kind
DATA_SENT = "data_sent"
DATA_RECEIVED = "data_received"
ITERATIONS = "iterations"
ITERATION_DURATION = "iteration_duration"
ITERATION_ERRORS = "iteration_errors"
DROPPED_ITERATIONS = "dropped_iterations"
INTERRUPTED_ITERATIONS = "interrupted_iterations"
CHECKS = "checks"
VUS = "vus"
VUS_MAX = "vus_max"
WS_SESSIONS = "ws_sessions"
WS_CONNECTING = "ws_connecting"
WS_SESSION_DURATION = "ws_session_duration"
WS_MSGS_SENT = "ws_msgs_sent"
WS_MSGS_RECEIVED = "ws_msgs_received"
WS_DATA_SENT = "ws_data_sent"
WS_DATA_RECEIVED = "ws_data_received"

# Reported by runners in other languages (loads tests, sockets; OCT transactions).
TESTS_STARTED = "tests_started"
TESTS_PASSED = "tests_passed"
TESTS_FAILED = "tests_failed"
TESTS_ERRORED = "tests_errored"
SOCKETS_OPENED = "sockets_opened"
SOCKETS_CLOSED = "sockets_closed"
SOCKET_MESSAGES = "socket_messages"
SOCKET_DATA = "socket_data"
TRANSACTIONS = "transactions"
TRANSACTION_DURATION = "transaction_duration"
TRANSACTION_ERRORS = "transaction_errors"

BUILTIN_KINDS: dict[str, Kind] = {
    HTTP_REQS: Kind.COUNTER,
    HTTP_REQ_FAILED: Kind.RATE,
    HTTP_REQ_DURATION: Kind.TREND,
    HTTP_REQ_DURATION_UNCORRECTED: Kind.TREND,
    HTTP_REQ_WAITING: Kind.TREND,
    HTTP_REQ_RECEIVING: Kind.TREND,
    HTTP_REQ_CONNECTING: Kind.TREND,
    HTTP_REQ_TLS: Kind.TREND,
    HTTP_STATUS: Kind.COUNTER,
    HTTP_ERRORS: Kind.COUNTER,
    DATA_SENT: Kind.COUNTER,
    DATA_RECEIVED: Kind.COUNTER,
    ITERATIONS: Kind.COUNTER,
    ITERATION_DURATION: Kind.TREND,
    ITERATION_ERRORS: Kind.COUNTER,
    DROPPED_ITERATIONS: Kind.COUNTER,
    INTERRUPTED_ITERATIONS: Kind.COUNTER,
    CHECKS: Kind.RATE,
    VUS: Kind.GAUGE,
    VUS_MAX: Kind.GAUGE,
    WS_SESSIONS: Kind.COUNTER,
    WS_CONNECTING: Kind.TREND,
    WS_SESSION_DURATION: Kind.TREND,
    WS_MSGS_SENT: Kind.COUNTER,
    WS_MSGS_RECEIVED: Kind.COUNTER,
    WS_DATA_SENT: Kind.COUNTER,
    WS_DATA_RECEIVED: Kind.COUNTER,
    TESTS_STARTED: Kind.COUNTER,
    TESTS_PASSED: Kind.COUNTER,
    TESTS_FAILED: Kind.COUNTER,
    TESTS_ERRORED: Kind.COUNTER,
    SOCKETS_OPENED: Kind.COUNTER,
    SOCKETS_CLOSED: Kind.COUNTER,
    SOCKET_MESSAGES: Kind.COUNTER,
    SOCKET_DATA: Kind.COUNTER,
    TRANSACTIONS: Kind.COUNTER,
    TRANSACTION_DURATION: Kind.TREND,
    TRANSACTION_ERRORS: Kind.COUNTER,
}

# Metrics whose values are durations (seconds internally, milliseconds when shown).
TIME_METRICS = frozenset(m for m, k in BUILTIN_KINDS.items() if k is Kind.TREND)


@dataclass(slots=True)
class TrendDelta:
    """One interval of one trend: exact count/sum/min/max and the non-empty buckets."""

    count: int
    sum: float
    min: float
    max: float
    bins: SparseBins


@dataclass(slots=True)
class ErrorGroup:
    """Errors of one kind and message, with one sample traceback."""

    kind: str
    message: str
    count: int
    sample: str = ""


def merge_errors(into: dict[tuple[str, str], ErrorGroup], errors: list[ErrorGroup]) -> None:
    """Add error groups by (kind, message), keeping the first sample of each."""
    for e in errors:
        g = into.get((e.kind, e.message))
        if g is None:
            into[(e.kind, e.message)] = ErrorGroup(e.kind, e.message, e.count, e.sample)
        else:
            g.count += e.count


@dataclass(slots=True)
class SourceId:
    """Who produced a delta: ``agent`` is a stable id, ``cannon`` the process index."""

    agent: str = "local"
    cannon: int = 0


@dataclass(slots=True)
class IntervalDelta:
    """What one cannon measured during one wall-clock second.

    ``seq`` increases by one per delta from the same source, so a receiver detects
    gaps and duplicates. ``second`` is the epoch second the samples completed in;
    deltas of different cannons for the same second merge into one point.
    """

    source: SourceId
    seq: int
    second: int
    trends: dict[Key, TrendDelta] = field(default_factory=dict)
    counters: dict[Key, float] = field(default_factory=dict)
    gauges: dict[Key, float] = field(default_factory=dict)
    errors: list[ErrorGroup] = field(default_factory=list)
    custom_kinds: dict[str, Kind] = field(default_factory=dict)
    final: bool = False
    run_id: str = ""  # the run it belongs to; a receiver drops deltas of other runs

    def is_empty(self) -> bool:
        return not (self.trends or self.counters or self.gauges or self.errors)
