"""loads' data_type messages (loads 0.3, loads.js, the seeds) -> cannonade's foreign events,
and every malformed message -> ProtocolError, nothing else."""

import calendar
import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cannonade.errors import ProtocolError
from cannonade.protocol import foreign, loads
from cannonade.protocol.deltas import MAX_FRAME
from cannonade.protocol.foreign import (
    CounterEvent,
    ExcInfo,
    Hit,
    Origin,
    Progress,
    SocketAction,
    SocketEvent,
)
from cannonade.protocol.loads import (
    MAX_BATCH,
    MAX_ID,
    MAX_NAME,
    MAX_TEXT,
    decode_loads,
    encode_test_run,
    exc_info,
    iso_to_epoch,
)

TEvent = foreign.TestEvent  # not "Test...": pytest would try to collect it
Outcome = foreign.TestOutcome
VM1 = Origin("vm-1", "r1")
STATUS = Progress(VM1, 2, 2, 1, 1)


def utc(*parts, fraction=0.0):
    return calendar.timegm((*parts, 0, 0, 0)) + fraction


# -- the wire samples, byte for byte -----------------------------------------------------

JS_FRAMES = [
    (
        b'{"data_type":"startTest","agent_id":"vm-1","run_id":"r1","loads_status":[2,2,1,1],'
        b'"test":"testHomepage"}',
        [TEvent(VM1, Outcome.START, "testHomepage"), STATUS],
    ),
    (
        b'{"data_type":"add_hit","agent_id":"vm-1","run_id":"r1","loads_status":[2,2,1,1],'
        b'"url":"http://127.0.0.1:28080/","method":"GET","status":200,'
        b'"started":"2026-11-22T01:30:03.071Z","elapsed":0.01}',
        None,  # checked field by field below: started is a float
    ),
    (
        b'{"data_type":"addSuccess","agent_id":"vm-1","run_id":"r1","loads_status":[2,2,1,1],'
        b'"test":"testHomepage"}',
        [TEvent(VM1, Outcome.SUCCESS, "testHomepage"), STATUS],
    ),
    (
        b'{"data_type":"stopTest","agent_id":"vm-1","run_id":"r1","loads_status":[2,2,1,1],'
        b'"test":"testHomepage"}',
        [TEvent(VM1, Outcome.STOP, "testHomepage"), STATUS],
    ),
    (
        b'{"data_type":"addFailure","agent_id":"vm-1","run_id":"r1","loads_status":[2,2,1,1],'
        b'"test":"testBroken","exc_info":["JSError","{}",""]}',
        [
            TEvent(VM1, Outcome.FAILURE, "testBroken", ExcInfo("JSError", "{}", "")),
            STATUS,
        ],
    ),
]

TRACEBACK = (
    '  File "example.py", line 9, in test_fail\n    self.assertEqual(res.status_code, 200)\n'
)
PY_BATCH = {
    "data_type": "batch",
    "agent_id": "vm-11448",
    "hostname": "vm",
    "run_id": "778b636e-...",
    "counts": {
        "startTestRun": [{}],
        "startTest": [{"test": "test_fail (example.TestWebSite)", "loads_status": [2, 2, 1, 0]}],
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
        "addFailure": [
            {
                "test": "test_fail (example.TestWebSite)",
                "exc_info": ["<type 'exceptions.AssertionError'>", "404 != 200", TRACEBACK],
                "loads_status": [2, 2, 1, 1],
            }
        ],
        "stopTest": [{"test": "test_fail (example.TestWebSite)", "loads_status": [2, 2, 1, 1]}],
        "stopTestRun": [{}],
    },
}


@pytest.mark.parametrize(("frame", "expected"), [f for f in JS_FRAMES if f[1] is not None])
def test_the_js_runners_test_messages(frame, expected):
    assert decode_loads(frame) == expected


