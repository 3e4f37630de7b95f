"""Folding the cannons' per-second deltas into one delta per second for the HQ.

A second is sent once every cannon still running has reported it (or a later one),
or when it is ``patience`` seconds old, so one slow cannon delays the HQ's view by at
most that. A cannon delta that arrives after its second went out is sent in another
delta for the same second: the HQ adds amounts, and gauges are re-sent whole (the sum
of every cannon's last level), because the HQ keeps only a source's last gauge value.
"""

from __future__ import annotations

from collections import Counter

from cannonade.model.aggregate import SeqTracker
from cannonade.model.combine import Accumulated
from cannonade.model.metrics import IntervalDelta, Key, SourceId

GAUGE_MEMORY = 120  # seconds of per-cannon gauge levels kept for late re-sends


class SecondMerger:
    def __init__(self, agent: str, run_id: str, cannons: int, patience: float = 2.0) -> None:
        self.source = SourceId(agent, 0)
        self.run_id = run_id
        self.patience = patience
        self._seq = 0
        self._pending: dict[int, Accumulated] = {}
        self._gauges: dict[int, dict[int, dict[Key, float]]] = {}  # second -> cannon -> level
        self._gauge_dirty: set[int] = set()
        self._latest: dict[int, int] = dict.fromkeys(range(cannons), -1)  # cannon -> second
        self._done: set[int] = set()
        self.cannon_seqs: dict[int, SeqTracker] = {c: SeqTracker() for c in range(cannons)}
        # What went out, for the end-of-run totals the HQ checks its storage against.
        self.sent_counters: dict[str, float] = {}
        self.sent_trends: Counter[str] = Counter()

    @property
    def sent(self) -> int:
        """Deltas made so far: their seqs are 0 .. sent-1."""
        return self._seq

    def add(self, d: IntervalDelta) -> bool:
        """A cannon's delta. False (and ignored) for a duplicate or a stranger."""
        cannon = d.source.cannon
        tracker = self.cannon_seqs.get(cannon)
        if tracker is None or not tracker.accept(d.seq):
            return False
        acc = self._pending.get(d.second)
        if acc is None:
            acc = self._pending[d.second] = Accumulated()
        acc.add(d)
        if d.gauges:
            self._gauges.setdefault(d.second, {})[cannon] = dict(d.gauges)
            self._gauge_dirty.add(d.second)
        self._latest[cannon] = max(self._latest[cannon], d.second)
        if d.final:
            self._done.add(cannon)
        return True

    def cannon_finished(self, cannon: int) -> None:
        """A cannon exited or died: stop waiting for its seconds."""
        self._done.add(cannon)

    def ready(self, now: float) -> list[IntervalDelta]:
        """Seconds every running cannon has passed, and seconds older than patience."""
        waiting = [s for c, s in self._latest.items() if c not in self._done]
        complete = min(waiting) if waiting else None
        due = sorted(
            s
            for s in self._pending.keys() | self._gauge_dirty
            if complete is None or s <= complete or s + 1 + self.patience <= now
        )
        for s in [s for s in self._gauges if s < now - GAUGE_MEMORY]:
            del self._gauges[s]
        return [self._emit(s) for s in due]

    def drain(self, final: bool = False) -> list[IntervalDelta]:
        """Everything pending; with ``final`` the last delta carries the final mark (an
        empty one is made when nothing is pending)."""
        out = [self._emit(s) for s in sorted(self._pending.keys() | self._gauge_dirty)]
        if final:
            if not out:
                last = max(self._gauges, default=max(self._latest.values(), default=0))
                out.append(self._emit(max(last, 0)))
            out[-1].final = True
        return out

    def _emit(self, second: int) -> IntervalDelta:
        acc = self._pending.pop(second, None) or Accumulated()
        self._gauge_dirty.discard(second)
        gauges: dict[Key, float] = {}
        for levels in self._gauges.get(second, {}).values():
            for key, v in levels.items():
                gauges[key] = gauges.get(key, 0.0) + v
        out = IntervalDelta(
            self.source,
            self._seq,
            second,
            trends=acc.trends,
            counters=acc.counters,
            gauges=gauges,
            errors=list(acc.errors.values()),
            custom_kinds=acc.kinds,
            run_id=self.run_id,
        )
        self._seq += 1
        for key, n in acc.counters.items():
            self.sent_counters[key.metric] = self.sent_counters.get(key.metric, 0.0) + n
        for key, t in acc.trends.items():
            self.sent_trends[key.metric] += t.count
        return out

    def cannon_gaps(self) -> int:
        return sum(len(t.gaps()) for t in self.cannon_seqs.values())
