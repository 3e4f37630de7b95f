"""Rebuilding a run's :class:`Aggregator` from its stored rows.

Rows of one (second, key) are applied in the order they were written (their id), the
order the live aggregator saw the deltas in; run-wide totals come from the totals
tables, which hold the live arithmetic's exact results.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from cannonade.model.aggregate import Aggregator, SecondPoint, SeqTracker
from cannonade.model.histogram import Histogram, SparseBins
from cannonade.model.metrics import HTTP_REQ_DURATION, HTTP_REQS, ErrorGroup, Key, Kind
from cannonade.storage.blobs import merge_bins, unpack_count, unpack_index, unpack_ints
from cannonade.storage.db import Database
from cannonade.storage.records import Headline

SERIES_TRENDS = frozenset({HTTP_REQ_DURATION})

TrendScalars = tuple[int, float, float, float]  # count, sum, min, max


def load_keys(db: Database, run_id: str) -> dict[int, Key]:
    return {
        r[0]: Key(r[1], r[2], r[3], r[4])
        for r in db.rows(
            "SELECT id, metric, name, method, tag FROM metric_keys WHERE run_id = ?", (run_id,)
        )
    }


def load_trend_totals(db: Database, run_id: str) -> dict[int, TrendScalars]:
    return {
        r[0]: (r[1], r[2], r[3], r[4])
        for r in db.rows(
            "SELECT key_id, count, sum, min, max FROM trend_totals WHERE run_id = ?", (run_id,)
        )
    }


def load_counter_totals(db: Database, run_id: str) -> dict[int, float]:
    return {
        r[0]: r[1]
        for r in db.rows("SELECT key_id, value FROM counter_totals WHERE run_id = ?", (run_id,))
    }


def tracker(highest: int, duplicates: int, finished: bool, gaps: Iterable[int]) -> SeqTracker:
    # Sequence numbers start at 0, so what was seen is everything up to the highest
    # except the gaps.
    seen = set(range(highest + 1))
    seen.difference_update(gaps)
    return SeqTracker(seen=seen, highest=highest, duplicates=duplicates, finished=finished)


def load_sources(db: Database, run_id: str) -> dict[tuple[str, int], SeqTracker]:
    return {
        (r[0], r[1]): tracker(r[2], r[3], bool(r[4]), unpack_ints(r[5]))
        for r in db.rows(
            "SELECT agent, cannon, highest, duplicates, finished, gaps FROM sources"
            " WHERE run_id = ? ORDER BY agent, cannon",
            (run_id,),
        )
    }


def load_custom_kinds(db: Database, run_id: str) -> dict[str, Kind]:
    return {
        r[0]: Kind(r[1])
        for r in db.rows("SELECT metric, kind FROM metric_kinds WHERE run_id = ?", (run_id,))
    }


class _KeyParts:
    """A key's bucket arrays from every row, merged once at the end, and the row
    scalars in case the totals row is missing."""

    __slots__ = ("count", "counts", "index", "max", "min", "sum")

    def __init__(self) -> None:
        self.index: list[npt.NDArray[np.int32]] = []
        self.counts: list[npt.NDArray[np.int64]] = []
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf


def _point(series: dict[int, SecondPoint], second: int) -> SecondPoint:
    point = series.get(second)
    if point is None:  # every second is in `seconds`; this only guards a damaged file
        point = series[second] = SecondPoint()
    return point


def load_aggregator(
    db: Database, run_id: str, series_trends: frozenset[str] = SERIES_TRENDS
) -> Aggregator:
    agg = Aggregator(series_trends)
    keys = load_keys(db, run_id)
    for (second,) in db.iterate(
        "SELECT second FROM seconds WHERE run_id = ? ORDER BY second", (run_id,)
    ):
        agg.series[second] = SecondPoint()
    _load_trends(db, run_id, keys, agg, series_trends)
    _load_counters(db, run_id, keys, agg)
    for second, agent, cannon, key_id, value in db.iterate(
        "SELECT second, agent, cannon, key_id, value FROM gauge_series WHERE run_id = ?"
        " ORDER BY second, id",
        (run_id,),
    ):
        _point(agg.series, second).by_source[(agent, cannon, keys[key_id])] = value
    for kind, message, count, sample in db.rows(
        "SELECT kind, message, count, sample FROM errors WHERE run_id = ? ORDER BY rowid",
        (run_id,),
    ):
        agg.errors[(kind, message)] = ErrorGroup(kind, message, count, sample)
    for metric, kind in load_custom_kinds(db, run_id).items():
        agg.kinds.setdefault(metric, kind)
    agg.sources.update(load_sources(db, run_id))
    return agg


def _load_trends(
    db: Database, run_id: str, keys: dict[int, Key], agg: Aggregator, series_trends: frozenset[str]
) -> None:
    parts: dict[int, _KeyParts] = {}
    for second, key_id, count, total, lo, hi, raw_index, raw_count in db.iterate(
        "SELECT second, key_id, count, sum, min, max, bins_index, bins_count FROM trend_series"
        " WHERE run_id = ? ORDER BY second, id",
        (run_id,),
    ):
        index, counts = unpack_index(raw_index), unpack_count(raw_count)
        p = parts.get(key_id)
        if p is None:
            p = parts[key_id] = _KeyParts()
        if count:
            p.index.append(index)
            p.counts.append(counts)
            p.count += count
            p.sum += total
            p.min = min(p.min, lo)
            p.max = max(p.max, hi)
        key = keys[key_id]
        if key.metric in series_trends:
            point = _point(agg.series, second)
            h = point.trends.get(key)
            if h is None:
                h = point.trends[key] = Histogram()
            h.add_sparse(SparseBins(index, counts), count, total, lo, hi)
    totals = load_trend_totals(db, run_id)
    for key_id, p in parts.items():
        count, total, lo, hi = totals.get(key_id, (p.count, p.sum, p.min, p.max))
        h = agg.trends[keys[key_id]] = Histogram()
        h.add_sparse(merge_bins(p.index, p.counts), count, total, lo, hi)


def _load_counters(db: Database, run_id: str, keys: dict[int, Key], agg: Aggregator) -> None:
    for second, key_id, value in db.iterate(
        "SELECT second, key_id, value FROM counter_series WHERE run_id = ? ORDER BY second, id",
        (run_id,),
    ):
        counters = _point(agg.series, second).counters
        key = keys[key_id]
        counters[key] = counters.get(key, 0.0) + value
    agg.counters.update(
        (keys[key_id], value) for key_id, value in load_counter_totals(db, run_id).items()
    )


def merged_trend(db: Database, run_id: str, metric: str) -> Histogram:
    """Every key of one trend metric merged, straight from the rows."""
    index: list[npt.NDArray[np.int32]] = []
    counts: list[npt.NDArray[np.int64]] = []
    for raw_index, raw_count in db.iterate(
        "SELECT s.bins_index, s.bins_count FROM trend_series s"
        " JOIN metric_keys k ON k.id = s.key_id"
        " WHERE s.run_id = ? AND k.run_id = ? AND k.metric = ? AND s.count > 0",
        (run_id, run_id, metric),
    ):
        index.append(unpack_index(raw_index))
        counts.append(unpack_count(raw_count))
    h = Histogram()
    row = db.rows(
        "SELECT sum(t.count), sum(t.sum), min(t.min), max(t.max) FROM trend_totals t"
        " JOIN metric_keys k ON k.id = t.key_id WHERE t.run_id = ? AND k.metric = ?",
        (run_id, metric),
    )[0]
    if row[0]:
        h.add_sparse(merge_bins(index, counts), row[0], row[1], row[2], row[3])
    return h


def headline(db: Database, run_id: str) -> Headline:
    (requests,) = db.rows(
        "SELECT coalesce(sum(t.value), 0) FROM counter_totals t"
        " JOIN metric_keys k ON k.id = t.key_id WHERE t.run_id = ? AND k.metric = ?",
        (run_id, HTTP_REQS),
    )[0]
    h = merged_trend(db, run_id, HTTP_REQ_DURATION)
    return Headline(int(requests), h.percentile(95) if h.count else None)