def test_the_js_runners_hit_field_by_field():
    hit, progress = decode_loads(JS_FRAMES[1][0])
    assert isinstance(hit, Hit)
    assert hit.origin == VM1
    assert hit.url == "http://127.0.0.1:28080/"
    assert hit.method == "GET"
    assert hit.status == 200
    assert hit.started == pytest.approx(utc(2026, 11, 22, 1, 30, 3, fraction=0.071), abs=1e-6)
    assert hit.elapsed == 0.01
    assert hit.size == 0
    assert hit.error == ""
    assert progress == STATUS


def test_the_python_runners_batch_inherits_its_origin():
    py = Origin("vm-11448", "778b636e-...")
    events = decode_loads(json.dumps(PY_BATCH).encode())
    hit = events[3]
    assert isinstance(hit, Hit)
    assert events == [
        TEvent(py, Outcome.START_RUN),
        TEvent(py, Outcome.START, "test_fail (example.TestWebSite)"),
        Progress(py, 2, 2, 1, 0),
        Hit(py, "http://127.0.0.1:28080/nope", "GET", 404, hit.started, 0.027797),
        Progress(py, 2, 2, 1, 1),
        TEvent(
            py,
            Outcome.FAILURE,
            "test_fail (example.TestWebSite)",
            ExcInfo("<type 'exceptions.AssertionError'>", "404 != 200", TRACEBACK),
        ),
        Progress(py, 2, 2, 1, 1),
        TEvent(py, Outcome.STOP, "test_fail (example.TestWebSite)"),
        Progress(py, 2, 2, 1, 1),
        TEvent(py, Outcome.STOP_RUN),
    ]
    # No zone: UTC (loads stamps hits with datetime.utcnow()).
    assert hit.started == pytest.approx(utc(2026, 11, 22, 1, 27, 40, fraction=0.669591), abs=1e-6)


def test_inner_messages_keep_their_own_ids_when_they_have_them():
    frame = {
        "data_type": "batch",
        "agent_id": "a",
        "run_id": "r",
        "counts": {"logins": [{}, {"agent_id": "b"}, {"run_id": "s"}]},
    }
    assert decode_loads(json.dumps(frame).encode()) == [
        CounterEvent(Origin("a", "r"), "logins"),
        CounterEvent(Origin("b", "r"), "logins"),
        CounterEvent(Origin("a", "s"), "logins"),
    ]


def test_a_counter_in_a_batch_keeps_the_batchs_agent():
    # ZMQSummarizedTestResult queues incr_counter's message as is: agent_id "None".
    frame = {
        "data_type": "batch",
        "agent_id": "vm-11448",
        "run_id": "r",
        "counts": {"es-hits": [{"test": "t", "agent_id": "None", "loads_status": [1, 1, 1, 0]}]},
    }
    o = Origin("vm-11448", "r")
    assert decode_loads(json.dumps(frame).encode()) == [
        CounterEvent(o, "es-hits"),
        Progress(o, 1, 1, 1, 0),
    ]


def test_the_key_of_counts_is_the_data_type_of_its_messages():
    frame = {"data_type": "batch", "counts": {"socket_open": [{"data_type": "add_hit"}]}}
    assert decode_loads(json.dumps(frame).encode()) == [SocketEvent(Origin(), SocketAction.OPEN)]


def test_an_empty_batch_has_no_events():
    assert decode_loads(b'{"data_type": "batch", "counts": {}}') == []
    assert decode_loads(b'{"data_type": "batch", "counts": {"add_hit": []}}') == []


def test_sockets():
    frames = [
        b'{"data_type": "socket_open", "agent_id": "vm-1"}',
        b'{"data_type": "socket_message", "agent_id": "vm-1", "size": 120}',
        b'{"data_type": "socket_close", "agent_id": "vm-1"}',
    ]
    o = Origin("vm-1", "")
    assert [e for f in frames for e in decode_loads(f)] == [
        SocketEvent(o, SocketAction.OPEN),
        SocketEvent(o, SocketAction.MESSAGE, 120),
        SocketEvent(o, SocketAction.CLOSE),
    ]


