"""Mozilla loads' runner protocol: JSON messages with a ``data_type``, as typed events.

One JSON object per frame (``{"data_type": ..., "agent_id": ..., "run_id": ..., ...}``),
or one per stdout line of an exec runner (:mod:`cannonade.protocol.golo`). Each message
becomes one event of :mod:`cannonade.protocol.foreign`, followed by a :class:`Progress`
when it carries ``loads_status``:

=================================================  =========================================
``data_type``                                      event
=================================================  =========================================
``startTestRun`` ``stopTestRun``                   ``TestEvent`` (no test name)
``startTest`` ``stopTest`` ``addSuccess``          ``TestEvent`` (``test`` required)
``addFailure`` ``addError``                        ``TestEvent`` with ``exc`` from ``exc_info``
``add_hit``                                        ``Hit`` (``url`` ``method`` ``status``
                                                   ``elapsed`` required, ``started`` optional)
``socket_open`` ``socket_close``                   ``SocketEvent``
``socket_message``                                 ``SocketEvent`` (``size`` required)
``batch``                                          the events of every message in ``counts``
anything else                                      ``CounterEvent(name=data_type)``
=================================================  =========================================

What the original systems really send, beyond their documents:

* ``exc_info`` is three strings, ``[message, class, traceback]`` in the documents but
  ``[class, message, traceback]`` from both real runners (loads 0.3 unpacks
  ``sys.exc_info()`` into the wrong names; loads.js sends ``["JSError", "{}", ""]``). The
  class is recognised by its shape (:func:`exc_info`); a ``null`` item is ``""``; two
  items (no traceback) are accepted. mocha-loads sends ``error`` (the JS error object,
  serialised) instead: its ``name``/``message`` are used.
* ``started`` is ISO 8601, from ``datetime.utcnow()`` in loads: a time without a zone is
  UTC. Fractions longer than microseconds (``.828507474``) are cut to microseconds.
* ``elapsed`` is seconds; loads' older encoder sent a ``timedelta`` as
  ``[seconds, microseconds]``, which is accepted too.
* ``loads_status`` is a list ``[hits|cycles, users, current hit|cycle, current user]``
  (loads.js joins it into the text ``"2,2,1,1"``, older loads sends three items; ``-1``
  or ``null`` is "unknown": both become ``-1``).
* ``agent_id`` is the text ``"None"`` (or ``null``) when loads runs without an agent: ``""``.
* A custom counter (loads' ``incr_counter``) carries no value: it counts 1. A numeric
  ``value`` (or else ``count``) field, if present, is the increment instead.

Validation: a field the event needs that is missing or of the wrong type, a number
out of range (a status outside 0..999; a negative duration or one longer than
:data:`MAX_SECONDS`; a negative size or increment; any amount beyond :data:`MAX_AMOUNT`)
or an unparsable time is a :class:`ProtocolError` naming the field and the
``data_type``; fields not listed above are ignored. Free text is cut to a bound
(:data:`MAX_TEXT` for exception messages and tracebacks, :data:`MAX_NAME` for URLs,
methods, test and exception-class names); identifiers that would be wrong if cut
(``agent_id``, ``run_id``, a counter's name) longer than :data:`MAX_ID` are refused. A
batch is bounded too (:data:`MAX_BATCH`), before its messages are built.

Speed matters here (issue #8: 150,000 ``add_hit`` per second on one core): a frame is
one typed msgspec decode into :class:`LoadsMessage` and a few attribute checks; origins
are cached; no regex runs and no dict is built on the way.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import cast

import msgspec

from cannonade.errors import ProtocolError
from cannonade.protocol.deltas import MAX_FRAME
from cannonade.protocol.foreign import (
    CounterEvent,
    ExcInfo,
    ForeignEvent,
    Hit,
    Origin,
    Progress,
    SocketAction,
    SocketEvent,
    TestEvent,
    TestOutcome,
)

MAX_TEXT = 64 * 1024  # characters of an exception message, traceback or error: cut
MAX_NAME = 8 * 1024  # characters of a URL, method, test, class or timer name: cut
MAX_ID = 1024  # characters of an agent id, run id, counter or turret name: refused
MAX_SECONDS = 1e7  # a duration longer than ~116 days is a unit mistake or an attack
MAX_BATCH = 200_000  # JSON objects in one batch's ``counts`` (an upper bound on messages)
MAX_STATUS_VALUE = 2**31 - 1  # an item of loads_status
MAX_AMOUNT = 2**53  # a size or a counter's increment (floats count exactly up to here)
_MAX_TIME_TEXT = 64  # an ISO 8601 time is ~32 characters


class LoadsMessage(msgspec.Struct, gc=False):
    """Every field of every loads message, all optional: one decode for all kinds.

    ``gc=False``: these never form reference cycles, and a batch makes many of them.
    ``status`` may be text so that OCT status messages (``"status": "ready"``) decode
    into a subclass of this when a decoder must tell the dialects apart; a loads hit
    requires an int. ``error`` and ``counts`` stay raw until a message needs them."""

    data_type: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    loads_status: list[int | None] | str | None = None
    test: str | None = None
    exc_info: list[str | None] | None = None
    error: msgspec.Raw = msgspec.Raw()
    url: str | None = None
    method: str | None = None
    status: int | str | None = None
    started: str | None = None
    elapsed: float | tuple[int, int] | None = None
    size: int | None = None
    value: float | None = None
    count: float | None = None
    counts: msgspec.Raw = msgspec.Raw()


class _JsError(msgspec.Struct):
    """mocha-loads' ``error``: a serialised JS error (only enumerable fields survive)."""

    name: str = ""
    message: str = ""
    stack: str = ""


