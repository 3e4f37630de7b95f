"""The wire form of an :class:`IntervalDelta` (cannon -> agent -> HQ).

MessagePack via msgspec, with typed structs so that decoding *is* validation: a frame
that is not exactly this shape, or whose numbers contradict each other (bucket counts
that do not add up to the count, an index outside the histogram), is refused with a
:class:`ProtocolError` and never reaches the aggregator.
"""

from __future__ import annotations

import math

import msgspec
import numpy as np

from cannonade.errors import ProtocolError
from cannonade.model.histogram import N_BUCKETS, SparseBins
from cannonade.model.metrics import (
    ErrorGroup,
    IntervalDelta,
    Key,
    Kind,
    SourceId,
    TrendDelta,
)

VERSION = 2
MAX_FRAME = 16 * 1024 * 1024


class _Trend(msgspec.Struct, array_like=True, frozen=True):
    key: tuple[str, str, str, str]
    count: int
    sum: float
    min: float
    max: float
    index: bytes  # little-endian int32
    counts: bytes  # little-endian int64


class _Value(msgspec.Struct, array_like=True, frozen=True):
    key: tuple[str, str, str, str]
    value: float


class _Error(msgspec.Struct, array_like=True, frozen=True):
    kind: str
    message: str
    count: int
    sample: str


class _Delta(msgspec.Struct, array_like=True, frozen=True, tag="delta", tag_field="t"):
    version: int
    run: str
    agent: str
    cannon: int
    seq: int
    second: int
    final: bool
    trends: list[_Trend]
    counters: list[_Value]
    gauges: list[_Value]
    errors: list[_Error]
    kinds: dict[str, str]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Delta)
_I32 = np.dtype("<i4")
_I64 = np.dtype("<i8")


def encode_delta(delta: IntervalDelta) -> bytes:
    return _encoder.encode(
        _Delta(
            VERSION,
            delta.run_id,
            delta.source.agent,
            delta.source.cannon,
            delta.seq,
            delta.second,
            delta.final,
            [
                _Trend(
                    tuple(k),  # type: ignore[arg-type]
                    t.count,
                    t.sum,
                    t.min,
                    t.max,
                    t.bins.index.astype(_I32).tobytes(),
                    t.bins.count.astype(_I64).tobytes(),
                )
                for k, t in delta.trends.items()
            ],
            [_Value(tuple(k), v) for k, v in delta.counters.items()],  # type: ignore[arg-type]
            [_Value(tuple(k), v) for k, v in delta.gauges.items()],  # type: ignore[arg-type]
            [_Error(e.kind, e.message, e.count, e.sample) for e in delta.errors],
            {m: k.value for m, k in delta.custom_kinds.items()},
        )
    )


def decode_delta(frame: bytes) -> IntervalDelta:
    if len(frame) > MAX_FRAME:
        raise ProtocolError(f"delta frame of {len(frame)} bytes exceeds {MAX_FRAME}")
    try:
        raw = _decoder.decode(frame)
    except (msgspec.MsgspecError, ValueError) as e:
        # ValueError: msgspec lets UnicodeDecodeError through for invalid UTF-8.
        raise ProtocolError(f"malformed delta: {e}") from None
    if raw.version != VERSION:
        raise ProtocolError(f"delta version {raw.version} is not {VERSION}")
    if raw.seq < 0 or raw.cannon < 0:
        raise ProtocolError("delta seq and cannon must be >= 0")
    kinds: dict[str, Kind] = {}
    for metric, kind in raw.kinds.items():
        try:
            kinds[metric] = Kind(kind)
        except ValueError:
            raise ProtocolError(f"unknown metric kind {kind!r} for {metric!r}") from None
    return IntervalDelta(
        SourceId(raw.agent, raw.cannon),
        raw.seq,
        raw.second,
        trends={Key(*t.key): _trend(t) for t in raw.trends},
        counters={Key(*c.key): _finite(c.value, c.key) for c in raw.counters},
        gauges={Key(*g.key): _finite(g.value, g.key) for g in raw.gauges},
        errors=[_error(e) for e in raw.errors],
        custom_kinds=kinds,
        final=raw.final,
        run_id=raw.run,
    )


def _finite(value: float, key: tuple[str, ...]) -> float:
    if not math.isfinite(value):
        raise ProtocolError(f"value of {key[0]!r} is not finite")
    return value


def _error(e: _Error) -> ErrorGroup:
    if e.count < 1:
        raise ProtocolError(f"error group {e.kind!r} has count {e.count}")
    return ErrorGroup(e.kind, e.message, e.count, e.sample)


def _trend(t: _Trend) -> TrendDelta:
    if len(t.index) % 4 or len(t.counts) % 8 or len(t.index) // 4 != len(t.counts) // 8:
        raise ProtocolError(f"trend {t.key[0]!r}: bucket arrays are malformed")
    index = np.frombuffer(t.index, dtype=_I32).astype(np.int32)
    counts = np.frombuffer(t.counts, dtype=_I64).astype(np.int64)
    if index.size and (int(index.min()) < 0 or int(index.max()) >= N_BUCKETS):
        raise ProtocolError(f"trend {t.key[0]!r}: bucket index out of range")
    if counts.size and int(counts.min()) < 0:
        raise ProtocolError(f"trend {t.key[0]!r}: negative bucket count")
    if int(counts.sum()) != t.count or t.count < 1:
        raise ProtocolError(f"trend {t.key[0]!r}: buckets hold {int(counts.sum())}, not {t.count}")
    if not all(math.isfinite(x) for x in (t.sum, t.min, t.max)) or t.min > t.max:
        raise ProtocolError(f"trend {t.key[0]!r}: sum/min/max are not consistent")
    return TrendDelta(t.count, t.sum, t.min, t.max, SparseBins(index, counts))
