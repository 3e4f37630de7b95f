"""What an exec runner prints on stdout, one JSON object a line, as typed events.

Two line formats, told apart by structure:

* a **loads message** (any object with a ``data_type``, :mod:`cannonade.protocol.loads`):
  cannonade's own line format, so an executable can report tests, sockets and custom
  counters as well as hits;
* go-lo's ``Output`` (github.com/go-lo/go-lo, ``output.go``)::

    {"sequenceID": "fd0794cf-...", "url": "http://127.0.0.1:28080/", "method": "GET",
     "status": 200, "size": 563, "timestamp": "2026-11-22T01:33:02.828507474Z",
     "duration": 2430457, "error": null}

  -> a :class:`Hit`. ``duration`` is a Go ``time.Duration``: nanoseconds. ``timestamp``
  is RFC 3339 with up to nine fractional digits (cut to microseconds) and is taken
  *after* the response (go-lo's ``DoRequest`` calls ``Parse`` once the request is
  done, and ``Parse`` stamps ``now``), so ``started`` is ``timestamp - duration``; Go's
  zero time (``0001-01-01T00:00:00Z``) means "not said". ``size`` is the response's
  ``Content-Length``, ``-1`` when unknown (then 0). ``error`` is a Go ``error``
  marshalled as JSON: ``null``, a string, or an object of the error's exported fields
  (``{"Op": "Get", "URL": ..., "Err": {...}}``); an object is kept as its JSON text.
  A request that got no response has status 0. ``sequenceID`` (a journey's id) is not
  kept. ``url``, ``method``, ``status`` and ``duration`` are required.

A blank line is ``[]``; anything else (a log line, a JSON value that is neither)
raises :class:`ProtocolError`. Free text is cut like loads' (URLs and methods to
:data:`~cannonade.protocol.loads.MAX_NAME`, errors to
:data:`~cannonade.protocol.loads.MAX_TEXT`).
"""

from __future__ import annotations

import msgspec

from cannonade.errors import ProtocolError
from cannonade.protocol.deltas import MAX_FRAME
from cannonade.protocol.foreign import ForeignEvent, Hit, Origin
from cannonade.protocol.loads import (
    DECODE_ERRORS,
    MAX_AMOUNT,
    MAX_NAME,
    MAX_SECONDS,
    MAX_TEXT,
    LoadsMessage,
    iso_to_epoch,
    loads_events,
    malformed,
)

_MAX_NANOS = int(MAX_SECONDS * 1e9)
_GO_ZERO_TIME = "0001-01-01T00:00:00"
_NO_ORIGIN = Origin()


class _Line(LoadsMessage, gc=False):
    """A loads message or a go-lo Output: one decode for both (``url``, ``method``,
    ``status``, ``size`` and ``error`` are shared)."""

    timestamp: str | None = None
    duration: int | None = None


_decoder = msgspec.json.Decoder(_Line)
_str_decoder = msgspec.json.Decoder(str)


def decode_line(line: bytes) -> list[ForeignEvent]:
    """One line of a runner's stdout (with or without its newline) -> its events."""
    if len(line) > MAX_FRAME:
        raise ProtocolError(f"output line of {len(line)} bytes exceeds {MAX_FRAME}")
    line = line.strip()
    if not line:
        return []
    try:
        msg = _decoder.decode(line)
    except DECODE_ERRORS as e:
        raise malformed(line, e, "output line (neither go-lo's nor loads' JSON)") from None
    if msg.data_type is not None:
        return loads_events(msg)
    if msg.duration is None and msg.url is None:
        raise ProtocolError("output line is neither a go-lo Output nor a loads message")
    return [_hit(msg)]


def _hit(msg: _Line) -> Hit:
    url = msg.url
    method = msg.method
    status = msg.status
    nanos = msg.duration
    if url is None:
        raise _bad("url", "is missing")
    if method is None:
        raise _bad("method", "is missing")
    if type(status) is not int or not 0 <= status <= 999:
        raise _bad(
            "status", "is missing" if status is None else f"is {status!r}: not an HTTP status"
        )
    if nanos is None:
        raise _bad("duration", "is missing")
    if not 0 <= nanos <= _MAX_NANOS:
        raise _bad("duration", f"is {nanos}: not a duration in nanoseconds")
    elapsed = nanos / 1e9
    started = None
    stamp = msg.timestamp
    if stamp is not None and not stamp.startswith(_GO_ZERO_TIME):
        try:
            started = iso_to_epoch(stamp) - elapsed
        except ValueError:
            raise _bad("timestamp", f"is not an RFC 3339 time: {stamp[:80]!r}") from None
    size = msg.size
    if size is None or size < 0:
        size = 0
    elif size > MAX_AMOUNT:
        raise _bad("size", f"is {size}: not a size in bytes")
    return Hit(
        _NO_ORIGIN,
        url[:MAX_NAME],
        method[:MAX_NAME],
        status,
        started,
        elapsed,
        size,
        _error(msg.error),
    )


def _error(raw: msgspec.Raw) -> str:
    if not raw:
        return ""
    text = bytes(raw)
    if text == b"null":
        return ""
    if text[:1] == b'"':
        try:
            return _str_decoder.decode(text)[:MAX_TEXT]
        except DECODE_ERRORS:
            pass
    return text[:MAX_TEXT].decode("utf-8", "replace")


def _bad(field: str, problem: str) -> ProtocolError:
    return ProtocolError(f"go-lo output: {field!r} {problem}")
