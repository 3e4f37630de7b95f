"""OCT turret results (0.2.8's bytes and the seed's form) -> Transaction; anything
malformed -> ProtocolError, nothing else."""

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cannonade.errors import ProtocolError
from cannonade.protocol.deltas import MAX_FRAME
from cannonade.protocol.foreign import Origin, Transaction
from cannonade.protocol.loads import MAX_ID, MAX_NAME, MAX_TEXT
from cannonade.protocol.oct import MAX_TIMERS, decode_oct_result

# OCT 0.2.8, as a cannon pushed it: no turret_name, whole-second epoch, error text.
WIRE = (
    b'{"elapsed": 1.254225492477417, "epoch": 1795310784.0, "scriptrun_time": 0.2504160404205322,'
    b' "error": "boom 3", "custom_timers": {"a timer": 0.050168752670288086}}'
)
# The seed's example: a turret name, an int epoch, two timers.
SEED = {
    "turret_name": "my_turret",
    "elapsed": 12.48,
    "epoch": 1453731738,
    "scriptrun_time": 1.2,
    "error": "My custom error",
    "custom_timers": {"Example_timer": 0.6, "Other timer": 0.8},
}


def frame(**fields):
    base = {"elapsed": 1.0, "epoch": 1795310784, "scriptrun_time": 0.25}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def test_the_wire_sample_field_by_field():
    t = decode_oct_result(WIRE)
    assert t == Transaction(
        Origin("", ""),
        epoch=1795310784.0,
        duration=0.2504160404205322,
        elapsed=1.254225492477417,
        error="boom 3",
        timers={"a timer": 0.050168752670288086},
    )
    assert type(t.epoch) is float


def test_the_seed_sample():
    t = decode_oct_result(json.dumps(SEED).encode())
    assert t == Transaction(
        Origin("my_turret", ""),
        1453731738.0,
        1.2,
        12.48,
        "My custom error",
        {"Example_timer": 0.6, "Other timer": 0.8},
    )
    assert type(t.epoch) is float


def test_success_is_an_empty_or_null_error_and_timers_are_optional():
    assert decode_oct_result(frame(error="")) == Transaction(Origin(), 1795310784.0, 0.25, 1.0)
    assert decode_oct_result(frame(error=None)).error == ""
    assert decode_oct_result(frame(custom_timers=None)).timers == {}
    assert decode_oct_result(frame(custom_timers={})).timers == {}


def test_unknown_fields_are_ignored():
    t = decode_oct_result(frame(turret="navigation", extra=[{"deep": [1, 2]}]))
    assert t == Transaction(Origin(), 1795310784.0, 0.25, 1.0)


def test_long_text_is_cut():
    t = decode_oct_result(frame(error="e" * 100_000, custom_timers={"t" * 10_000: 0.1}))
    assert t.error == "e" * MAX_TEXT
    assert t.timers == {"t" * MAX_NAME: 0.1}


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (frame(elapsed=...), ["'elapsed'", "missing"]),
        (frame(epoch=...), ["'epoch'", "missing"]),
        (frame(scriptrun_time=...), ["'scriptrun_time'", "missing"]),
        (frame(scriptrun_time=-0.5), ["'scriptrun_time'"]),
        (frame(scriptrun_time=1e300), ["'scriptrun_time'"]),
        (frame(scriptrun_time="1.2"), ["scriptrun_time"]),
        (frame(elapsed=True), ["elapsed"]),
        (frame(epoch=-1), ["'epoch'"]),
        (frame(epoch=1795310784000), ["'epoch'", "not epoch seconds"]),
        (frame(epoch="1453731738"), ["epoch"]),
        (frame(epoch=10**40), ["epoch"]),
        (frame(error=42), ["error"]),
        (frame(turret_name=7), ["turret_name"]),
        (frame(turret_name="n" * (MAX_ID + 1)), ["'turret_name'"]),
        (frame(custom_timers=[0.5]), ["custom_timers"]),
        (frame(custom_timers={"a": -1}), ["custom_timers['a']"]),
        (frame(custom_timers={"a": "slow"}), ["custom_timers"]),
        (frame(custom_timers={"a": None}), ["custom_timers"]),
        (frame(custom_timers={"": 0.5}), ["without a name"]),
        (frame(custom_timers={str(i): 0.1 for i in range(MAX_TIMERS + 1)}), ["more than"]),
        (b'{"elapsed": 1, "epoch": 2, "scriptrun_time": NaN}', ["malformed"]),
        (b'{"elapsed": 1, "epoch": 2, "scriptrun_time": 1e999}', ["scriptrun_time"]),
        (b'{"elapsed": 1, "epoch": 2, "scriptrun_time": 3, "error": "\xff"}', ["malformed"]),
        (b'{"x": ' + b"[" * 3000 + b"]" * 3000 + b"}", ["malformed"]),
        (b"[]", ["malformed"]),
        (b"", ["malformed"]),
    ],
)
def test_malformed_results_are_refused_naming_the_field(data, words):
    with pytest.raises(ProtocolError) as info:
        decode_oct_result(data)
    for word in words:
        assert word in str(info.value)


def test_a_frame_over_the_limit_is_refused_unread():
    with pytest.raises(ProtocolError, match="exceeds"):
        decode_oct_result(b" " * (MAX_FRAME + 1))


FIELDS = ["turret_name", "elapsed", "epoch", "scriptrun_time", "error", "custom_timers"]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
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
        decode_oct_result(data)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(FIELDS), values, max_size=7), st.sampled_from(FIELDS))
def test_structurally_wrong_results_raise_only_protocol_error(fields, drop):
    message = {**SEED, **fields}
    message.pop(drop, None)
    try:
        t = decode_oct_result(json.dumps(message).encode())
    except ProtocolError:
        return
    assert isinstance(t, Transaction)
