"""The HQ <-> agent control dialect: OCT's JSON commands and status messages, plus
cannonade's sequenced commands and report, and the frame decoders' totality."""

import contextlib
import json

import msgspec
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cannonade.config import (
    ArrivalRate,
    Cycles,
    EngineOptions,
    HttpOptions,
    RampingVus,
    SharedIterations,
    Stage,
)
from cannonade.errors import ProtocolError
from cannonade.model.metrics import IntervalDelta, Key, SourceId
from cannonade.protocol.control import (
    MAX_DEPTH,
    SEQUENCED,
    Ack,
    AgentReport,
    AgentTotals,
    BundleWire,
    Command,
    PartitionWire,
    Prepare,
    RunRef,
    SetupResult,
    Start,
    Status,
    Teardown,
    bundle_wire,
    decode_command,
    decode_status,
    encode_command,
    encode_status,
    split_channel,
)
from cannonade.protocol.deltas import MAX_FRAME, encode_delta
from cannonade.protocol.options import options_from_wire, options_to_wire
from cannonade.protocol.results import decode_result_frame

UUID = "3d98c23d-5ed5-4793-a5a7-94d59a941792"
OCT_UUID = "d7b8a1cc-639a-405c-9b16-62ce5cd66f36"

# -- commands ---------------------------------------------------------------------------

BUNDLE = bundle_wire("scenario.py", "ab" * 32, b"\x00\x01binary\xffdata")
PREPARE = Prepare(
    run_id="run-1",
    seq=1,
    bundle=BUNDLE,
    # As JSON has them: lists, not tuples.
    options=json.loads(json.dumps(options_to_wire(EngineOptions(Cycles(users=(1, 2)), seed=3)))),
    partition=PartitionWire(3, 2, 5),
)

EVERY_COMMAND: list[tuple[Command, msgspec.Struct | None]] = [
    (Command.STATUS_REQUEST, None),
    (Command.PREPARE, PREPARE),
    (Command.SETUP, RunRef(run_id="run-1", seq=2)),
    (Command.START, Start(run_id="run-1", seq=3, start_at=1_700_000_001.5, setup_data=None)),
    (
        Command.START,
        Start(run_id="run-1", seq=3, start_at=1_700_000_001.5, setup_data={"token": [1, "x"]}),
    ),
    (Command.STOP, RunRef(run_id="run-1", seq=4)),
    (Command.KILL, RunRef(run_id="run-1", seq=5)),
    (Command.TEARDOWN, Teardown(run_id="run-1", seq=6, setup_data={"token": "t"})),
    (Command.RELEASE, RunRef(run_id="run-1", seq=7)),
    (Command.ACK, Ack(run_id="run-1", upto=41)),
]


def test_every_command_is_listed():
    assert {c for c, _ in EVERY_COMMAND} == set(Command)
    assert set(SEQUENCED) | {Command.ACK, Command.STATUS_REQUEST} == set(Command)


@pytest.mark.parametrize(("command", "msg"), EVERY_COMMAND)
@pytest.mark.parametrize("channel", ["", UUID])
def test_command_round_trip(command, msg, channel):
    frame = encode_command(command, msg, channel)
    assert frame.startswith(channel.encode() + b" ")
    got_channel, body = split_channel(frame)
    assert got_channel == channel
    got_command, got_msg = decode_command(body)
    assert got_command is command
    if msg is None:
        assert got_msg is command  # OCT's form: the bare command
    else:
        assert type(got_msg) is type(msg)
        assert got_msg == msg


def test_prepare_bundle_bytes_survive_json():
    _, body = split_channel(encode_command(Command.PREPARE, PREPARE, UUID))
    _, msg = decode_command(body)
    assert isinstance(msg, Prepare)
    assert msg.bundle.raw() == b"\x00\x01binary\xffdata"
    assert msg.partition == PartitionWire(first=3, cannons=2, total=5)


@pytest.mark.parametrize("data", ["!!!not base64", "YWJj\n", "YQ", "é"])
def test_bad_bundle_data_is_a_protocol_error(data):
    with pytest.raises(ProtocolError, match="base64"):
        BundleWire("s.py", "0" * 64, data).raw()