# -- custom counters ----------------------------------------------------------------------


def test_any_other_data_type_is_a_custom_counter_of_one():
    assert decode_loads(b'{"data_type": "logins", "agent_id": "vm-1"}') == [
        CounterEvent(Origin("vm-1", ""), "logins", 1.0)
    ]


def test_loads_incr_counter_as_sent_without_an_agent():
    # ZMQTestResult.incr_counter: the test and loads_status, agent_id the text "None".
    frame = (
        b'{"test": "test_es (loads.examples.test_blog.TestWebSite)", "agent_id": "None",'
        b' "loads_status": [1, 1, 1, 0], "data_type": "es-hits", "run_id": null}'
    )
    assert decode_loads(frame) == [
        CounterEvent(Origin(), "es-hits"),
        Progress(Origin(), 1, 1, 1, 0),
    ]


@pytest.mark.parametrize(
    ("fields", "value"),
    [
        ('"value": 3', 3.0),
        ('"count": 2.5', 2.5),
        ('"value": 0', 0.0),
        ('"value": 4, "count": 9', 4.0),
    ],
)
def test_a_counter_may_carry_its_increment(fields, value):
    frame = f'{{"data_type": "bytes_uploaded", {fields}}}'.encode()
    assert decode_loads(frame) == [CounterEvent(Origin(), "bytes_uploaded", value)]


# -- exc_info: either order --------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "cls", "message"),
    [
        # what the runners send: the class first
        (
            ["<type 'exceptions.AssertionError'>", "404 != 200", "tb"],
            "<type 'exceptions.AssertionError'>",
            "404 != 200",
        ),
        (["JSError", "{}", ""], "JSError", "{}"),
        (["<class 'ValueError'>", "ValueError", "tb"], "<class 'ValueError'>", "ValueError"),
        # what the seeds document: the message first
        (
            ["404 != 200", "<type 'exceptions.AssertionError'>", "tb"],
            "<type 'exceptions.AssertionError'>",
            "404 != 200",
        ),
        (["{}", "JSError", ""], "JSError", "{}"),
        (["boom", "requests.exceptions.HTTPError", ""], "requests.exceptions.HTTPError", "boom"),
        (["Timeout", "socket.TimeoutError", ""], "socket.TimeoutError", "Timeout"),
        (["connection refused", "Timeout", ""], "Timeout", "connection refused"),
        (["ValueError", "<class 'ValueError'>", "tb"], "<class 'ValueError'>", "ValueError"),
        # a tie: the first, as the runners send
        (["Forbidden", "Timeout", ""], "Forbidden", "Timeout"),
        (["it broke", "so did this", ""], "it broke", "so did this"),
        (["", "", ""], "", ""),
    ],
)
def test_the_exception_class_is_told_by_its_shape(items, cls, message):
    exc = exc_info(items)
    assert (exc.type, exc.message, exc.traceback) == (cls, message, items[2])


def test_exc_info_in_the_seed_order_on_the_wire():
    frame = {
        "data_type": "addError",
        "test": "t",
        "exc_info": ["division by zero", "<class 'ZeroDivisionError'>", "Traceback ..."],
    }
    assert decode_loads(json.dumps(frame).encode()) == [
        TEvent(
            Origin(),
            Outcome.ERROR,
            "t",
            ExcInfo("<class 'ZeroDivisionError'>", "division by zero", "Traceback ..."),
        )
    ]


def test_exc_info_with_nulls_or_without_a_traceback():
    assert exc_info(["JSError", None, None]) == ExcInfo("JSError", "", "")
    assert exc_info(["boom", "KeyError"]) == ExcInfo("KeyError", "boom", "")


