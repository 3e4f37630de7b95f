"""OCT turret results: one JSON object per transaction, as a :class:`Transaction`.

::

    {"turret_name": "navigation", "elapsed": 12.48, "epoch": 1453731738,
     "scriptrun_time": 1.2, "error": "", "custom_timers": {"Example_timer": 0.6}}

``elapsed`` (seconds since the turret started), ``epoch`` (epoch seconds: OCT 0.2.8
sends whole seconds as a float, the document an int) and ``scriptrun_time`` (the
transaction's duration) are required numbers: finite, >= 0, durations at most
:data:`~cannonade.protocol.loads.MAX_SECONDS`, an epoch before the year 5138 (a larger
one is milliseconds, not seconds). ``turret_name`` is optional (OCT 0.2.8's cannons push
results themselves, without it); ``error`` is ``""`` on success, ``null`` is accepted
too; ``custom_timers`` maps a timer's name to seconds (same bounds, at most
:data:`MAX_TIMERS` of them, names cut to :data:`~cannonade.protocol.loads.MAX_NAME`).
An error message is cut to :data:`~cannonade.protocol.loads.MAX_TEXT`; a turret name
longer than :data:`~cannonade.protocol.loads.MAX_ID` is refused. Other fields are
ignored. Anything else raises :class:`ProtocolError`, naming the field.
"""

from __future__ import annotations

import msgspec

from cannonade.errors import ProtocolError
from cannonade.protocol.deltas import MAX_FRAME
from cannonade.protocol.foreign import Origin, Transaction
from cannonade.protocol.loads import (
    DECODE_ERRORS,
    MAX_ID,
    MAX_NAME,
    MAX_TEXT,
    check_seconds,
)

MAX_TIMERS = 1000  # custom timers in one result: each is a metric of the run
MAX_EPOCH = 1e11  # epoch seconds in the year 5138; 1.7e12 is an epoch in milliseconds


class _Result(msgspec.Struct, gc=False):
    elapsed: float | None = None
    epoch: float | None = None
    scriptrun_time: float | None = None
    turret_name: str | None = None
    error: str | None = None
    custom_timers: dict[str, float] | None = None


_decoder = msgspec.json.Decoder(_Result)


def decode_oct_result(frame: bytes) -> Transaction:
    """One OCT result message -> its :class:`Transaction`."""
    if len(frame) > MAX_FRAME:
        raise ProtocolError(f"OCT result of {len(frame)} bytes exceeds {MAX_FRAME}")
    try:
        msg = _decoder.decode(frame)
    except DECODE_ERRORS as e:
        raise ProtocolError(f"malformed OCT result: {str(e)[:200]}") from None
    elapsed = _seconds(msg.elapsed, "elapsed")
    duration = _seconds(msg.scriptrun_time, "scriptrun_time")
    epoch = msg.epoch
    if epoch is None:
        raise _bad("epoch", "is missing")
    if not 0.0 <= epoch <= MAX_EPOCH:
        raise _bad("epoch", f"is {epoch!r}: not epoch seconds")
    name = msg.turret_name or ""
    if len(name) > MAX_ID:
        raise _bad("turret_name", f"is longer than {MAX_ID} characters")
    error = msg.error or ""
    if len(error) > MAX_TEXT:
        error = error[:MAX_TEXT]
    timers: dict[str, float] = {}
    if msg.custom_timers:
        if len(msg.custom_timers) > MAX_TIMERS:
            raise _bad("custom_timers", f"has more than {MAX_TIMERS} timers")
        for timer, value in msg.custom_timers.items():
            if not timer:
                raise _bad("custom_timers", "has a timer without a name")
            timers[timer[:MAX_NAME]] = _seconds(value, f"custom_timers[{timer[:80]!r}]")
    return Transaction(Origin(name, ""), float(epoch), duration, elapsed, error, timers)


def _seconds(value: float | None, field: str) -> float:
    try:
        return check_seconds(value)
    except ValueError as e:
        raise _bad(field, str(e)) from None


def _bad(field: str, problem: str) -> ProtocolError:
    return ProtocolError(f"OCT result: '{field}' {problem}")