class _DataTypeOnly(msgspec.Struct):
    data_type: msgspec.Raw = msgspec.Raw()


_decoder = msgspec.json.Decoder(LoadsMessage)
_counts_decoder = msgspec.json.Decoder(dict[str, list[LoadsMessage]])
_js_error_decoder = msgspec.json.Decoder(_JsError | str | None)
_data_type_decoder = msgspec.json.Decoder(_DataTypeOnly)
_fromisoformat = datetime.fromisoformat
_EPOCH = datetime(1970, 1, 1)  # naive: loads' naive times are UTC

_TESTS = {o.value: o for o in TestOutcome}
_NAMED_TESTS = frozenset(_TESTS) - {TestOutcome.START_RUN.value, TestOutcome.STOP_RUN.value}
_SOCKETS = {a.value: a for a in SocketAction}
_EXC_SUFFIXES = ("Error", "Exception", "Failure", "Fault", "Warning", "Exit", "Interrupt")

DECODE_ERRORS = (msgspec.MsgspecError, ValueError, RecursionError)
"""What msgspec raises on bad input: its own errors, ``UnicodeDecodeError`` (a
``ValueError``) for invalid UTF-8, ``RecursionError`` for nesting deeper than the
interpreter allows (even in a field that is only skipped)."""


# -- public API -------------------------------------------------------------------------


def decode_loads(frame: bytes) -> list[ForeignEvent]:
    """One JSON frame of the loads protocol -> its events (``[]`` for an empty batch)."""
    if len(frame) > MAX_FRAME:
        raise ProtocolError(f"loads message of {len(frame)} bytes exceeds {MAX_FRAME}")
    try:
        msg = _decoder.decode(frame)
    except DECODE_ERRORS as e:
        raise malformed(frame, e) from None
    if msg.data_type is None:
        raise ProtocolError("loads message without a data_type")
    try:
        return loads_events(msg)
    except ProtocolError as e:
        # Name the sender, so a broken runner can be found among many.
        if msg.agent_id and msg.agent_id != "None":
            raise ProtocolError(f"{e} (from agent_id {msg.agent_id[:64]!r})") from None
        raise


def encode_test_run(outcome: TestOutcome, agent_id: str, run_id: str) -> bytes:
    """The ``startTestRun``/``stopTestRun`` message an agent sends around its runners."""
    if outcome not in (TestOutcome.START_RUN, TestOutcome.STOP_RUN):
        raise ValueError(f"{outcome} is not a test-run message")
    return msgspec.json.encode({"data_type": outcome.value, "agent_id": agent_id, "run_id": run_id})