def test_a_failure_without_exc_info_and_mocha_loads_error_objects():
    plain = b'{"data_type": "addFailure", "test": "t"}'
    assert decode_loads(plain) == [TEvent(Origin(), Outcome.FAILURE, "t")]
    mocha = (
        b'{"data_type": "addFailure", "test": "t",'
        b' "error": {"message": "expected 1", "showDiff": true}}'
    )
    assert decode_loads(mocha)[0].exc == ExcInfo("Error", "expected 1", "")
    named = (
        b'{"data_type": "addError", "test": "t", "error": {"name": "TypeError", "message": "x"}}'
    )
    assert decode_loads(named)[0].exc == ExcInfo("TypeError", "x", "")
    text = b'{"data_type": "addError", "test": "t", "error": "boom"}'
    assert decode_loads(text)[0].exc == ExcInfo("Error", "boom", "")
    odd = b'{"data_type": "addError", "test": "t", "error": [1, 2]}'
    assert decode_loads(odd)[0].exc == ExcInfo("Error", "[1, 2]", "")


def test_exc_info_is_only_read_for_failures_and_errors():
    frame = b'{"data_type": "addSuccess", "test": "t", "exc_info": ["a", "b", "c"]}'
    assert decode_loads(frame) == [TEvent(Origin(), Outcome.SUCCESS, "t")]


# -- times, durations, statuses ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2026-11-22T01:30:03.071Z", utc(2026, 11, 22, 1, 30, 3, fraction=0.071)),
        ("2026-11-22T01:27:40.669591", utc(2026, 11, 22, 1, 27, 40, fraction=0.669591)),
        ("2026-11-22T01:27:40", utc(2026, 11, 22, 1, 27, 40)),
        ("2026-11-22T02:27:40+01:00", utc(2026, 11, 22, 1, 27, 40)),
        ("2026-11-21T20:27:40.5-05:00", utc(2026, 11, 22, 1, 27, 40, fraction=0.5)),
        ("2026-11-22T01:33:02.828507474Z", utc(2026, 11, 22, 1, 33, 2, fraction=0.828507)),
        ("2026-11-22 01:27:40+00:00", utc(2026, 11, 22, 1, 27, 40)),
    ],
)
def test_iso_8601_times_naive_means_utc(text, epoch):
    assert iso_to_epoch(text) == pytest.approx(epoch, abs=1e-6)


def test_nanosecond_fractions_are_cut_where_fromisoformat_refuses_them(monkeypatch):
    real = loads._fromisoformat

    def strict(text):  # as some 3.11 releases: at most six fractional digits
        fraction = text.partition(".")[2]
        if len(fraction) - len(fraction.lstrip("0123456789")) > 6:
            raise ValueError("Invalid isoformat string")
        return real(text)

    monkeypatch.setattr(loads, "_fromisoformat", strict)
    assert iso_to_epoch("2026-11-22T01:33:02.828507474Z") == pytest.approx(
        utc(2026, 11, 22, 1, 33, 2, fraction=0.828507), abs=1e-6
    )
    assert iso_to_epoch("2026-11-22T01:33:02.123456789+01:00") == pytest.approx(
        utc(2026, 11, 22, 0, 33, 2, fraction=0.123456), abs=1e-6
    )


@pytest.mark.parametrize(
    "text", ["yesterday", "", "2026-13-01T00:00:00", "2026-11-22T25:00:00", "2" * 100]
)
def test_unreadable_times_raise_value_error(text):
    with pytest.raises(ValueError):  # noqa: PT011 - iso_to_epoch raises only ValueError
        iso_to_epoch(text)


def hit_frame(**fields):
    base = {"data_type": "add_hit", "url": "/", "method": "GET", "status": 200, "elapsed": 0.5}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def test_a_hit_without_a_start_time_and_the_old_timedelta_elapsed():
    (hit,) = decode_loads(hit_frame(elapsed=[1, 250000]))
    assert hit == Hit(Origin(), "/", "GET", 200, None, 1.25)


