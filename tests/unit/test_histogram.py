import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cannonade.model.histogram import (
    MAX_US,
    N_BUCKETS,
    SUB_BUCKETS,
    Histogram,
    bucket_indices,
    bucket_lower,
    bucket_width,
)


def test_indices_are_contiguous_and_monotonic():
    # Every bucket's lower bound maps back to that bucket, and the next bucket starts
    # exactly where this one ends: no value falls between buckets.
    for i in range(N_BUCKETS - 1):
        lo = bucket_lower(i)
        assert bucket_lower(i + 1) == lo + bucket_width(i)
    lows = np.array([bucket_lower(i) for i in range(N_BUCKETS)], dtype=np.int64)
    assert (bucket_indices(lows) == np.arange(N_BUCKETS)).all()
    highs = lows + np.array([bucket_width(i) for i in range(N_BUCKETS)]) - 1
    assert (bucket_indices(highs) == np.arange(N_BUCKETS)).all()
    assert bucket_indices(np.array([MAX_US]))[0] == N_BUCKETS - 1


def test_relative_precision_three_digits():
    for i in range(SUB_BUCKETS, N_BUCKETS):
        assert bucket_width(i) / bucket_lower(i) <= 1 / 1024


def test_exact_stats_and_percentiles():
    h = Histogram()
    values = [i / 1000 for i in range(1, 1001)]  # 1 ms .. 1000 ms
    h.record_many(values)
    assert h.count == 1000
    assert h.min == 0.001
    assert h.max == 1.0
    assert math.isclose(h.mean, 0.5005)
    p50, p90, p99 = h.percentiles([50, 90, 99])
    assert abs(p50 - 0.500) / 0.5 < 0.001
    assert abs(p90 - 0.900) / 0.9 < 0.001
    assert abs(p99 - 0.990) / 0.99 < 0.001
    assert h.percentile(100) == 1.0
    assert h.percentile(0) == 0.001


def test_empty_histogram():
    h = Histogram()
    assert math.isnan(h.percentile(50))
    assert math.isnan(h.mean)
    assert h.sparse().index.size == 0


def test_out_of_range_values_are_clamped():
    h = Histogram()
    h.record_many([-1.0, 0.0, 10_000.0])
    assert h.count == 3
    assert h.min == -1.0
    assert h.max == 10_000.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(min_value=0, max_value=4000, allow_nan=False), max_size=200),
        min_size=1,
        max_size=6,
    )
)
def test_merge_of_parts_equals_whole(parts):
    whole = Histogram()
    merged = Histogram()
    for part in parts:
        whole.record_many(part)
        piece = Histogram()
        piece.record_many(part)
        # Ship it the way a delta travels: sparse bins.
        other = Histogram()
        other.add_sparse(piece.sparse(), piece.count, piece.sum, piece.min, piece.max)
        merged.merge(other)
    qs = [0, 1, 50, 90, 95, 99, 99.9, 100]
    assert merged.count == whole.count
    if whole.count:
        assert merged.percentiles(qs) == whole.percentiles(qs)
        assert merged.min == whole.min
        assert merged.max == whole.max
        assert merged.sum == pytest.approx(whole.sum)


def test_sparse_and_dense_forms_give_identical_results():
    # A run keeps per-second histograms sparse; past DENSE_AT buckets one turns dense.
    # However the samples were split and merged, the result must be the same.
    from cannonade.model.histogram import DENSE_AT

    rng = np.random.default_rng(7)
    values = rng.lognormal(mean=-6, sigma=2.0, size=40_000)
    whole = Histogram()
    whole.record_many(values)
    assert whole.sparse().index.size > DENSE_AT  # the whole is dense
    parts = [Histogram() for _ in range(40)]
    for i, part in enumerate(parts):
        part.record_many(values[i * 1000 : (i + 1) * 1000])
    merged = Histogram()
    for part in parts:
        merged.merge(part)
    via_sparse = Histogram()
    for part in parts:
        b = part.sparse()
        via_sparse.add_sparse(b, part.count, part.sum, part.min, part.max)
    qs = [0, 1, 50, 90, 95, 99, 99.9, 100]
    for h in (merged, via_sparse):
        assert h.count == whole.count
        assert h.percentiles(qs) == whole.percentiles(qs)
        assert np.array_equal(h.sparse().index, whole.sparse().index)
        assert np.array_equal(h.sparse().count, whole.sparse().count)
    small = Histogram()
    small.record_many(values[:50])
    assert small.sparse().index.size <= DENSE_AT
    dense_copy = whole.copy()
    dense_copy.merge(small)
    sparse_first = small.copy()
    sparse_first.merge(whole)
    assert dense_copy.percentiles(qs) == sparse_first.percentiles(qs)