def loads_events(msg: LoadsMessage, inherit: Origin | None = None) -> list[ForeignEvent]:
    """The events of one decoded message. ``inherit`` is a batch's origin, for its inner
    messages: their own ``agent_id``/``run_id`` win when they say something (loads'
    ``incr_counter`` puts ``"agent_id": "None"`` into each counter: that says nothing)."""
    data_type = msg.data_type
    if data_type is None:
        raise ProtocolError("loads message without a data_type")
    if inherit is None:
        origin = _origin(msg.agent_id, msg.run_id)
    elif msg.agent_id is None and msg.run_id is None:
        origin = inherit
    else:
        agent = msg.agent_id
        if agent is None or agent == "None":
            agent = inherit.agent
        origin = _origin(agent, msg.run_id or inherit.run_id)
    event: ForeignEvent
    if data_type == "add_hit":
        event = _hit(msg, origin)
    elif data_type in _TESTS:
        event = _test(msg, origin, data_type)
    elif data_type in _SOCKETS:
        event = _socket(msg, origin, data_type)
    elif data_type == "batch":
        if inherit is not None:
            raise ProtocolError("loads batch: a batch inside a batch")
        return _batch(msg, origin)
    else:
        event = _counter(msg, origin, data_type)
    if msg.loads_status is None:
        return [event]
    return [event, _progress(msg.loads_status, origin, data_type)]


def exc_info(items: list[str | None], data_type: str = "addFailure") -> ExcInfo:
    """loads' ``exc_info``: three strings, the class first or second.

    The rule: each of the first two strings is scored by how much it looks like an
    exception class —

    3. ``<type '...'>`` or ``<class '...'>`` (Python's ``str()`` of a class);
    2. a dotted identifier whose last part is CamelCase and ends like an exception
       class: ``Error``, ``Exception``, ``Failure``, ``Fault``, ``Warning``, ``Exit``,
       ``Interrupt`` (``AssertionError``, ``JSError``, ``requests.exceptions.HTTPError``);
    1. any other dotted identifier whose last part starts with a capital (``Timeout``);
    0. anything else (``404 != 200``, ``{}``, ``""``).

    The higher score is the class, the other the message. On a tie the first is the
    class: that is what both real runners send (the document's order, message first,
    is recognised whenever the class looks more like a class than the message does).
    """
    if not 2 <= len(items) <= 3:
        raise _bad(data_type, "exc_info", f"has {len(items)} items (expected 3)")
    first = items[0] or ""
    second = items[1] or ""
    traceback = (items[2] or "") if len(items) == 3 else ""
    if _class_score(second) > _class_score(first):
        first, second = second, first
    return ExcInfo(first[:MAX_NAME], second[:MAX_TEXT], traceback[:MAX_TEXT])


def iso_to_epoch(text: str) -> float:
    """ISO 8601 -> epoch seconds; no zone means UTC. Raises ValueError.

    ``datetime.fromisoformat`` (3.11) reads ``Z``, offsets, ``T`` or a space, basic and
    extended forms; more than six fractional digits (RFC 3339 nanoseconds) are cut."""
    if len(text) > _MAX_TIME_TEXT:
        raise ValueError("too long for a time")
    try:
        dt = _fromisoformat(text)
    except ValueError:
        dt = _fromisoformat(_cut_fraction(text))
    if dt.tzinfo is None:
        return (dt - _EPOCH).total_seconds()
    return dt.timestamp()


def malformed(frame: bytes, error: Exception, what: str = "loads message") -> ProtocolError:
    """A ProtocolError for a frame msgspec refused, naming its ``data_type`` if it has
    a readable one (only on this error path: it costs a second decode)."""
    text = str(error)[:200] or type(error).__name__
    if isinstance(error, msgspec.ValidationError):
        data_type = _peek_data_type(frame)
        if data_type is not None:
            return ProtocolError(f"loads {data_type!r}: {text}")
    return ProtocolError(f"malformed {what}: {text}")


def check_seconds(value: float | tuple[int, int] | None) -> float:
    """A required duration in seconds: finite, >= 0, at most :data:`MAX_SECONDS`.
    Raises ValueError saying what is wrong."""
    if value is None:
        raise ValueError("is missing")
    if isinstance(value, tuple):
        secs, micros = value
        if not (0 <= secs <= MAX_SECONDS and 0 <= micros < 1_000_000):
            raise ValueError(f"is {list(value)!r}: not [seconds, microseconds]")
        return secs + micros / 1e6
    if not 0.0 <= value <= MAX_SECONDS:  # False for NaN too
        raise ValueError(f"is {value!r}: not a duration in seconds")
    return float(value)