def test_a_failed_request_has_status_zero():
    (hit,) = decode_loads(hit_frame(status=0))
    assert hit.status == 0


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("2,2,1,1", Progress(Origin(), 2, 2, 1, 1)),  # loads.js joins it
        ([5, 10, 3], Progress(Origin(), 5, 10, 3, -1)),  # loads before 0.3
        ([-1, -1, -1, -1], Progress(Origin(), -1, -1, -1, -1)),  # outside a loads run
        ([None, 2, None, 1], Progress(Origin(), -1, 2, -1, 1)),
    ],
)
def test_loads_status_forms(status, expected):
    assert decode_loads(hit_frame(loads_status=status))[1] == expected


# -- caps ----------------------------------------------------------------------------------


def test_long_free_text_is_cut():
    (hit,) = decode_loads(hit_frame(url="http://t/" + "a" * 20_000, method="M" * 10_000))
    assert len(hit.url) == MAX_NAME
    assert len(hit.method) == MAX_NAME
    frame = {
        "data_type": "addFailure",
        "test": "t" * 10_000,
        "exc_info": ["E" * 10_000, "m" * 100_000, "tb" * 100_000],
    }
    (event,) = decode_loads(json.dumps(frame).encode())
    assert len(event.test) == MAX_NAME
    assert event.exc == ExcInfo("E" * MAX_NAME, "m" * MAX_TEXT, ("tb" * 100_000)[:MAX_TEXT])


@pytest.mark.parametrize(
    "frame",
    [
        {"data_type": "add_hit", "agent_id": "a" * (MAX_ID + 1)},
        {"data_type": "socket_open", "run_id": "r" * (MAX_ID + 1)},
        {"data_type": "x" * (MAX_ID + 1)},
    ],
)
def test_identifiers_too_long_to_be_true_are_refused(frame):
    with pytest.raises(ProtocolError, match="characters"):
        decode_loads(json.dumps(frame).encode())


def test_a_batch_is_bounded_before_its_messages_are_built():
    counts = b"[" + b",".join([b"{}"] * (MAX_BATCH + 1)) + b"]"
    frame = b'{"data_type": "batch", "counts": {"startTest": ' + counts + b"}}"
    with pytest.raises(ProtocolError, match="batch of more than"):
        decode_loads(frame)


