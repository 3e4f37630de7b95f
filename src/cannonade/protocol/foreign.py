"""What runners written in other languages report, as cannonade's own typed events.

Every foreign dialect — loads' ``data_type`` messages, OCT turret results, go-lo's
stdout lines — is decoded (in its own module beside this one) into these few types,
so the HQ and agents record them one way, into the same metrics as a Python scenario.

Times are epoch seconds and durations seconds, whatever the dialect used. The events
are msgspec structs rather than dataclasses: the HQ builds one per ``add_hit``, and a
frozen struct costs a tenth of a frozen dataclass to make (0.2 µs against 2.4 µs here).
"""

from __future__ import annotations

import enum

import msgspec


class Origin(msgspec.Struct, frozen=True, gc=False):
    """Who reported an event: the runner's agent id (loads ``agent_id``, an OCT turret's
    name) and the run it says it belongs to (empty when it does not say)."""

    agent: str = ""
    run_id: str = ""


class Hit(msgspec.Struct, frozen=True, gc=False):
    """One request a foreign runner made (loads ``add_hit``, a go-lo line)."""

    origin: Origin
    url: str
    method: str
    status: int  # 0: no response (the request failed before a status line)
    started: float | None  # epoch seconds, when the runner said
    elapsed: float  # seconds
    size: int = 0  # response bytes, when the runner said
    error: str = ""  # why it failed, when it did


class TestOutcome(enum.StrEnum):
    START_RUN = "startTestRun"
    STOP_RUN = "stopTestRun"
    START = "startTest"
    STOP = "stopTest"
    SUCCESS = "addSuccess"
    FAILURE = "addFailure"
    ERROR = "addError"


class ExcInfo(msgspec.Struct, frozen=True, gc=False):
    """A failure's exception: loads sends three strings, in either of two orders."""

    type: str
    message: str
    traceback: str = ""


class TestEvent(msgspec.Struct, frozen=True, gc=False):
    origin: Origin
    outcome: TestOutcome
    test: str = ""
    exc: ExcInfo | None = None


class SocketAction(enum.StrEnum):
    OPEN = "socket_open"
    CLOSE = "socket_close"
    MESSAGE = "socket_message"


class SocketEvent(msgspec.Struct, frozen=True, gc=False):
    origin: Origin
    action: SocketAction
    size: int = 0  # bytes, for a message


class CounterEvent(msgspec.Struct, frozen=True, gc=False):
    """A custom counter (loads: a message whose ``data_type`` is the counter's name)."""

    origin: Origin
    name: str
    value: float = 1.0


class Transaction(msgspec.Struct, frozen=True, gc=False):
    """One OCT transaction result: a script run and its custom timers."""

    origin: Origin
    epoch: float  # when it ended, epoch seconds (OCT sends whole seconds)
    duration: float  # ``scriptrun_time``, seconds
    elapsed: float  # seconds since the turret started
    error: str = ""  # "" when it succeeded
    timers: dict[str, float] = {}


class Progress(msgspec.Struct, frozen=True, gc=False):
    """loads' ``loads_status``: [hits or cycles, users, current hit or cycle, current user]."""

    origin: Origin
    total: int
    users: int
    current: int
    user: int


ForeignEvent = Hit | TestEvent | SocketEvent | CounterEvent | Transaction | Progress