@pytest.mark.parametrize(
    ("frame", "channel", "command"),
    [
        (b' {"command": "status_request", "msg": null}', "", Command.STATUS_REQUEST),
        (b' {"command": "start", "msg": "open fire"}', "", Command.START),
        (b' {"command": "kill", "msg": null}', "", Command.KILL),
        (b' {"command": "stop", "msg": null}', "", Command.STOP),
        (f'{UUID} {{"command": "start", "msg": "open fire"}}'.encode(), UUID, Command.START),
        (b'{"command": "start", "msg": "open fire"}', "", Command.START),  # no channel at all
    ],
)
def test_oct_command_frames_decode_to_the_bare_command(frame, channel, command):
    got_channel, body = split_channel(frame)
    assert got_channel == channel
    assert decode_command(body) == (command, command)


@pytest.mark.parametrize(
    "msg", ["open fire", None, 1, [1, 2], True, {"run_id": "r", "seq": 1, "other": 2}]
)
def test_oct_msgs_of_other_shapes(msg):
    """A non-object msg is OCT's; an object msg on a cannonade command must be ours."""
    body = json.dumps({"command": "status_request", "msg": msg}).encode()
    assert decode_command(body) == (Command.STATUS_REQUEST, Command.STATUS_REQUEST)
    body = json.dumps({"command": "stop", "msg": msg}).encode()
    expected = RunRef(run_id="r", seq=1) if isinstance(msg, dict) else Command.STOP
    assert decode_command(body) == (Command.STOP, expected)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b'{"command": "fire", "msg": null}', "unknown command 'fire'"),
        (b'{"msg": null}', "malformed command"),
        (b'{"command": 3}', "malformed command"),
        (b"[]", "malformed command"),
        (b"", "malformed command"),
        (b'{"command": "start", "msg": {"run_id": "r", "seq": 1}}', "command start"),
        (b'{"command": "ack", "msg": {"run_id": "r", "upto": "3"}}', "command ack"),
        (b'{"command": "prepare", "msg": {"run_id": "r", "seq": 1}}', "command prepare"),
        (b'{"command": "stop", "msg": {"run_id": "r", "seq": 1.5}}', "command stop"),
    ],
)
def test_malformed_commands(body, match):
    with pytest.raises(ProtocolError, match=match):
        decode_command(body)


@pytest.mark.parametrize("frame", [b"", b"nochannel", b"\xff\xfe {}", "é {}".encode()])
def test_malformed_channels(frame):
    with pytest.raises(ProtocolError):
        split_channel(frame)


# -- status ---------------------------------------------------------------------------


def cannonade_status(**report) -> Status:
    """What Agent.status() builds mid-run."""
    return Status(
        turret="agent-a",
        status="running",
        uuid=UUID,
        rampup=2.5,
        script="scenario.py",
        cannons=4,
        cannonade=AgentReport(
            hostname="host-1",
            pid=4242,
            run_id="run-1",
            ack=3,
            hooks=["setup", "teardown"],
            setup=SetupResult(True, {"token": "abc", "ids": [1, 2]}),
            totals=AgentTotals(
                deltas=12,
                counters={"http_reqs": 300.0},
                trend_counts={"http_req_duration": 300},
                dropped_deltas=1,
                cannon_gaps=2,
            ),
            error="",
            buffered=5,
            **report,
        ),
    )


@pytest.mark.parametrize(
    "status",
    [
        cannonade_status(),
        Status(status="ready", uuid=UUID, cannonade=AgentReport()),
        Status(status="failed", uuid=UUID, cannonade=AgentReport(run_id="r", error="boom")),
        Status(turret="t", status="READY", uuid=OCT_UUID, rampup="30", cannons="250"),
        Status(turret="t", status="READY", uuid=OCT_UUID, rampup=30.0, cannons=250),
    ],
)
def test_status_round_trip(status):
    frame = encode_status(status)
    assert frame.startswith(b"{")
    assert decode_result_frame(frame) == status
    assert decode_status(frame) == status


