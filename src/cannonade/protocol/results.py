"""The one decoder of the HQ's PULL socket: every kind of frame a peer may push.

=====================================================  ==================================
frame                                                  decoded by / into
=====================================================  ==================================
MessagePack (does not start like JSON)                 :func:`~.deltas.decode_delta`
JSON with a ``data_type``                              :func:`~.loads.loads_events`
JSON with a ``uuid`` and a ``status``, no data_type    :func:`~.control.decode_status`
JSON with ``scriptrun_time``, or ``epoch``+``elapsed``  :func:`~.oct.decode_oct_result`
anything else                                          ``ProtocolError``
=====================================================  ==================================

The kind is told by structure, never by searching the raw text (OCT's HQ looks for
``"status"`` anywhere in the bytes): a JSON frame is decoded once into
:class:`_Frame`, loads' message struct plus, as raw slices that cost nothing to keep,
the fields that mark the other kinds. A loads message (the common case: one per
request) is decoded from that one pass. A status (every ~2 s per agent) or an OCT result
is then decoded again by its own decoder, which validates its own fields.
"""

from __future__ import annotations

import msgspec

from cannonade.errors import ProtocolError
from cannonade.model.metrics import IntervalDelta
from cannonade.protocol.control import Status, decode_status
from cannonade.protocol.deltas import MAX_FRAME, decode_delta
from cannonade.protocol.foreign import ForeignEvent
from cannonade.protocol.loads import DECODE_ERRORS, LoadsMessage, loads_events, malformed
from cannonade.protocol.oct import decode_oct_result

ResultFrame = Status | IntervalDelta | list[ForeignEvent]

# What a JSON frame may start with; a delta (a MessagePack array) never starts so.
_JSON_START = frozenset(b"{[ \t\r\n")


class _Frame(LoadsMessage, gc=False):
    # an OCT/cannonade status message
    uuid: msgspec.Raw = msgspec.Raw()
    # an OCT result
    scriptrun_time: msgspec.Raw = msgspec.Raw()
    epoch: msgspec.Raw = msgspec.Raw()


_decoder = msgspec.json.Decoder(_Frame)


def decode_result_frame(frame: bytes) -> ResultFrame:
    """One frame from the HQ's PULL socket, decoded by its structure."""
    if len(frame) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(frame)} bytes exceeds {MAX_FRAME}")
    if not frame:
        raise ProtocolError("empty frame")
    if frame[0] not in _JSON_START:
        return decode_delta(frame)
    try:
        msg = _decoder.decode(frame)
    except DECODE_ERRORS as e:
        raise malformed(frame, e, "JSON message") from None
    if msg.data_type is not None:
        return loads_events(msg)
    if msg.uuid and msg.status is not None:
        return decode_status(frame)
    if msg.scriptrun_time or (msg.epoch and msg.elapsed is not None):
        return [decode_oct_result(frame)]
    raise ProtocolError("unknown message kind")
