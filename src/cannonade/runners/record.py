"""Recording foreign runners' events into a :class:`Recorder`, like any scenario's.

A hit is an HTTP request: it lands in the same ``http_*`` metrics, per URL (without
its query string, so ids in queries do not make a name per request) and method. Test
outcomes, sockets, OCT transactions and custom timers get metrics of their own (see
``docs/metrics.md``); failures and errors keep their exception as a grouped error.
"""

from __future__ import annotations

from cannonade.model.metrics import (
    SOCKET_DATA,
    SOCKET_MESSAGES,
    SOCKETS_CLOSED,
    SOCKETS_OPENED,
    TESTS_ERRORED,
    TESTS_FAILED,
    TESTS_PASSED,
    TESTS_STARTED,
    TRANSACTION_DURATION,
    TRANSACTION_ERRORS,
    TRANSACTIONS,
    Key,
    Kind,
)
from cannonade.model.recorder import Recorder
from cannonade.protocol.foreign import (
    CounterEvent,
    ForeignEvent,
    Hit,
    Progress,
    SocketAction,
    SocketEvent,
    TestEvent,
    TestOutcome,
    Transaction,
)

MAX_NAME = 200  # characters of a URL or test name kept as a metric name

_TEST_METRICS = {
    TestOutcome.START: TESTS_STARTED,
    TestOutcome.SUCCESS: TESTS_PASSED,
    TestOutcome.FAILURE: TESTS_FAILED,
    TestOutcome.ERROR: TESTS_ERRORED,
}
_SOCKET_METRICS = {
    SocketAction.OPEN: SOCKETS_OPENED,
    SocketAction.CLOSE: SOCKETS_CLOSED,
    SocketAction.MESSAGE: SOCKET_MESSAGES,
}


def request_name(url: str) -> str:
    return url.split("?", 1)[0][:MAX_NAME]


class ForeignRecorder:
    """Turns foreign events into measurements. ``rejected`` counts custom metrics whose
    names clash with a built-in or change kind (they are dropped, not fatal)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.rejected = 0

    def record(self, event: ForeignEvent) -> None:
        r = self.recorder
        if isinstance(event, Hit):
            slot = r.request_slot(request_name(event.url), event.method.upper()[:16])
            slot.duration.append(event.elapsed)
            slot.status.append(event.status)
            if event.status == 0:
                slot.error(event.error[:MAX_NAME] or "error")
            if event.size:
                slot.received += event.size
        elif isinstance(event, TestEvent):
            metric = _TEST_METRICS.get(event.outcome)
            if metric is not None:
                r.add(Key(metric, event.test[:MAX_NAME]))
            exc = event.exc
            if exc is not None and event.outcome in (TestOutcome.FAILURE, TestOutcome.ERROR):
                r.error(exc.type[:MAX_NAME], exc.message[:1000], exc.traceback)
        elif isinstance(event, SocketEvent):
            r.add(Key(_SOCKET_METRICS[event.action]))
            if event.action is SocketAction.MESSAGE and event.size:
                r.add(Key(SOCKET_DATA), float(event.size))
        elif isinstance(event, CounterEvent):
            name = event.name[:MAX_NAME]
            if self._define(name, Kind.COUNTER):
                r.add(Key(name), event.value)
        elif isinstance(event, Transaction):
            r.add(Key(TRANSACTIONS))
            r.samples(Key(TRANSACTION_DURATION)).values.append(event.duration)
            if event.error:
                r.add(Key(TRANSACTION_ERRORS))
                r.error("transaction", event.error[:1000])
            for timer, seconds in event.timers.items():
                name = timer[:MAX_NAME]
                if self._define(name, Kind.TREND):
                    r.samples(Key(name)).values.append(seconds)
        elif isinstance(event, Progress):
            pass  # where a runner is in its cycle: the agent knows that better itself

    def _define(self, metric: str, kind: Kind) -> bool:
        try:
            self.recorder.define(metric, kind)
        except ValueError:
            self.rejected += 1
            return False
        return True

    def record_all(self, events: list[ForeignEvent]) -> None:
        for e in events:
            self.record(e)
