"""Adding interval deltas together: an agent folds its cannons' seconds into one delta.

Counters and histogram buckets add; errors add by (kind, message); gauges are levels,
so the caller says which value each contributor last reported and they are summed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cannonade.model.histogram import SparseBins
from cannonade.model.metrics import (
    ErrorGroup,
    IntervalDelta,
    Key,
    Kind,
    TrendDelta,
    merge_errors,
)


def add_bins(a: SparseBins, b: SparseBins) -> SparseBins:
    index = np.concatenate((a.index, b.index))
    counts = np.concatenate((a.count, b.count))
    uniq, inverse = np.unique(index, return_inverse=True)
    summed = np.bincount(inverse, weights=counts, minlength=uniq.size).astype(np.int64)
    return SparseBins(uniq.astype(np.int32), summed)


def add_trend(a: TrendDelta, b: TrendDelta) -> TrendDelta:
    return TrendDelta(
        a.count + b.count,
        a.sum + b.sum,
        min(a.min, b.min),
        max(a.max, b.max),
        add_bins(a.bins, b.bins),
    )


@dataclass(slots=True)
class Accumulated:
    """The sum of several deltas' amounts for one second (gauges excluded)."""

    trends: dict[Key, TrendDelta] = field(default_factory=dict)
    counters: dict[Key, float] = field(default_factory=dict)
    errors: dict[tuple[str, str], ErrorGroup] = field(default_factory=dict)
    kinds: dict[str, Kind] = field(default_factory=dict)

    def add(self, d: IntervalDelta) -> None:
        for key, t in d.trends.items():
            have = self.trends.get(key)
            self.trends[key] = t if have is None else add_trend(have, t)
        for key, n in d.counters.items():
            self.counters[key] = self.counters.get(key, 0.0) + n
        merge_errors(self.errors, d.errors)
        self.kinds.update(d.custom_kinds)

    def is_empty(self) -> bool:
        return not (self.trends or self.counters or self.errors)