OCT_NUMBERS = (
    b'{"turret": "navigation", "status": "READY", "uuid": "d7b8a1cc-639a-405c-9b16-'
    b'62ce5cd66f36", "rampup": 30, "script": "tests/navigation.py", "cannons": 250}'
)
OCT_STRINGS = (
    b'{"turret": "navigation", "status": "READY", "uuid": "d7b8a1cc-639a-405c-9b16-'
    b'62ce5cd66f36", "rampup": "30", "script": "tests/navigation.py", "cannons": "250"}'
)


@pytest.mark.parametrize("frame", [OCT_NUMBERS, OCT_STRINGS])
def test_oct_status_samples_decode(frame):
    status = decode_result_frame(frame)
    assert isinstance(status, Status)
    assert status.turret == "navigation"
    assert status.status == "READY"
    assert status.uuid == OCT_UUID
    assert status.script == "tests/navigation.py"
    assert status.cannon_count == 250
    assert float(status.rampup) == 30.0
    assert status.cannonade is None


def test_oct_status_with_extra_fields_and_only_required_ones():
    status = decode_status(b'{"status": "Aborted", "uuid": "u-1", "hq_address": "x", "n": 1}')
    assert (status.status, status.uuid, status.turret, status.cannon_count) == (
        "Aborted",
        "u-1",
        "",
        0,
    )


@pytest.mark.parametrize(
    ("cannons", "count"), [("250", 250), (" 7 ", 7), ("-3", 0), (-3, 0), ("lots", 0), ("1e3", 0)]
)
def test_cannon_count_is_never_negative_or_an_exception(cannons, count):
    assert Status(status="READY", uuid="u", cannons=cannons).cannon_count == count


@pytest.mark.parametrize(
    ("frame", "match"),
    [
        (b'{"status": "READY"}', "malformed status"),
        (b'{"status": "READY", "uuid": ""}', "uuid"),
        (b'{"status": "READY", "uuid": "' + b"u" * 1001 + b'"}', "uuid"),
        (b'{"status": 1, "uuid": "u"}', "malformed status"),
        (b'{"status": "READY", "uuid": "u", "cannons": [1]}', "malformed status"),
        (b'{"status": "READY", "uuid": "u", "cannonade": {"ack": "x"}}', "malformed status"),
    ],
)
def test_malformed_status(frame, match):
    # The status decoder names what is wrong; the HQ's dispatcher refuses them too.
    with pytest.raises(ProtocolError, match=match):
        decode_status(frame)
    with pytest.raises(ProtocolError):
        decode_result_frame(frame)


def test_result_frame_tells_a_delta_from_a_status():
    delta = IntervalDelta(SourceId(UUID, 0), 7, 1_700_000_000, counters={Key("http_reqs"): 3.0})
    delta.run_id = "run-1"
    got = decode_result_frame(encode_delta(delta))
    assert isinstance(got, IntervalDelta)
    assert (got.source, got.seq, got.second, got.run_id) == (
        SourceId(UUID, 0),
        7,
        1_700_000_000,
        "run-1",
    )
    assert got.counters == {Key("http_reqs"): 3.0}


def test_empty_result_frame():
    with pytest.raises(ProtocolError, match="empty"):
        decode_result_frame(b"")


# -- oversized frames -----------------------------------------------------------------


def _json_of_size(prefix: bytes, size: int) -> bytes:
    """``prefix`` + a string + ``}``: valid JSON of exactly ``size`` bytes."""
    return prefix + b'"' + b"a" * (size - len(prefix) - 3) + b'"}'


def test_oversized_command_is_refused():
    body = _json_of_size(b'{"command": "start", "msg": ', MAX_FRAME + 1)
    assert len(body) == MAX_FRAME + 1
    with pytest.raises(ProtocolError, match="exceeds"):
        decode_command(body)
    _, got = split_channel(b" " + body)
    with pytest.raises(ProtocolError, match="exceeds"):
        decode_command(got)


