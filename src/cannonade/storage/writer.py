"""Buffering one run's accepted deltas and writing them once a second.

``add`` only merges into dicts; ``flush`` turns what piled up into rows and writes them
in one transaction. A delta for a second that was already flushed (a late one) simply
adds rows: readers sum the rows of a (second, key) in the order they were written.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from cannonade.model.aggregate import SeqTracker
from cannonade.model.metrics import IntervalDelta, Key, Kind, TrendDelta
from cannonade.storage.blobs import merge_bins, pack_bins, pack_ints
from cannonade.storage.db import Database
from cannonade.storage.errors import StorageError
from cannonade.storage.reader import (
    load_counter_totals,
    load_custom_kinds,
    load_keys,
    load_sources,
    load_trend_totals,
    tracker,
)
from cannonade.storage.records import SourceState

Source = tuple[str, int]

_UPSERT_SOURCE = (
    "INSERT INTO sources (run_id, agent, cannon, highest, duplicates, finished, gaps)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, agent, cannon) DO UPDATE SET"
    " highest = excluded.highest, duplicates = excluded.duplicates,"
    " finished = excluded.finished, gaps = excluded.gaps"
)


class _Scalars:
    """count/sum/min/max, updated with the same arithmetic as ``Histogram.add_sparse``
    so that stored values equal the live aggregator's to the bit."""

    __slots__ = ("count", "max", "min", "sum")

    def __init__(
        self, count: int = 0, total: float = 0.0, lo: float = math.inf, hi: float = -math.inf
    ) -> None:
        self.count = count
        self.sum = total
        self.min = lo
        self.max = hi

    def values(self) -> tuple[int, float, float, float]:
        return self.count, self.sum, self.min, self.max

    def add(self, td: TrendDelta) -> bool:
        if td.count == 0:
            return False
        self.count += td.count
        self.sum += td.sum
        self.min = min(self.min, td.min)
        self.max = max(self.max, td.max)
        return True


class _Window(_Scalars):
    """One (second, key) of a trend since the last flush, with its bucket arrays."""

    __slots__ = ("counts", "index")

    def __init__(self) -> None:
        super().__init__()
        self.index: list[npt.NDArray[np.int32]] = []
        self.counts: list[npt.NDArray[np.int64]] = []

    def add(self, td: TrendDelta) -> bool:
        if not super().add(td):
            return False
        self.index.append(td.bins.index)
        self.counts.append(td.bins.count)
        return True


