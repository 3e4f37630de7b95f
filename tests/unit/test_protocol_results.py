"""The HQ's one PULL decoder: a delta, a status, loads messages or an OCT result, told
apart by structure; every decoder of a foreign dialect raises only ProtocolError."""

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cannonade.errors import ProtocolError
from cannonade.model.metrics import IntervalDelta, SourceId
from cannonade.model.recorder import Recorder
from cannonade.protocol import control
from cannonade.protocol.control import AgentReport, Status, encode_status
from cannonade.protocol.deltas import MAX_FRAME, encode_delta
from cannonade.protocol.foreign import CounterEvent, Origin, Transaction
from cannonade.protocol.golo import decode_line
from cannonade.protocol.loads import decode_loads
from cannonade.protocol.oct import decode_oct_result
from cannonade.protocol.results import decode_result_frame

OCT_STATUS = (
    b'{"turret": "navigation", "status": "ready", "uuid": "b689a2ee-2a87-4738-97e7-ea7728ee4a6f",'
    b' "rampup": 1, "script": "v_user.py", "cannons": 2}'
)
SEED_STATUS = (
    b'{"turret": "navigation", "status": "Aborted", "uuid": "d7b8a1cc-639a-405c-9b16-62ce5cd66f36",'
    b' "rampup": "30", "script": "tests/navigation.py", "cannons": "250"}'
)
OCT_RESULT = (
    b'{"elapsed": 1.254225492477417, "epoch": 1795310784.0, "scriptrun_time": 0.2504160404205322,'
    b' "error": "boom 3", "custom_timers": {"a timer": 0.050168752670288086}}'
)
JS_HIT = (
    b'{"data_type":"add_hit","agent_id":"vm-1","run_id":"r1","loads_status":[2,2,1,1],'
    b'"url":"http://127.0.0.1:28080/","method":"GET","status":200,'
    b'"started":"2026-11-22T01:30:03.071Z","elapsed":0.01}'
)
JS_FAILURE = (
    b'{"data_type":"addFailure","agent_id":"vm-1","run_id":"r1","loads_status":[2,2,1,1],'
    b'"test":"testBroken","exc_info":["JSError","{}",""]}'
)
PY_BATCH = json.dumps(
    {
        "data_type": "batch",
        "agent_id": "vm-11448",
        "hostname": "vm",
        "run_id": "778b636e",
        "counts": {
            "startTestRun": [{}],
            "add_hit": [
                {
                    "status": 404,
                    "loads_status": [2, 2, 1, 1],
                    "started": "2026-11-22T01:27:40.669591",
                    "elapsed": 0.027797,
                    "url": "http://127.0.0.1:28080/nope",
                    "method": "GET",
                }
            ],
            "stopTestRun": [{}],
        },
    }
).encode()
# What the e2e test pushes at a live HQ besides the samples: each must be refused.
BAD = [
    b"\xff\xfe not utf-8",
    b'{"data_type": "add_hit", "url": ',
    b'{"data_type": "add_hit", "url": "/", "method": "GET", "status": "two hundred"}',
    b"[" * 3000 + b"]" * 3000,
    b'{"data_type": 7}',
    b'{"what": "is this"}',
]


def test_an_oct_status_is_a_status():
    status = decode_result_frame(OCT_STATUS)
    assert status == Status(
        turret="navigation",
        status="ready",
        uuid="b689a2ee-2a87-4738-97e7-ea7728ee4a6f",
        rampup=1,
        script="v_user.py",
        cannons=2,
    )
    assert decode_result_frame(SEED_STATUS) == control.decode_status(SEED_STATUS)


def test_cannonades_own_status_with_its_report():
    sent = Status(
        turret="host",
        status="running",
        uuid="u-1",
        cannons=4,
        cannonade=AgentReport(hostname="h", pid=7, run_id="r1", ack=3, error="x"),
    )
    assert decode_result_frame(encode_status(sent)) == sent
    bare = b'{"status": "ready", "uuid": "u-2"}'  # no turret name: still a status
    assert decode_result_frame(bare) == Status(status="ready", uuid="u-2")


def test_a_delta_is_a_delta():
    delta = Recorder(SourceId("agent-1", 0)).flush(1_700_000_000, final=True)
    back = decode_result_frame(encode_delta(delta))
    assert isinstance(back, IntervalDelta)
    assert back.source == SourceId("agent-1", 0)
    assert back.final


@pytest.mark.parametrize("frame", [JS_HIT, JS_FAILURE, PY_BATCH])
def test_loads_messages_are_their_events(frame):
    assert decode_result_frame(frame) == decode_loads(frame)
    assert decode_result_frame(b"  " + frame + b"\n") == decode_loads(frame)


def test_a_loads_custom_counter_is_not_mistaken_for_another_kind():
    # data_type decides first, whatever other fields a counter message carries.
    frame = b'{"data_type": "logins", "uuid": "u", "status": "ready", "epoch": 1, "elapsed": 2}'
    assert decode_result_frame(frame) == [CounterEvent(Origin(), "logins")]


