"""Run-wide merge of interval deltas: totals, a per-second series, gap accounting.

The same code merges deltas whether they come from a cannon in this process or, over
ZeroMQ, from a hundred agents: a delta is applied at most once per (source, seq), and
the sequence numbers that never arrived are reported as gaps.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from cannonade.model.histogram import Histogram
from cannonade.model.metrics import (
    BUILTIN_KINDS,
    ErrorGroup,
    IntervalDelta,
    Key,
    Kind,
    TrendDelta,
    merge_errors,
)


@dataclass(slots=True)
class SeqTracker:
    """Which sequence numbers of one source have been applied."""

    seen: set[int] = field(default_factory=set)
    highest: int = -1
    duplicates: int = 0
    finished: bool = False

    def accept(self, seq: int) -> bool:
        if seq in self.seen:
            self.duplicates += 1
            return False
        self.seen.add(seq)
        self.highest = max(self.highest, seq)
        return True

    def gaps(self) -> list[int]:
        return [s for s in range(self.highest + 1) if s not in self.seen]


@dataclass(slots=True)
class SecondPoint:
    """Everything measured run-wide in one epoch second."""

    counters: dict[Key, float] = field(default_factory=dict)
    trends: dict[Key, Histogram] = field(default_factory=dict)
    # A gauge is a level, not an amount: a source that sends two deltas for one second
    # reports its level twice. Keep its last value and sum across sources.
    by_source: dict[tuple[str, int, Key], float] = field(default_factory=dict)

    @property
    def gauges(self) -> dict[Key, float]:
        out: dict[Key, float] = {}
        for (_, _, key), v in self.by_source.items():
            out[key] = out.get(key, 0.0) + v
        return out


@dataclass(slots=True)
class GaugeStat:
    value: float = 0.0
    min: float = math.inf
    max: float = -math.inf


class Aggregator:
    """Merges deltas. ``series_trends`` names the metrics whose per-second histograms are
    kept (for charts), so a long run's memory stays small."""

    def __init__(self, series_trends: frozenset[str] = frozenset({"http_req_duration"})) -> None:
        self.trends: dict[Key, Histogram] = {}
        self.counters: dict[Key, float] = {}
        self.errors: dict[tuple[str, str], ErrorGroup] = {}
        self.kinds: dict[str, Kind] = dict(BUILTIN_KINDS)
        self.series: dict[int, SecondPoint] = {}
        self.sources: dict[tuple[str, int], SeqTracker] = {}
        self._series_trends = series_trends

    def add(self, delta: IntervalDelta) -> bool:
        """Apply a delta; False if it was a duplicate and was ignored."""
        tracker = self.sources.setdefault((delta.source.agent, delta.source.cannon), SeqTracker())
        if not tracker.accept(delta.seq):
            return False
        if delta.final:
            tracker.finished = True
        for metric, kind in delta.custom_kinds.items():
            self.kinds.setdefault(metric, kind)
        point = self.series.get(delta.second)
        if point is None:
            point = self.series[delta.second] = SecondPoint()
        for key, td in delta.trends.items():
            self._merge_trend(self.trends, key, td)
            if key.metric in self._series_trends:
                self._merge_trend(point.trends, key, td)
        for key, n in delta.counters.items():
            self.counters[key] = self.counters.get(key, 0.0) + n
            point.counters[key] = point.counters.get(key, 0.0) + n
        for key, v in delta.gauges.items():
            point.by_source[(delta.source.agent, delta.source.cannon, key)] = v
        merge_errors(self.errors, delta.errors)
        return True

    @staticmethod
    def _merge_trend(into: dict[Key, Histogram], key: Key, td: TrendDelta) -> None:
        h = into.get(key)
        if h is None:
            h = into[key] = Histogram()
        h.add_sparse(td.bins, td.count, td.sum, td.min, td.max)

    # -- queries -----------------------------------------------------------------------
    def keys(self, metric: str) -> Iterator[Key]:
        for k in self.trends:
            if k.metric == metric:
                yield k
        for k in self.counters:
            if k.metric == metric:
                yield k

    def trend(self, metric: str, name: str | None = None) -> Histogram:
        """All samples of a trend metric merged (optionally of one name only)."""
        h = Histogram()
        for key, hist in self.trends.items():
            if key.metric == metric and (name is None or key.name == name):
                h.merge(hist)
        return h

    def count(self, metric: str, name: str | None = None, tag: str | None = None) -> float:
        return sum(
            n
            for key, n in self.counters.items()
            if key.metric == metric
            and (name is None or key.name == name)
            and (tag is None or key.tag == tag)
        )

    def gauge(self, metric: str) -> GaugeStat:
        """Run-wide gauge: each second's value is the sum over sources."""
        stat = GaugeStat()
        for second in sorted(self.series):
            point = self.series[second]
            values = [v for k, v in point.gauges.items() if k.metric == metric]
            if not values:
                continue
            v = sum(values)
            stat.value = v
            stat.min = min(stat.min, v)
            stat.max = max(stat.max, v)
        return stat

    def names(self, metric: str) -> list[tuple[str, str]]:
        """Distinct (name, method) pairs seen for a metric, sorted."""
        return sorted({(k.name, k.method) for k in self.keys(metric)})

    def gaps(self) -> dict[tuple[str, int], list[int]]:
        return {src: t.gaps() for src, t in self.sources.items() if t.gaps()}

    def unfinished(self) -> list[tuple[str, int]]:
        """Sources whose final delta never arrived: their last seconds may be missing."""
        return [src for src, t in self.sources.items() if not t.finished]

    @property
    def first_second(self) -> int | None:
        return min(self.series) if self.series else None

    @property
    def last_second(self) -> int | None:
        return max(self.series) if self.series else None
