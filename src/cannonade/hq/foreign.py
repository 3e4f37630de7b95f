"""Reports that foreign runners push straight to the HQ, turned into interval deltas.

A loads runner or an OCT turret sends one message per event, not per-second deltas.
The HQ records them per reporting runner (its ``agent_id`` or turret name) into a
:class:`Recorder` and flushes those once a second into deltas of the current run, so
they are merged, stored and summarised exactly like a cannon's.
"""

from __future__ import annotations

import math
from collections import Counter

from cannonade.model.metrics import IntervalDelta, SourceId
from cannonade.model.recorder import Recorder
from cannonade.protocol.foreign import ForeignEvent, TestEvent, TestOutcome
from cannonade.runners.record import ForeignRecorder

MAX_SOURCES = 1000  # runners reporting directly to one run; more is a flood, not a test
MAX_MARKS = 2 * MAX_SOURCES  # startTestRun/stopTestRun kept as events; more are counted
PREFIX = "external:"
_MARKS = (TestOutcome.START_RUN, TestOutcome.STOP_RUN)


class ForeignIngest:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._recorders: dict[str, ForeignRecorder] = {}
        self._dirty: set[str] = set()
        self.rejected: Counter[str] = Counter()
        # loads' startTestRun/stopTestRun: when each runner (or agent) began and ended
        # its test run. They carry no measurement, so they become events, not metrics.
        self._marks: list[tuple[str, TestOutcome]] = []
        self._marked = 0

    @property
    def sources(self) -> list[str]:
        return list(self._recorders)

    def add(self, events: list[ForeignEvent]) -> None:
        for event in events:
            origin = event.origin
            if origin.run_id and origin.run_id != self.run_id:
                self.rejected["runner message for another run"] += 1
                continue
            source = PREFIX + (origin.agent or "unnamed")
            if isinstance(event, TestEvent) and event.outcome in _MARKS:
                self._mark(source, event.outcome)
                continue
            fr = self._recorders.get(source)
            if fr is None:
                if len(self._recorders) >= MAX_SOURCES:
                    self.rejected["runner message beyond the limit of runners"] += 1
                    continue
                fr = self._recorders[source] = ForeignRecorder(Recorder(SourceId(source, 0)))
            fr.record(event)
            self._dirty.add(source)

    def _mark(self, source: str, outcome: TestOutcome) -> None:
        self._marked += 1
        if self._marked <= MAX_MARKS:
            self._marks.append((source, outcome))
        else:
            self.rejected[f"{outcome.value} beyond the first {MAX_MARKS}"] += 1

    def take_marks(self) -> list[tuple[str, TestOutcome]]:
        """The startTestRun/stopTestRun messages that arrived since the last call."""
        marks, self._marks = self._marks, []
        return marks

    def flush(self, now: float, final: bool = False) -> list[IntervalDelta]:
        """Deltas of what arrived since the last flush (every runner's, when final)."""
        second = math.floor(now)
        names = list(self._recorders) if final else sorted(self._dirty)
        self._dirty.clear()
        out = []
        for name in names:
            fr = self._recorders[name]
            delta = fr.recorder.flush(second, final=final)
            delta.run_id = self.run_id
            out.append(delta)
            if fr.rejected:
                self.rejected["custom metric with a built-in name or a changed kind"] += fr.rejected
                fr.rejected = 0
        return out