# -- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "words"),
    [
        (hit_frame(url=...), ["add_hit", "'url'", "missing"]),
        (hit_frame(method=...), ["add_hit", "'method'", "missing"]),
        (hit_frame(status=...), ["add_hit", "'status'", "missing"]),
        (hit_frame(elapsed=...), ["add_hit", "'elapsed'", "missing"]),
        (hit_frame(status="200"), ["add_hit", "'status'", "'200'"]),
        (hit_frame(status=1000), ["add_hit", "'status'"]),
        (hit_frame(status=-1), ["add_hit", "'status'"]),
        (hit_frame(status=10**30), ["add_hit", "'status'"]),
        (hit_frame(status=True), ["add_hit", "status"]),
        (hit_frame(elapsed=-0.1), ["add_hit", "'elapsed'"]),
        (hit_frame(elapsed=1e300), ["add_hit", "'elapsed'"]),
        (hit_frame(elapsed="fast"), ["add_hit", "elapsed"]),
        (hit_frame(elapsed=[1, 2, 3]), ["add_hit", "elapsed"]),
        (hit_frame(elapsed=[-1, 0]), ["add_hit", "'elapsed'"]),
        (hit_frame(elapsed=[1, 10**30]), ["add_hit", "'elapsed'"]),
        (hit_frame(url=7), ["add_hit", "url"]),
        (hit_frame(started="yesterday"), ["add_hit", "'started'", "ISO 8601"]),
        (hit_frame(started=1795310860.5), ["add_hit", "started"]),
        (hit_frame(loads_status=[1, 2]), ["add_hit", "'loads_status'"]),
        (hit_frame(loads_status="a,b,c,d"), ["add_hit", "'loads_status'"]),
        (hit_frame(loads_status=[1, 2, 3, 2**40]), ["add_hit", "'loads_status'"]),
        (hit_frame(loads_status=[1, 2, 3, "4"]), ["add_hit", "loads_status"]),
        (
            b'{"data_type": "addFailure", "test": "t", "exc_info": ["a"]}',
            ["addFailure", "'exc_info'"],
        ),
        (
            b'{"data_type": "addFailure", "test": "t", "exc_info": "boom"}',
            ["addFailure", "exc_info"],
        ),
        (b'{"data_type": "startTest"}', ["startTest", "'test'", "missing"]),
        (b'{"data_type": "startTest", "test": 5}', ["startTest", "test"]),
        (b'{"data_type": "socket_message"}', ["socket_message", "'size'", "missing"]),
        (b'{"data_type": "socket_message", "size": -5}', ["socket_message", "'size'"]),
        (b'{"data_type": "socket_message", "size": 1.5}', ["socket_message", "size"]),
        (b'{"data_type": "logins", "value": -1}', ["logins", "'value'"]),
        (b'{"data_type": "logins", "value": 1e300}', ["logins", "'value'"]),
        (b'{"data_type": "socket_message", "size": 100000000000000000000}', ["'size'"]),
        (hit_frame(size=2**60), ["add_hit", "'size'"]),
        (b'{"data_type": "logins", "count": "many"}', ["logins", "count"]),
        (b'{"data_type": "batch"}', ["batch", "'counts'", "missing"]),
        (b'{"data_type": "batch", "counts": []}', ["batch", "counts"]),
        (b'{"data_type": "batch", "counts": {"add_hit": [{"url": "/"}]}}', ["add_hit", "'method'"]),
        (
            b'{"data_type": "batch", "counts": {"batch": [{"counts": {}}]}}',
            ["batch inside a batch"],
        ),
        (b'{"data_type": 7}', ["data_type"]),
        (b'{"data_type": ""}', ["empty data_type"]),
        (b'{"agent_id": "vm-1"}', ["without a data_type"]),
        (b'{"data_type": null}', ["without a data_type"]),
        (b"[1, 2]", ["malformed"]),
        (b'"add_hit"', ["malformed"]),
        (b"", ["malformed"]),
        (b'{"data_type": "add_hit", "elapsed": NaN}', ["malformed"]),
        (b'{"data_type": "add_hit", "elapsed": Infinity}', ["malformed"]),
        (b'{"data_type": "add_hit", "elapsed": 1e400}', ["add_hit", "elapsed"]),
        (b'{"data_type": "add_\xff"}', ["malformed"]),
        (b'{"data_type": "add_hit", "url": "\xc3\x28"}', ["malformed"]),
        (b'{"data_type": "add_hit", "url": ', ["malformed"]),
        (b'{"data_type": "x", "deep": ' + b"[" * 3000 + b"]" * 3000 + b"}", ["malformed"]),
        (b'{"data_type": "x", "exc_info": ' + b"[" * 3000 + b"]" * 3000 + b"}", ["malformed"]),
        (b"[" * 3000 + b"]" * 3000, ["malformed"]),
        (
            b'{"data_type": "x", "error": ' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"}",
            ["malformed"],
        ),
    ],
)
def test_malformed_messages_are_refused_naming_the_field_and_data_type(frame, words):
    with pytest.raises(ProtocolError) as info:
        decode_loads(frame)
    for word in words:
        assert word in str(info.value)


def test_a_frame_over_the_limit_is_refused_unread():
    with pytest.raises(ProtocolError, match="exceeds"):
        decode_loads(b" " * (MAX_FRAME + 1))


def test_unknown_fields_are_ignored():
    frame = hit_frame(hostname="vm", extra={"deep": [1, {"x": None}]}, sequenceID="s")
    assert decode_loads(frame) == [Hit(Origin(), "/", "GET", 200, None, 0.5)]


# -- totality ------------------------------------------------------------------------------