# -- the kinds of message ---------------------------------------------------------------


def _hit(msg: LoadsMessage, origin: Origin) -> Hit:
    url = msg.url
    method = msg.method
    status = msg.status
    elapsed = msg.elapsed
    # One test for the common case (every check passes); the slow path says what failed.
    if (
        url is None
        or method is None
        or type(status) is not int
        or not 0 <= status <= 999
        or type(elapsed) is not float
        or not 0.0 <= elapsed <= MAX_SECONDS
    ):
        return _hit_slowly(msg, origin)
    started = msg.started
    if started is None:
        at = None
    else:
        try:
            at = iso_to_epoch(started)
        except ValueError:
            raise _bad("add_hit", "started", f"is not an ISO 8601 time: {started[:80]!r}") from None
    if len(url) > MAX_NAME:
        url = url[:MAX_NAME]
    if len(method) > MAX_NAME:
        method = method[:MAX_NAME]
    size = msg.size
    if size is None or size < 0:  # loads does not send it; go-lo's -1 is "unknown"
        size = 0
    elif size > MAX_AMOUNT:
        raise _bad("add_hit", "size", f"is {size}: not a size in bytes")
    return Hit(origin, url, method, status, at, elapsed, size)


def _hit_slowly(msg: LoadsMessage, origin: Origin) -> Hit:
    """A hit the fast path did not take: ``[seconds, microseconds]``, or an error."""
    if msg.url is None:
        raise _bad("add_hit", "url", "is missing")
    if msg.method is None:
        raise _bad("add_hit", "method", "is missing")
    status = msg.status
    if type(status) is not int or not 0 <= status <= 999:
        what = "is missing" if status is None else f"is {status!r}: not an HTTP status"
        raise _bad("add_hit", "status", what)
    try:
        elapsed = check_seconds(msg.elapsed)
    except ValueError as e:
        raise _bad("add_hit", "elapsed", str(e)) from None
    return _hit(msgspec.structs.replace(msg, elapsed=elapsed), origin)


def _test(msg: LoadsMessage, origin: Origin, data_type: str) -> TestEvent:
    outcome = _TESTS[data_type]
    test = msg.test
    if test is None:
        if data_type in _NAMED_TESTS:
            raise _bad(data_type, "test", "is missing")
        test = ""
    elif len(test) > MAX_NAME:
        test = test[:MAX_NAME]
    exc = None
    if outcome is TestOutcome.FAILURE or outcome is TestOutcome.ERROR:
        if msg.exc_info is not None:
            exc = exc_info(msg.exc_info, data_type)
        elif msg.error:
            exc = _js_error(msg.error)
    return TestEvent(origin, outcome, test, exc)


def _socket(msg: LoadsMessage, origin: Origin, data_type: str) -> SocketEvent:
    action = _SOCKETS[data_type]
    if action is not SocketAction.MESSAGE:
        return SocketEvent(origin, action)
    size = msg.size
    if size is None:
        raise _bad(data_type, "size", "is missing")
    if not 0 <= size <= MAX_AMOUNT:
        raise _bad(data_type, "size", f"is {size}: not a size in bytes")
    return SocketEvent(origin, action, size)


def _counter(msg: LoadsMessage, origin: Origin, data_type: str) -> CounterEvent:
    if not data_type:
        raise ProtocolError("loads message with an empty data_type")
    if len(data_type) > MAX_ID:
        raise ProtocolError(f"loads data_type of {len(data_type)} characters (at most {MAX_ID})")
    value = msg.value if msg.value is not None else msg.count
    if value is None:
        return CounterEvent(origin, data_type)
    if not 0.0 <= value <= MAX_AMOUNT:
        field = "value" if msg.value is not None else "count"
        raise _bad(data_type, field, f"is {value!r}: a counter only counts up")
    return CounterEvent(origin, data_type, float(value))