def test_an_oct_result_is_a_transaction():
    (t,) = decode_result_frame(OCT_RESULT)
    assert t == decode_oct_result(OCT_RESULT)
    assert t == Transaction(
        Origin(),
        1795310784.0,
        0.2504160404205322,
        1.254225492477417,
        "boom 3",
        {"a timer": 0.050168752670288086},
    )


def test_epoch_and_elapsed_without_scriptrun_time_is_an_oct_result_missing_a_field():
    with pytest.raises(ProtocolError, match="'scriptrun_time' is missing"):
        decode_result_frame(b'{"epoch": 1795310784, "elapsed": 1.5}')


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        *((bad, []) for bad in BAD),
        (b"", ["empty frame"]),
        (b"{}", ["unknown message kind"]),
        (b'{"what": "is this"}', ["unknown message kind"]),
        (b'{"uuid": "u"}', ["unknown message kind"]),
        (b'{"elapsed": 3}', ["unknown message kind"]),
        (b'{"status": "ready", "uuid": 5}', ["status"]),
        (b'{"status": ["ready"], "uuid": "u"}', ["malformed"]),
        (b'{"status": "ready", "uuid": ""}', ["uuid"]),
        (b'{"scriptrun_time": 1, "epoch": -1, "elapsed": 0}', ["'epoch'"]),
        (b"[1, 2, 3]", ["malformed"]),
        (b"\x9d\x01\x02", ["delta"]),
        (
            b'{"data_type": "add_hit", "url": "/", "method": "GET", "status": "two hundred"}',
            ["add_hit", "'status'"],
        ),
        (b'{"data_type": 7}', ["data_type"]),
    ],
)
def test_anything_else_is_refused(frame, words):
    with pytest.raises(ProtocolError) as info:
        decode_result_frame(frame)
    for word in words:
        assert word in str(info.value)


def test_a_frame_over_the_limit_is_refused_unread():
    with pytest.raises(ProtocolError, match="exceeds"):
        decode_result_frame(b"{" + b" " * MAX_FRAME + b"}")


def test_statuses_and_deltas_decode_as_their_own_decoders_say():
    assert control.decode_status(OCT_STATUS) == decode_result_frame(OCT_STATUS)
    delta = Recorder(SourceId("a", 0)).flush(1_700_000_000)
    assert isinstance(decode_result_frame(encode_delta(delta)), IntervalDelta)


# -- totality of every decoder ------------------------------------------------------------

DECODERS = [
    decode_result_frame,
    decode_loads,
    decode_oct_result,
    decode_line,
    control.decode_status,
]
FIELDS = [
    # loads
    "data_type",
    "agent_id",
    "run_id",
    "loads_status",
    "test",
    "exc_info",
    "url",
    "method",
    "status",
    "started",
    "elapsed",
    "size",
    "value",
    "count",
    "counts",
    # OCT status and result
    "turret",
    "uuid",
    "rampup",
    "script",
    "cannons",
    "cannonade",
    "turret_name",
    "epoch",
    "scriptrun_time",
    "error",
    "custom_timers",
    # go-lo
    "sequenceID",
    "timestamp",
    "duration",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(
        [
            "add_hit",
            "batch",
            "addFailure",
            "socket_message",
            "ready",
            "2026-11-22T01:30:03.071Z",
            "",
        ]
    )
)


def _nest(inner):
    # A named function, not a lambda: hypothesis reads the source of ``extend`` to check
    # that it recurses, and a multi-line lambda's source is not always found.
    return st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(FIELDS) | st.text(max_size=4), inner, max_size=3
    )


values = st.recursive(scalars, _nest, max_leaves=8)
objects = st.dictionaries(st.sampled_from(FIELDS), values, max_size=8)


def only_protocol_errors(frame):
    for decode in DECODERS:
        with contextlib.suppress(ProtocolError):
            decode(frame)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_protocol_error(data):
    only_protocol_errors(data)
    only_protocol_errors(b"{" + data)


@settings(max_examples=100, deadline=None)
@given(objects)
def test_structurally_wrong_json_raises_only_protocol_error(message):
    only_protocol_errors(json.dumps(message).encode())


@pytest.mark.parametrize(
    "frame",
    [
        b'{"x": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        b'{"status": "ready", "uuid": "u", "cannonade": ' + b'{"a":' * 3000 + b"1" + b"}" * 3001,
        b'{"data_type": "batch", "counts": {"add_hit": ' + b"[" * 3000 + b"]" * 3000 + b"}}",
        b'{"epoch": 1, "elapsed": 1, "scriptrun_time": 1, "custom_timers": '
        + b"[" * 3000
        + b"]" * 3000
        + b"}",
        b'{"data_type": "x", "agent_id": "\xed\xa0\x80"}',  # a UTF-8 encoded surrogate
        b'{"data_type": "add_hit", "elapsed": 1' + b"0" * 400 + b"}",
        b'{"data_type": "add_hit", "status": -1' + b"0" * 400 + b"}",
    ],
)
def test_deep_nesting_bad_utf8_and_huge_numbers(frame):
    only_protocol_errors(frame)
    with pytest.raises(ProtocolError):
        decode_result_frame(frame)
