"""Foreign runners' events become the same measurements as a Python scenario's."""

import math

from cannonade.model.aggregate import Aggregator
from cannonade.model.metrics import Key, Kind
from cannonade.model.recorder import FALSE, TRUE, Recorder
from cannonade.protocol import foreign
from cannonade.protocol.foreign import (
    CounterEvent,
    ExcInfo,
    Hit,
    Origin,
    Progress,
    SocketAction,
    SocketEvent,
    Transaction,
)
from cannonade.runners.record import ForeignRecorder

ORIGIN = Origin("vm-1", "r1")


def record(*events):
    fr = ForeignRecorder(Recorder())
    fr.record_all(list(events))
    agg = Aggregator()
    agg.add(fr.recorder.flush(1_700_000_000))
    return fr, agg


def test_hits_land_in_the_http_metrics_per_url_without_query():
    _, agg = record(
        Hit(ORIGIN, "http://t/a?id=1", "get", 200, None, 0.010, size=100),
        Hit(ORIGIN, "http://t/a?id=2", "GET", 404, None, 0.030),
        Hit(ORIGIN, "http://t/b", "POST", 0, None, 1.5, error="timeout"),
    )
    assert agg.count("http_reqs", "http://t/a") == 2
    assert agg.count("http_reqs", "http://t/b") == 1
    assert agg.count("http_req_failed", tag=TRUE) == 2
    assert agg.count("http_req_failed", tag=FALSE) == 1
    assert agg.count("http_status", tag="404") == 1
    assert agg.count("http_errors", "http://t/b", tag="timeout") == 1
    assert agg.count("data_received") == 100
    h = agg.trend("http_req_duration", "http://t/a")
    assert h.count == 2
    assert math.isclose(h.sum, 0.040)


def test_test_outcomes_and_their_exceptions():
    exc = ExcInfo("AssertionError", "404 != 200", "  File x, line 9")
    _, agg = record(
        foreign.TestEvent(ORIGIN, foreign.TestOutcome.START_RUN),
        foreign.TestEvent(ORIGIN, foreign.TestOutcome.START, "test_a"),
        foreign.TestEvent(ORIGIN, foreign.TestOutcome.SUCCESS, "test_a"),
        foreign.TestEvent(ORIGIN, foreign.TestOutcome.START, "test_b"),
        foreign.TestEvent(ORIGIN, foreign.TestOutcome.FAILURE, "test_b", exc),
        foreign.TestEvent(ORIGIN, foreign.TestOutcome.START, "test_c"),
        foreign.TestEvent(ORIGIN, foreign.TestOutcome.ERROR, "test_c", ExcInfo("KeyError", "'x'")),
        foreign.TestEvent(ORIGIN, foreign.TestOutcome.STOP, "test_c"),
    )
    assert agg.count("tests_started") == 3
    assert agg.count("tests_passed", "test_a") == 1
    assert agg.count("tests_failed", "test_b") == 1
    assert agg.count("tests_errored", "test_c") == 1
    groups = {(g.kind, g.message): g for g in agg.errors.values()}
    assert groups[("AssertionError", "404 != 200")].sample == "  File x, line 9"
    assert groups[("KeyError", "'x'")].count == 1


def test_sockets_counters_transactions_and_custom_timers():
    fr, agg = record(
        SocketEvent(ORIGIN, SocketAction.OPEN),
        SocketEvent(ORIGIN, SocketAction.MESSAGE, 12),
        SocketEvent(ORIGIN, SocketAction.MESSAGE, 30),
        SocketEvent(ORIGIN, SocketAction.CLOSE),
        CounterEvent(ORIGIN, "logins"),
        CounterEvent(ORIGIN, "logins", 2.0),
        CounterEvent(ORIGIN, "http_reqs"),  # a built-in name: refused, counted, not fatal
        Transaction(ORIGIN, 1.0, 0.25, 3.0, "", {"a timer": 0.05}),
        Transaction(ORIGIN, 2.0, 0.5, 4.0, "boom 3", {"a timer": 0.07}),
        Progress(ORIGIN, 2, 2, 1, 1),
    )
    assert agg.count("sockets_opened") == 1
    assert agg.count("sockets_closed") == 1
    assert agg.count("socket_messages") == 2
    assert agg.count("socket_data") == 42
    assert agg.count("logins") == 3
    assert agg.kinds["logins"] is Kind.COUNTER
    assert fr.rejected == 1
    assert agg.count("http_reqs") == 0
    assert agg.count("transactions") == 2
    assert agg.count("transaction_errors") == 1
    assert agg.trend("transaction_duration").count == 2
    assert agg.kinds["a timer"] is Kind.TREND
    assert agg.trend("a timer").count == 2
    assert agg.errors[("transaction", "boom 3")].count == 1
    assert Key("a timer") in agg.trends
