"""An exec runner's stdout lines: go-lo's Output (nanoseconds, RFC 3339 with nine
fractional digits) or any loads message; anything else -> ProtocolError only."""

import calendar
import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cannonade.errors import ProtocolError
from cannonade.protocol.deltas import MAX_FRAME
from cannonade.protocol.foreign import (
    CounterEvent,
    Hit,
    Origin,
    Progress,
    SocketAction,
    SocketEvent,
)
from cannonade.protocol.golo import decode_line
from cannonade.protocol.loads import MAX_NAME, MAX_TEXT

# go-lo's agent log, as the 2018 executable printed it.
WIRE = (
    b'{"sequenceID":"fd0794cf-1703-4622-8edc-dacd7113c89e","url":"http://127.0.0.1:28080/",'
    b'"method":"GET","status":200,"size":563,"timestamp":"2026-11-22T01:33:02.828507474Z",'
    b'"duration":2430457,"error":null}'
)
STAMP = calendar.timegm((2026, 11, 22, 1, 33, 2, 0, 0, 0)) + 0.828507  # microseconds kept


def line(**fields):
    base = json.loads(WIRE)
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def test_the_wire_sample_field_by_field():
    (hit,) = decode_line(WIRE + b"\n")
    assert isinstance(hit, Hit)
    assert hit.origin == Origin()
    assert hit.url == "http://127.0.0.1:28080/"
    assert hit.method == "GET"
    assert hit.status == 200
    assert hit.size == 563
    assert hit.elapsed == 0.002430457  # duration is nanoseconds
    # go-lo stamps the Output after the response: it started `duration` earlier.
    assert hit.started == pytest.approx(STAMP - 0.002430457, abs=1e-6)
    assert hit.error == ""


@pytest.mark.parametrize("text", [b"", b"\n", b"\r\n", b"   \t \n"])
def test_blank_lines_have_no_events(text):
    assert decode_line(text) == []


@pytest.mark.parametrize(
    ("stamp", "epoch"),
    [
        ("2026-11-22T01:33:02.828507474Z", STAMP),
        ("2026-11-22T01:33:02Z", STAMP - 0.828507),
        ("2026-11-22T02:33:02.8285074+01:00", STAMP),
        ("2026-11-22T01:33:02.8Z", STAMP - 0.028507),
    ],
)
def test_rfc_3339_timestamps_with_any_fraction_and_zone(stamp, epoch):
    (hit,) = decode_line(line(timestamp=stamp, duration=0))
    assert hit.started == pytest.approx(epoch, abs=1e-6)


def test_gos_zero_time_and_a_missing_timestamp_mean_unknown():
    assert decode_line(line(timestamp="0001-01-01T00:00:00Z"))[0].started is None
    assert decode_line(line(timestamp=...))[0].started is None


def test_a_failed_request_keeps_its_error():
    # A Go error marshalled: a string, or an object of its exported fields.
    (hit,) = decode_line(line(status=0, size=-1, error="dial tcp: connection refused"))
    assert (hit.status, hit.size, hit.error) == (0, 0, "dial tcp: connection refused")
    err = {"Op": "Get", "URL": "http://127.0.0.1:1/", "Err": {"Op": "dial", "Net": "tcp"}}
    (hit,) = decode_line(line(status=0, error=err))
    assert json.loads(hit.error) == err
    assert decode_line(line(error={}))[0].error == "{}"
    assert decode_line(line(error="x" * 100_000))[0].error == "x" * MAX_TEXT


def test_long_urls_are_cut_and_unknown_fields_ignored():
    (hit,) = decode_line(line(url="http://t/" + "a" * 20_000, tags={"a": [1]}))
    assert len(hit.url) == MAX_NAME


def test_loads_messages_are_cannonades_own_line_format():
    lines = [
        b'{"data_type": "add_hit", "url": "/a", "method": "GET", "status": 200, "elapsed": 0.5}',
        b'{"data_type": "socket_message", "size": 12, "loads_status": [1, 1, 1, 1]}\n',
        b'{"data_type": "checkout"}',
    ]
    assert [e for raw in lines for e in decode_line(raw)] == [
        Hit(Origin(), "/a", "GET", 200, None, 0.5),
        SocketEvent(Origin(), SocketAction.MESSAGE, 12),
        Progress(Origin(), 1, 1, 1, 1),
        CounterEvent(Origin(), "checkout"),
    ]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (b"starting load test...", ["malformed"]),
        (b"2026/11/22 01:33:02 listening on :8081", ["malformed"]),
        (b"[1, 2]", ["malformed"]),
        (b"42", ["malformed"]),
        (b"{}", ["neither"]),
        (b'{"sequenceID": "x"}', ["neither"]),
        (line(url=...), ["'url'", "missing"]),
        (line(method=...), ["'method'", "missing"]),
        (line(status=...), ["'status'", "missing"]),
        (line(duration=...), ["'duration'", "missing"]),
        (line(status="200"), ["'status'"]),
        (line(status=600000), ["'status'"]),
        (line(duration=-1), ["'duration'"]),
        (line(duration=2.5), ["duration"]),
        (line(duration=10**30), ["'duration'"]),
        (line(timestamp="yesterday"), ["'timestamp'", "RFC 3339"]),
        (line(timestamp=1795310784), ["timestamp"]),
        (line(size="big"), ["size"]),
        (line(size=10**30), ["'size'"]),
        (b'{"data_type": "add_hit", "url": "/"}', ["add_hit", "'method'"]),
        (b'{"url": "\xff"}', ["malformed"]),
        (b'{"url": ' + b"[" * 3000 + b"]" * 3000 + b"}", ["malformed"]),
        (b'{"url": "/", "duration": NaN}', ["malformed"]),
    ],
)
def test_anything_else_is_refused(text, words):
    with pytest.raises(ProtocolError) as info:
        decode_line(text)
    for word in words:
        assert word in str(info.value)


def test_a_line_over_the_limit_is_refused_unread():
    with pytest.raises(ProtocolError, match="exceeds"):
        decode_line(b" " * (MAX_FRAME + 1))


FIELDS = ["sequenceID", "url", "method", "status", "size", "timestamp", "duration", "error"]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["2026-11-22T01:33:02.828507474Z", "0001-01-01T00:00:00Z", "GET"])
)


def _nest(inner):
    # A named function, not a lambda: hypothesis reads the source of ``extend`` to check
    # that it recurses, and a multi-line lambda's source is not always found.
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)


values = st.recursive(scalars, _nest, max_leaves=8)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_protocol_error(data):
    with contextlib.suppress(ProtocolError):
        decode_line(data)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), values, max_size=8), st.sampled_from(FIELDS))
def test_structurally_wrong_lines_raise_only_protocol_error(fields, drop):
    output = {**json.loads(WIRE), **fields}
    output.pop(drop, None)
    try:
        events = decode_line(json.dumps(output).encode())
    except ProtocolError:
        return
    assert all(isinstance(e, Hit) for e in events)