def test_oversized_status_is_refused():
    frame = _json_of_size(b'{"status": "READY", "uuid": "u", "extra": ', MAX_FRAME + 1)
    assert len(frame) == MAX_FRAME + 1
    with pytest.raises(ProtocolError, match="exceeds"):
        decode_result_frame(frame)
    with pytest.raises(ProtocolError, match="exceeds"):
        decode_status(frame)
    with pytest.raises(ProtocolError, match="exceeds"):
        decode_result_frame(b"\x93" + b"\x00" * MAX_FRAME)  # not JSON: the delta path


def test_a_frame_of_exactly_max_size_is_decoded():
    frame = _json_of_size(b'{"status": "READY", "uuid": "u", "extra": ', MAX_FRAME)
    assert len(frame) == MAX_FRAME
    assert decode_status(frame).uuid == "u"
    assert decode_result_frame(frame).uuid == "u"


# -- totality: decoders raise ProtocolError and nothing else ----------------------------

DECODERS = [
    decode_command,
    split_channel,
    decode_result_frame,
    decode_status,
    lambda b: decode_command(split_channel(b)[1]),
]


def _only_protocol_errors(frame: bytes) -> None:
    for decode in DECODERS:
        try:
            got = decode(frame)
        except ProtocolError:
            continue
        # Whatever decodes is usable without raising anything else.
        if isinstance(got, tuple) and len(got) == 2 and isinstance(got[1], Prepare):
            with contextlib.suppress(ProtocolError):
                got[1].bundle.raw()
            with contextlib.suppress(ProtocolError):
                options_from_wire(got[1].options)
        if isinstance(got, Status):
            assert got.cannon_count >= 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
@example(b"")
@example(b" ")
@example(b"{")
@example(b"\xff")
@example(b"[" * 3000)
@example(b"{" * 3000)
@example(b" " + b"[" * 3000)
def test_arbitrary_bytes_raise_only_protocol_error(frame):
    _only_protocol_errors(frame)


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
    | st.sampled_from(["ready", "READY", "start", "open fire", "run-1", "", "Cycles", UUID])
)
# Any JSON value, shallow (deep nesting has its own test below).
ANY = (
    SCALARS
    | st.lists(SCALARS, max_size=3)
    | st.dictionaries(st.text(max_size=4), SCALARS, max_size=3)
)


def fields(**right):
    """An object with each field absent, of the right type, or of any other type, plus
    maybe a stranger field."""
    return st.fixed_dictionaries(
        {}, optional={name: strat | ANY for name, strat in right.items()} | {"zz": ANY}
    )


_int = st.integers(-2, 2**63)
_text = st.sampled_from(["run-1", "", "s.py", "YWJj", UUID])
MODEL = fields(
    type=st.sampled_from(["Cycles", "RampingVus", "SharedIterations", "ArrivalRate", "x"]),
    users=st.lists(_int, max_size=3),
    duration=st.floats(allow_nan=False),
    stages=st.lists(fields(duration=st.floats(), target=st.floats()), max_size=2),
    rate=st.floats(),
    vus=_int,
    iterations=_int,
)
OPTIONS_WIRE = fields(
    model=MODEL,
    http=fields(timeout=st.floats(), headers=st.lists(st.lists(_text, max_size=3), max_size=2)),
    graceful_stop=st.floats(),
    max_duration=st.floats(),
    seed=_int,
)
COMMAND_MSG = fields(
    run_id=_text,
    seq=_int,
    upto=_int,
    start_at=st.floats(),
    setup_data=ANY,
    bundle=fields(filename=_text, sha256=_text, data=_text),
    partition=fields(first=_int, cannons=_int, total=_int),
    options=OPTIONS_WIRE,
)
COMMAND = fields(command=st.sampled_from([c.value for c in Command]), msg=COMMAND_MSG)
REPORT = fields(
    version=_int,
    hostname=_text,
    pid=_int,
    run_id=_text,
    ack=_int,
    hooks=st.lists(_text, max_size=2),
    setup=fields(ok=st.booleans(), data=ANY, error=_text),
    totals=fields(
        deltas=_int,
        counters=st.dictionaries(_text, st.floats(), max_size=2),
        trend_counts=st.dictionaries(_text, _int, max_size=2),
        dropped_deltas=_int,
        cannon_gaps=_int,
    ),
    error=_text,
    buffered=_int,
)
STATUS = fields(
    turret=_text,
    status=st.sampled_from(["READY", "ready", "failed", "Aborted"]),
    uuid=st.sampled_from([UUID, "", "x" * 1001]),
    rampup=st.floats() | st.sampled_from(["30", "x"]),
    script=_text,
    cannons=_int | st.sampled_from(["250", "-1", "x", "9" * 5000]),
    cannonade=REPORT,
)
JSON_FRAMES = (COMMAND | STATUS).map(lambda v: json.dumps(v, allow_nan=True).encode())