def _batch(msg: LoadsMessage, origin: Origin) -> list[ForeignEvent]:
    raw = msg.counts
    if not raw:
        raise _bad("batch", "counts", "is missing")
    text = bytes(raw)
    # Every message is a JSON object: braces bound the messages before any is built
    # (a 16 MiB frame of "{}," would otherwise become millions of objects).
    if text.count(b"{") > MAX_BATCH + 1:
        raise ProtocolError(f"loads batch of more than {MAX_BATCH} messages")
    try:
        counts = _counts_decoder.decode(text)
    except DECODE_ERRORS as e:
        raise ProtocolError(f"loads 'batch': 'counts' {str(e)[:200]}") from None
    events: list[ForeignEvent] = []
    for data_type, messages in counts.items():
        for inner in messages:
            inner.data_type = data_type
            events.extend(loads_events(inner, origin))
    return events


def _progress(status: list[int | None] | str, origin: Origin, data_type: str) -> Progress:
    if type(status) is list and len(status) == 4 and None not in status:  # the common case
        ints = cast(list[int], status)
        if min(ints) >= -1 and max(ints) <= MAX_STATUS_VALUE:
            total, users, current, user = ints
            return Progress(origin, total, users, current, user)
    if isinstance(status, str):
        if len(status) > 100:
            raise _bad(data_type, "loads_status", "is too long")
        try:
            items: list[int | None] = [int(v) for v in status.split(",")]
        except ValueError:
            raise _bad(data_type, "loads_status", f"is not numbers: {status!r}") from None
    else:
        items = status
    n = len(items)
    if n == 4:
        values = items
    elif n == 3:  # loads before 0.3: no current user
        values = [*items, -1]
    else:
        raise _bad(data_type, "loads_status", f"has {n} items (expected 4)")
    total, users, current, user = (-1 if v is None else v for v in values)
    for v in (total, users, current, user):
        if not -1 <= v <= MAX_STATUS_VALUE:
            raise _bad(data_type, "loads_status", f"has {v}: out of range")
    return Progress(origin, total, users, current, user)


# -- helpers ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _origin(agent_id: str | None, run_id: str | None) -> Origin:
    agent = "" if agent_id is None or agent_id == "None" else agent_id
    run = run_id or ""
    if len(agent) > MAX_ID:
        raise ProtocolError(f"loads message: 'agent_id' is longer than {MAX_ID} characters")
    if len(run) > MAX_ID:
        raise ProtocolError(f"loads message: 'run_id' is longer than {MAX_ID} characters")
    return Origin(agent, run)


def _bad(data_type: str, field: str, problem: str) -> ProtocolError:
    return ProtocolError(f"loads {data_type[:80]!r}: {field!r} {problem}")


def _class_score(text: str) -> int:
    if len(text) > MAX_NAME:
        return 0
    if text.endswith("'>") and text.startswith(("<type '", "<class '")):
        return 3
    parts = text.split(".")
    if not all(p.isidentifier() for p in parts):
        return 0
    last = parts[-1]
    if not last[0].isupper():
        return 0
    return 2 if last.endswith(_EXC_SUFFIXES) else 1


def _js_error(raw: msgspec.Raw) -> ExcInfo | None:
    try:
        err = _js_error_decoder.decode(raw)
    except DECODE_ERRORS:
        text = bytes(raw)[:MAX_TEXT].decode("utf-8", "replace")
        return ExcInfo("Error", text)
    if err is None:
        return None
    if isinstance(err, str):
        return ExcInfo("Error", err[:MAX_TEXT])
    return ExcInfo((err.name or "Error")[:MAX_NAME], err.message[:MAX_TEXT], err.stack[:MAX_TEXT])


def _cut_fraction(text: str) -> str:
    """``...:02.828507474Z`` -> ``...:02.828507Z`` (fromisoformat reads six digits at most
    on some 3.11 releases)."""
    dot = text.find(".")
    if dot < 0:
        dot = text.find(",")
        if dot < 0:
            return text
    end = dot + 1
    while end < len(text) and "0" <= text[end] <= "9":
        end += 1
    if end - dot - 1 <= 6:
        return text
    return text[: dot + 7] + text[end:]


def _peek_data_type(frame: bytes) -> str | None:
    try:
        raw = _data_type_decoder.decode(frame).data_type
        value = msgspec.json.decode(raw, type=str) if raw else None
    except DECODE_ERRORS:
        return None
    return value[:80] if value is not None else None