DATA_TYPES = [
    "startTestRun",
    "stopTestRun",
    "startTest",
    "stopTest",
    "addSuccess",
    "addFailure",
    "addError",
    "add_hit",
    "socket_open",
    "socket_close",
    "socket_message",
    "batch",
    "logins",
]
FIELDS = [
    "agent_id",
    "run_id",
    "loads_status",
    "test",
    "exc_info",
    "error",
    "url",
    "method",
    "status",
    "started",
    "elapsed",
    "size",
    "value",
    "count",
    "counts",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["2026-11-22T01:30:03.071Z", "None", "", "2,2,1,1", "<class 'E'>", "GET"])
)


def _nest(inner):
    # A named function, not a lambda: hypothesis reads the source of ``extend`` to check
    # that it recurses, and a multi-line lambda's source is not always found.
    return st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(DATA_TYPES + FIELDS) | st.text(max_size=4), inner, max_size=4
    )


values = st.recursive(scalars, _nest, max_leaves=10)
messages = st.builds(
    lambda data_type, fields: (
        {"data_type": data_type, **fields} if data_type is not ... else fields
    ),
    st.sampled_from([*DATA_TYPES, ...]) | values,
    st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=4), values, max_size=8),
)
batches = st.builds(
    lambda counts: {"data_type": "batch", "agent_id": "a", "counts": counts},
    st.dictionaries(
        st.sampled_from(DATA_TYPES) | st.text(max_size=4),
        st.lists(st.dictionaries(st.sampled_from(FIELDS), values, max_size=6), max_size=3) | values,
        max_size=4,
    ),
)
EVENT_TYPES = (Hit, TEvent, SocketEvent, CounterEvent, Progress)
VALID = [json.loads(frame) for frame, _ in JS_FRAMES] + [
    PY_BATCH,
    {"data_type": "socket_message", "size": 120},
    {"data_type": "logins", "value": 2},
]


@st.composite
def mutated(draw):
    """A real message with one field replaced by anything, or removed."""
    message = json.loads(json.dumps(draw(st.sampled_from(VALID))))
    target = message
    if message["data_type"] == "batch" and draw(st.booleans()):
        kind = draw(st.sampled_from(sorted(message["counts"])))
        target = message["counts"][kind][0]
    field = draw(st.sampled_from([*FIELDS, "data_type"]))
    if draw(st.booleans()):
        target.pop(field, None)
    else:
        target[field] = draw(values)
    return message


def check_total(message):
    frame = json.dumps(message).encode()  # NaN and Infinity come out as invalid JSON
    try:
        events = decode_loads(frame)
    except ProtocolError:
        return
    assert all(isinstance(e, EVENT_TYPES) for e in events)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_protocol_error(data):
    with contextlib.suppress(ProtocolError):
        decode_loads(data)


@settings(max_examples=100, deadline=None)
@given(messages | batches)
def test_structurally_wrong_messages_raise_only_protocol_error(message):
    check_total(message)


@settings(max_examples=100, deadline=None)
@given(mutated())
def test_real_messages_with_a_field_gone_wrong_raise_only_protocol_error(message):
    check_total(message)


def test_a_refused_message_names_its_sender():
    with pytest.raises(ProtocolError, match=r"'method' is missing \(from agent_id 'vm-7'\)"):
        decode_loads(b'{"data_type": "add_hit", "agent_id": "vm-7", "url": "/"}')
    with pytest.raises(ProtocolError) as e:
        decode_loads(b'{"data_type": "add_hit", "agent_id": "None", "url": "/"}')
    assert "from agent_id" not in str(e.value)


def test_test_run_messages_round_trip():
    frame = encode_test_run(Outcome.START_RUN, "agent-1", "run-1")
    assert decode_loads(frame) == [TEvent(Origin("agent-1", "run-1"), Outcome.START_RUN)]
    with pytest.raises(ValueError, match="not a test-run message"):
        encode_test_run(Outcome.SUCCESS, "a", "r")