class RunWriter:
    """Writes one run's data. Made by ``Store.writer``; used from the store's thread."""

    def __init__(self, db: Database, run_id: str) -> None:
        if not db.rows("SELECT 1 FROM runs WHERE id = ?", (run_id,)):
            raise StorageError(f"database {db.path}: no run {run_id!r}")
        self._db = db
        self.run_id = run_id
        # Resuming a run that has rows (a second writer) continues its totals and
        # sequence tracking rather than restarting them.
        keys = load_keys(db, run_id)
        self._key_ids: dict[Key, int] = {k: i for i, k in keys.items()}
        self._trend_totals: dict[Key, _Scalars] = {
            keys[key_id]: _Scalars(*t) for key_id, t in load_trend_totals(db, run_id).items()
        }
        self._counter_totals: dict[Key, float] = {
            keys[key_id]: v for key_id, v in load_counter_totals(db, run_id).items()
        }
        self._sources: dict[Source, SeqTracker] = load_sources(db, run_id)
        self._kinds_seen: set[str] = set(load_custom_kinds(db, run_id))
        self._reset_pending()

    def _reset_pending(self) -> None:
        self._new_keys: dict[Key, None] = {}
        self._seconds: set[int] = set()
        self._trends: dict[tuple[int, Key], _Window] = {}
        self._counters: dict[tuple[int, Key], float] = {}
        self._gauges: dict[tuple[int, str, int, Key], float] = {}
        self._errors: dict[tuple[str, str], tuple[int, str]] = {}  # count, first sample
        self._kinds: dict[str, Kind] = {}
        self._dirty_trend_totals: set[Key] = set()
        self._dirty_counter_totals: set[Key] = set()
        self._dirty_sources: set[Source] = set()

    # -- buffering -----------------------------------------------------------------------
    def add(self, delta: IntervalDelta) -> None:
        """Merge an accepted delta into the pending rows (a repeated seq is ignored)."""
        src = (delta.source.agent, delta.source.cannon)
        seq = self._sources.get(src)
        if seq is None:
            seq = self._sources[src] = SeqTracker()
        self._dirty_sources.add(src)  # a duplicate too: its count is stored
        if not seq.accept(delta.seq):
            return
        if delta.final:
            seq.finished = True
        second = delta.second
        self._seconds.add(second)
        for metric, kind in delta.custom_kinds.items():
            if metric not in self._kinds_seen:  # the first declaration wins, as live
                self._kinds_seen.add(metric)
                self._kinds[metric] = kind
        for key, td in delta.trends.items():
            self._see(key)
            window = self._trends.get((second, key))
            if window is None:
                window = self._trends[(second, key)] = _Window()
            window.add(td)
            total = self._trend_totals.get(key)
            if total is None:
                total = self._trend_totals[key] = _Scalars()
            total.add(td)
            self._dirty_trend_totals.add(key)
        for key, n in delta.counters.items():
            self._see(key)
            self._counters[(second, key)] = self._counters.get((second, key), 0.0) + n
            self._counter_totals[key] = self._counter_totals.get(key, 0.0) + n
            self._dirty_counter_totals.add(key)
        for key, v in delta.gauges.items():
            self._see(key)
            self._gauges[(second, src[0], src[1], key)] = v
        for e in delta.errors:
            count, sample = self._errors.get((e.kind, e.message), (0, e.sample))
            self._errors[(e.kind, e.message)] = (count + e.count, sample)

    def _see(self, key: Key) -> None:
        if key not in self._key_ids:
            self._new_keys[key] = None

    # -- writing -------------------------------------------------------------------------
    def flush(self) -> None:
        """Write everything pending in one transaction. On an error nothing is lost:
        the pending rows stay and the next flush writes them."""
        if not self._dirty_sources:  # every delta marks its source: nothing was added
            return
        run = self.run_id
        added: list[Key] = []
        try:
            with self._db.transaction() as conn:
                for key in self._new_keys:
                    cur = conn.execute(
                        "INSERT INTO metric_keys (run_id, metric, name, method, tag)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (run, *key),
                    )
                    assert cur.lastrowid is not None
                    self._key_ids[key] = cur.lastrowid
                    added.append(key)
                self._write(conn)
        except BaseException:
            for key in added:  # their ids were rolled back with the transaction
                del self._key_ids[key]
            raise
        self._reset_pending()

    def _write(self, conn: sqlite3.Connection) -> None:
        run, ids = self.run_id, self._key_ids
        conn.execute(
            "UPDATE runs SET headline_requests = NULL, headline_p95 = NULL WHERE id = ?", (run,)
        )
        conn.executemany(
            "INSERT OR IGNORE INTO seconds (run_id, second) VALUES (?, ?)",
            [(run, s) for s in self._seconds],
        )
        trend_rows = []
        for (second, key), w in self._trends.items():
            index, counts = pack_bins(merge_bins(w.index, w.counts))
            trend_rows.append((run, second, ids[key], w.count, w.sum, w.min, w.max, index, counts))
        conn.executemany(
            "INSERT INTO trend_series (run_id, second, key_id, count, sum, min, max,"
            " bins_index, bins_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            trend_rows,
        )
        conn.executemany(
            "INSERT INTO counter_series (run_id, second, key_id, value) VALUES (?, ?, ?, ?)",
            [(run, second, ids[key], v) for (second, key), v in self._counters.items()],
        )
        conn.executemany(
            "INSERT INTO gauge_series (run_id, second, agent, cannon, key_id, value)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, second, agent, cannon, key_id)"
            " DO UPDATE SET value = excluded.value",
            [
                (run, s, agent, cannon, ids[key], v)
                for (s, agent, cannon, key), v in self._gauges.items()
            ],
        )
        conn.executemany(
            "INSERT INTO trend_totals (run_id, key_id, count, sum, min, max)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, key_id) DO UPDATE SET"
            " count = excluded.count, sum = excluded.sum, min = excluded.min, max = excluded.max",
            [
                (run, ids[key], *self._trend_totals[key].values())
                for key in self._dirty_trend_totals
            ],
        )
        conn.executemany(
            "INSERT INTO counter_totals (run_id, key_id, value) VALUES (?, ?, ?)"
            " ON CONFLICT (run_id, key_id) DO UPDATE SET value = excluded.value",
            [(run, ids[key], self._counter_totals[key]) for key in self._dirty_counter_totals],
        )
        conn.executemany(
            "INSERT INTO errors (run_id, kind, message, count, sample) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (run_id, kind, message) DO UPDATE SET count = count + excluded.count",
            [
                (run, kind, message, n, sample)
                for (kind, message), (n, sample) in self._errors.items()
            ],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO metric_kinds (run_id, metric, kind) VALUES (?, ?, ?)",
            [(run, metric, kind.value) for metric, kind in self._kinds.items()],
        )
        conn.executemany(
            _UPSERT_SOURCE,
            [self._source_row(src, self._sources[src]) for src in self._dirty_sources],
        )

    def _source_row(self, src: Source, state: SourceState) -> tuple[object, ...]:
        # Listing gaps walks every seq up to the highest; a tracker that saw them all has none.
        complete = isinstance(state, SeqTracker) and len(state.seen) == state.highest + 1
        gaps = pack_ints(() if complete else state.gaps())
        return (self.run_id, *src, state.highest, state.duplicates, int(state.finished), gaps)

    def record_sources(self, sources: Mapping[Source, SourceState]) -> None:
        """Store the HQ's final word on each cannon: highest seq, gaps, duplicates, and
        whether its final delta arrived. A rebuilt run reports the same gaps."""
        trackers = {
            src: tracker(s.highest, s.duplicates, s.finished, s.gaps())
            for src, s in sources.items()
        }
        rows = [self._source_row(src, t) for src, t in trackers.items()]
        with self._db.transaction() as conn:
            conn.executemany(_UPSERT_SOURCE, rows)
        self._sources.update(trackers)
        self._dirty_sources.difference_update(trackers)
