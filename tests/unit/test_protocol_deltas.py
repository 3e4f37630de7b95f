import contextlib
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cannonade.errors import ProtocolError
from cannonade.model.aggregate import Aggregator
from cannonade.model.metrics import CHECKS, Key, Kind, SourceId
from cannonade.model.recorder import Recorder
from cannonade.protocol.deltas import decode_delta, encode_delta


def sample_delta():
    rec = Recorder(SourceId("agent-1", 3))
    slot = rec.request_slot("/", "GET")
    for i in range(100):
        slot.duration.append(0.001 * (i + 1))
        slot.waiting.append(0.0005)
        slot.status.append(200 if i % 10 else 500)
    slot.error("timeout")
    slot.sent += 1000
    rec.add(Key(CHECKS, "ok", "", "true"), 5)
    rec.define("login", Kind.TREND)
    rec.samples(Key("login")).values.extend([0.1, 0.2])
    rec.error("ValueError", "bad", "Traceback ...")
    return rec.flush(1_700_000_000, final=True)


def test_round_trip_is_lossless():
    delta = sample_delta()
    back = decode_delta(encode_delta(delta))
    a, b = Aggregator(), Aggregator()
    a.add(delta)
    b.add(back)
    assert back.source == delta.source
    assert back.seq == delta.seq
    assert back.final
    assert a.counters == b.counters
    for key, h in a.trends.items():
        assert b.trends[key].percentiles([50, 99]) == h.percentiles([50, 99])
        assert b.trends[key].count == h.count
    assert back.custom_kinds == {"login": Kind.TREND}
    assert back.errors[0].sample == "Traceback ..."


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_raise_only_protocol_error(data):
    with contextlib.suppress(ProtocolError):
        decode_delta(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_frames_raise_only_protocol_error(data):
    frame = bytearray(encode_delta(sample_delta()))
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(frame) - 1))
        frame[pos] = data.draw(st.integers(0, 255))
    try:
        delta = decode_delta(bytes(frame))
    except ProtocolError:
        return
    # Whatever decodes must be safe to aggregate.
    Aggregator().add(delta)
    for t in delta.trends.values():
        assert t.count == int(t.bins.count.sum())
        assert math.isfinite(t.sum)


def test_inconsistent_counts_are_refused():
    import msgspec

    delta = sample_delta()
    raw = msgspec.msgpack.decode(encode_delta(delta))
    raw[8][0][1] += 1  # first trend's count no longer matches its buckets
    with pytest.raises(ProtocolError, match="buckets hold"):
        decode_delta(msgspec.msgpack.encode(raw))