@st.composite
def damaged(draw, frames):
    frame = draw(frames)
    how = draw(st.sampled_from(["as is", "truncate", "bad utf-8", "channel"]))
    if how == "truncate" and frame:
        frame = frame[: draw(st.integers(0, len(frame) - 1))]
    elif how == "bad utf-8":
        pos = draw(st.integers(0, len(frame)))
        frame = (
            frame[:pos] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + frame[pos:]
        )
    elif how == "channel":
        frame = draw(st.sampled_from([b" ", UUID.encode() + b" ", b"\xff "])) + frame
    return frame


@settings(max_examples=400, deadline=None)
@given(damaged(JSON_FRAMES))
def test_structurally_wrong_json_raises_only_protocol_error(frame):
    _only_protocol_errors(frame)


# -- options ----------------------------------------------------------------------------

OPTIONS = [
    EngineOptions(),
    EngineOptions(
        Cycles(users=(1, 5, 10), duration=30.0, rampup=2.0),
        HttpOptions(base_url="http://t", timeout=3.0, headers=(("X-A", "1"), ("X-B", "2"))),
        graceful_stop=5.0,
        max_duration=100.0,
        seed=7,
    ),
    EngineOptions(Cycles(users=(3,), hits=100)),
    EngineOptions(RampingVus(stages=(Stage(10.0, 5.0), Stage(5.0, 0.0)), start_vus=1)),
    EngineOptions(SharedIterations(vus=4, iterations=1000)),
    EngineOptions(
        ArrivalRate(rate=50.0, stages=(Stage(10.0, 100.0),), pre_allocated_vus=5, max_vus=9)
    ),
    EngineOptions(ArrivalRate(rate=50.0, duration=10.0)),
]


def _templates():
    out = [json.loads(split_channel(encode_command(c, m))[1]) for c, m in EVERY_COMMAND]
    for options in OPTIONS:
        msg = msgspec.structs.replace(PREPARE, options=options_to_wire(options))
        out.append(json.loads(split_channel(encode_command(Command.PREPARE, msg))[1]))
    out.append(json.loads(encode_status(cannonade_status())))
    out += [json.loads(OCT_NUMBERS), json.loads(OCT_STRINGS)]
    return out


TEMPLATES = _templates()


def _paths(value, prefix=()):
    if prefix:
        yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


@st.composite
def mutated(draw, templates):
    """A valid document with one to three fields replaced by any JSON value, or removed."""
    doc = json.loads(json.dumps(draw(st.sampled_from(templates))))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        if not paths:
            break
        *parent_path, last = draw(st.sampled_from(paths))
        parent = doc
        for p in parent_path:
            parent = parent[p]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[last]
        else:
            parent[last] = draw(ANY)
    return doc


def test_templates_are_valid():
    for doc in TEMPLATES:
        frame = json.dumps(doc).encode()
        if "command" in doc:
            _, msg = decode_command(frame)
            if isinstance(msg, Prepare):
                options_from_wire(msg.options)
        else:
            decode_status(frame)


@settings(max_examples=500, deadline=None)
@given(damaged(mutated(TEMPLATES).map(lambda d: json.dumps(d, allow_nan=True).encode())))
def test_valid_messages_with_wrong_fields_raise_only_protocol_error(frame):
    _only_protocol_errors(frame)


