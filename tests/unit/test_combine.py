"""Adding interval deltas: sparse histogram bins, trends, counters and errors."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cannonade.model.combine import Accumulated, add_bins, add_trend
from cannonade.model.histogram import N_BUCKETS, SparseBins
from cannonade.model.metrics import ErrorGroup, IntervalDelta, Key, Kind, SourceId, TrendDelta


@st.composite
def sparse_bins(draw, max_size=40):
    index = draw(st.lists(st.integers(0, N_BUCKETS - 1), unique=True, max_size=max_size))
    counts = draw(st.lists(st.integers(1, 2**40), min_size=len(index), max_size=len(index)))
    order = np.argsort(index)
    return SparseBins(
        np.asarray(index, dtype=np.int32)[order], np.asarray(counts, dtype=np.int64)[order]
    )


def dense(b: SparseBins) -> np.ndarray:
    out = np.zeros(N_BUCKETS, dtype=np.int64)
    np.add.at(out, b.index.astype(np.int64), b.count)
    return out


@settings(max_examples=200, deadline=None)
@given(sparse_bins(), sparse_bins())
def test_add_bins_equals_a_dense_add(a, b):
    s = add_bins(a, b)
    assert np.array_equal(dense(s), dense(a) + dense(b))
    assert s.index.dtype == np.int32
    assert s.count.dtype == np.int64
    assert np.all(np.diff(s.index) > 0)  # sorted, unique
    assert np.all(s.count > 0)  # only non-empty buckets
    assert s.index.size == len(set(a.index.tolist()) | set(b.index.tolist()))


def test_add_bins_of_empties_and_large_counts():
    empty = SparseBins(np.zeros(0, np.int32), np.zeros(0, np.int64))
    s = add_bins(empty, empty)
    assert s.index.size == 0
    assert s.count.size == 0
    big = SparseBins(np.array([5, N_BUCKETS - 1], np.int32), np.array([2**52, 3], np.int64))
    s = add_bins(big, big)
    assert s.index.tolist() == [5, N_BUCKETS - 1]
    assert s.count.tolist() == [2**53, 6]
    s = add_bins(empty, big)
    assert s.index.tolist() == [5, N_BUCKETS - 1]
    assert s.count.tolist() == [2**52, 3]


def trend(index, counts, lo, hi, total) -> TrendDelta:
    return TrendDelta(
        sum(counts),
        total,
        lo,
        hi,
        SparseBins(np.array(index, np.int32), np.array(counts, np.int64)),
    )


def test_add_trend_keeps_exact_count_sum_min_max():
    a = trend([1, 10], [2, 3], 0.000001, 0.00001, 0.5)
    b = trend([10, 20], [1, 1], 0.000002, 0.00002, 0.25)
    t = add_trend(a, b)
    assert (t.count, t.sum, t.min, t.max) == (7, 0.75, 0.000001, 0.00002)
    assert t.bins.index.tolist() == [1, 10, 20]
    assert t.bins.count.tolist() == [2, 4, 1]


def test_accumulated_adds_amounts_and_leaves_inputs_alone():
    k, e = Key("http_reqs", "/", "GET"), Key("http_req_duration", "/", "GET")
    d1 = IntervalDelta(
        SourceId("a", 0),
        0,
        100,
        trends={e: trend([1], [2], 0.000001, 0.000001, 0.000002)},
        counters={k: 2.0},
        gauges={Key("vus"): 5.0},
        errors=[ErrorGroup("timeout", "t/o", 1, "tb1")],
        custom_kinds={"login": Kind.TREND},
    )
    d2 = IntervalDelta(
        SourceId("a", 1),
        0,
        100,
        trends={e: trend([1, 3], [1, 1], 0.000001, 0.000003, 0.000004)},
        counters={k: 3.0, Key("checks", "ok", "", "true"): 1.0},
        errors=[ErrorGroup("timeout", "t/o", 4, "tb2"), ErrorGroup("reset", "r", 1)],
        custom_kinds={"cart": Kind.COUNTER},
    )
    acc = Accumulated()
    assert acc.is_empty()
    acc.add(d1)
    acc.add(d2)
    assert not acc.is_empty()
    assert acc.counters == {k: 5.0, Key("checks", "ok", "", "true"): 1.0}
    t = acc.trends[e]
    assert (t.count, t.min, t.max) == (4, 0.000001, 0.000003)
    assert t.bins.index.tolist() == [1, 3]
    assert t.bins.count.tolist() == [3, 1]
    assert acc.errors == {
        ("timeout", "t/o"): ErrorGroup("timeout", "t/o", 5, "tb1"),
        ("reset", "r"): ErrorGroup("reset", "r", 1),
    }
    assert acc.kinds == {"login": Kind.TREND, "cart": Kind.COUNTER}
    # the inputs are untouched: an agent may still hold them
    assert d1.errors == [ErrorGroup("timeout", "t/o", 1, "tb1")]
    assert d2.errors[0].count == 4
    assert d1.trends[e].count == 2
    assert d1.trends[e].bins.count.tolist() == [2]
    assert d1.counters == {k: 2.0}


def test_gauges_alone_make_nothing_to_accumulate():
    acc = Accumulated()
    acc.add(IntervalDelta(SourceId("a", 0), 0, 1, gauges={Key("vus"): 3.0}))
    assert acc.is_empty()