@settings(max_examples=300, deadline=None)
@given(mutated([options_to_wire(o) for o in OPTIONS]))
def test_options_with_wrong_fields_raise_only_protocol_error(raw):
    with contextlib.suppress(ProtocolError):
        options_from_wire(raw)


DEEP = 3000


@pytest.mark.parametrize(
    "frame",
    [
        b"{" + b"[" * DEEP,
        b'{"a": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        b'{"command": "start", "msg": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        b'{"command": "start", "msg": ' + b'{"a": ' * DEEP + b"1" + b"}" * DEEP + b"}",
        b'{"command": "start", "msg": {"run_id": "r", "seq": 1, "start_at": 1, "setup_data": '
        + b"[" * DEEP
        + b"]" * DEEP
        + b"}}",
        b'{"command": "prepare", "msg": {"options": ' + b"[" * DEEP + b"]" * DEEP + b"}}",
        b'{"command": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        b'{"status": "READY", "uuid": "u", "cannonade": {"setup": {"ok": true, "data": '
        + b"[" * DEEP
        + b"]" * DEEP
        + b"}}}",
        b'{"status": "READY", "uuid": "u", "extra": ' + b"[" * DEEP + b"]" * DEEP + b"}",
    ],
    ids=lambda f: f[:40].decode(errors="replace"),
)
def test_deep_nesting_raises_only_protocol_error(frame):
    assert split_channel(frame) == ("", frame)  # a bare JSON frame: nothing to split
    for decode in (decode_command, decode_result_frame, decode_status):
        with pytest.raises(ProtocolError):
            decode(frame)


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _deep_stack(frames: int, f):
    return f() if frames == 0 else _deep_stack(frames - 1, f)


def test_free_form_values_nest_at_most_max_depth():
    def status(data: bytes) -> bytes:
        return (
            b'{"status": "setup_done", "uuid": "u", "cannonade": {"run_id": "r", '
            b'"setup": {"ok": true, "data": ' + data + b"}}}"
        )

    def start(data: bytes) -> bytes:
        return (
            b'{"command": "start", "msg": {"run_id": "r", "seq": 1, "start_at": 1, '
            b'"setup_data": ' + data + b"}}"
        )

    data = decode_status(status(_nested(MAX_DEPTH))).cannonade.setup.data
    assert data == json.loads(_nested(MAX_DEPTH))
    with pytest.raises(ProtocolError, match="nested deeper than 64"):
        decode_status(status(_nested(MAX_DEPTH + 1)))
    # what an agent may report, the HQ may send back in start
    _, msg = decode_command(start(_nested(MAX_DEPTH)))
    assert msg.setup_data == json.loads(_nested(MAX_DEPTH))
    with pytest.raises(ProtocolError, match="nested deeper than 64"):
        decode_command(start(_nested(MAX_DEPTH + 1)))
    deep_dict = b'{"a": ' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1)
    with pytest.raises(ProtocolError, match="nested deeper"):
        decode_status(status(deep_dict))
    wide = b"[" + b", ".join([_nested(10)] * 1000) + b"]"
    assert len(decode_status(status(wide)).cannonade.setup.data) == 1000


def test_whatever_decodes_can_be_encoded_again_from_a_deeper_stack():
    """Setup data travels agent -> HQ (status) -> agents (start) -> cannons: a value that
    only just decoded must not raise RecursionError when the HQ or an agent encodes it
    again a few frames deeper (it would kill their loop)."""

    def frame(depth: int) -> bytes:
        return (
            b'{"status": "setup_done", "uuid": "u", "cannonade": {"run_id": "r", '
            b'"setup": {"ok": true, "data": ' + _nested(depth) + b"}}}"
        )

    lo, hi = 0, 5000  # the deepest setup data that decodes here
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            decode_status(frame(mid))
            lo = mid
        except ProtocolError:
            hi = mid - 1
    data = decode_status(frame(lo)).cannonade.setup.data
    cmd = _deep_stack(
        30,
        lambda: encode_command(
            Command.START, Start(run_id="r", seq=1, start_at=1.0, setup_data=data), "u"
        ),
    )
    _, start = decode_command(split_channel(cmd)[1])
    _deep_stack(30, lambda: msgspec.json.encode({"k": "start", "setup_data": start.setup_data}))


@pytest.mark.parametrize(
    "frame",
    [
        b'{"command": "start", "msg": {"run_id": "r", "seq": 1, "start_at": 1e999}}',
        b'{"command": "start", "msg": {"run_id": "r", "seq": 1, "start_at": NaN}}',
        b'{"command": "start", "msg": {"run_id": "r", "seq": 1, "start_at": Infinity}}',
        b'{"command": "start", "msg": "' + b"\xff" + b'"}',
        b'{"command": "st\xc3rt", "msg": null}',
        b'{"status": "READY", "uuid": "u", "rampup": 1e999}',
        b'{"status": "READY", "uuid": "u", "rampup": NaN}',
        b'{"status": "READY", "uuid": "u\xed\xa0\x80"}',
    ],
)
def test_numbers_json_cannot_hold_and_bad_utf8_are_refused(frame):
    with pytest.raises(ProtocolError):
        decode_result_frame(frame) if frame.startswith(b'{"status"') else decode_command(frame)


def test_huge_integers_do_not_escape_as_other_errors():
    huge = b"1" + b"0" * 400
    _, ack = decode_command(b'{"command": "ack", "msg": {"run_id": "r", "upto": ' + huge + b"}}")
    assert ack == Ack(run_id="r", upto=10**400)
    status = decode_status(b'{"status": "READY", "uuid": "u", "cannons": "' + b"9" * 5000 + b'"}')
    assert status.cannon_count == 0  # int() refuses > 4300 digits: not a count


@pytest.mark.parametrize("options", OPTIONS)
def test_options_round_trip_through_json(options):
    wire = msgspec.json.decode(msgspec.json.encode(options_to_wire(options)))
    back = options_from_wire(wire)
    assert back == options
    assert type(back.model) is type(options.model)


@pytest.mark.parametrize(
    "raw",
    [
        {},
        {"model": {"type": "Cycles"}},
        {"model": {"type": "Nope"}, "http": {}, "graceful_stop": 1, "max_duration": 1},
        {"model": {"users": [1]}, "http": {}, "graceful_stop": 1, "max_duration": 1},
        {"model": 5, "http": {}, "graceful_stop": 1, "max_duration": 1},
        {"model": "ab", "http": {}, "graceful_stop": 1, "max_duration": 1},
        {"model": [[1, 2, 3]], "http": {}, "graceful_stop": 1, "max_duration": 1},
        {"model": {"type": ["Cycles"]}, "http": {}, "graceful_stop": 1, "max_duration": 1},
        {"model": {"type": "Cycles", "users": "x"}, "http": {}, "graceful_stop": 1},
        {"model": {"type": "Cycles"}, "http": [], "graceful_stop": 1, "max_duration": 1},
        {"model": {"type": "Cycles"}, "http": {}, "graceful_stop": "1", "max_duration": 1},
    ],
)
def test_malformed_options_raise_only_protocol_error(raw):
    with pytest.raises(ProtocolError, match="run options are malformed"):
        options_from_wire(raw)


def test_lanes_travel_in_the_run_options():
    from cannonade.config import ArrivalRate, Lane, options_duration

    lanes = (
        Lane("a", Cycles(users=(2,), duration=3.0), start_time=0.0, graceful_stop=5.0),
        Lane("b", ArrivalRate(rate=4.0, duration=2.0), start_time=2.5, graceful_stop=1.0),
    )
    options = EngineOptions(lanes[0].model, lanes=lanes)
    back = options_from_wire(json.loads(json.dumps(options_to_wire(options))))
    assert back.lanes == lanes
    assert options_duration(back) == 4.5  # the longest lane: b starts at 2.5 s, runs 2 s
    with pytest.raises(ProtocolError, match="run options are malformed"):
        options_from_wire({**options_to_wire(options), "lanes": [{"name": "x"}]})
