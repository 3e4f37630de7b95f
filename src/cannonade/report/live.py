"""One live progress line while a run goes, redrawn in place once a second::

    running  00:12/00:30  [██████░░░░░░░░░░░░░░]  vus 50  req/s 4,210  errors 3  p95 12.4ms

The caller decides when to redraw (it calls :meth:`LiveProgress.update` from its
once-a-second tick), so nothing here owns a thread or reads a clock. ``req/s`` and
``p95`` are those of the last complete second; ``errors`` counts the whole run so far,
like ``requests``, so one failing second is not gone from the screen a second later.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

from cannonade.model.aggregate import Aggregator
from cannonade.model.histogram import Histogram
from cannonade.model.metrics import (
    HTTP_REQ_DURATION,
    HTTP_REQ_FAILED,
    HTTP_REQS,
    ITERATION_ERRORS,
    VUS,
)
from cannonade.model.recorder import TRUE
from cannonade.report.text import format_duration

if TYPE_CHECKING:
    # rich costs ~45 ms to import; a quiet or piped run never needs it.
    from rich.console import Console
    from rich.live import Live

BAR_WIDTH = 20


@dataclass(frozen=True, slots=True)
class LiveSnapshot:
    """What the progress line shows. ``total`` is None for a run without a set length;
    ``p95`` is seconds, None when the second had no requests."""

    elapsed: float
    total: float | None
    vus: int
    rps: float
    requests: int
    errors: int
    p95: float | None
    phase: str = "running"


def format_clock(seconds: float) -> str:
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def progress_bar(fraction: float, width: int = BAR_WIDTH) -> str:
    filled = round(min(1.0, max(0.0, fraction)) * width)
    return "█" * filled + "░" * (width - filled)


def render_line(s: LiveSnapshot, *, bar_width: int = BAR_WIDTH) -> str:
    if s.total is not None and s.total > 0:
        clock = f"{format_clock(s.elapsed)}/{format_clock(s.total)}"
        bar = f"  [{progress_bar(s.elapsed / s.total, bar_width)}]"
    else:
        clock, bar = format_clock(s.elapsed), ""
    rps = f"{s.rps:,.0f}" if s.rps >= 100 or s.rps == 0 else f"{s.rps:.1f}"
    p95 = format_duration(s.p95) if s.p95 is not None else "-"
    return f"{s.phase:<8} {clock}{bar}  vus {s.vus:,}  req/s {rps}  errors {s.errors:,}  p95 {p95}"


def snapshot_from(
    aggregator: Aggregator,
    second: int,
    *,
    elapsed: float,
    total: float | None = None,
    vus: int | None = None,
    phase: str = "running",
) -> LiveSnapshot:
    """A snapshot for the epoch ``second`` (pass the last *complete* one: deltas for
    the current second are still arriving). ``vus`` defaults to the gauge reported
    for that second."""
    point = aggregator.series.get(second)
    rps = 0.0
    p95: float | None = None
    seen_vus = 0.0
    if point is not None:
        rps = sum(n for k, n in point.counters.items() if k.metric == HTTP_REQS)
        h = Histogram()
        for key, hist in point.trends.items():
            if key.metric == HTTP_REQ_DURATION:
                h.merge(hist)
        if h.count:
            p95 = h.percentile(95)
        seen_vus = sum(v for k, v in point.gauges.items() if k.metric == VUS)
    errors = aggregator.count(HTTP_REQ_FAILED, tag=TRUE) + aggregator.count(ITERATION_ERRORS)
    return LiveSnapshot(
        elapsed=elapsed,
        total=total,
        vus=int(seen_vus) if vus is None else vus,
        rps=rps,
        requests=int(aggregator.count(HTTP_REQS)),
        errors=int(errors),
        p95=p95,
        phase=phase,
    )


class LiveProgress:
    """The progress line as a context manager. Disabled, every method does nothing,
    so callers never branch on ``--quiet``."""

    def __init__(
        self,
        *,
        enabled: bool = True,
        console: Console | None = None,
        total: float | None = None,
        transient: bool = False,
    ) -> None:
        """``total`` is the planned length, shown for snapshots that carry none."""
        self.enabled = enabled
        self.total = total
        self._console = console
        self._transient = transient
        self._live: Live | None = None
        self.last: LiveSnapshot | None = None

    @staticmethod
    def should_enable(quiet: bool, stream: object) -> bool:
        """On only for a terminal: redrawing a line into a pipe or file leaves garbage."""
        if quiet:
            return False
        isatty = getattr(stream, "isatty", None)
        if isatty is None:
            return False
        try:
            return bool(isatty())
        except (OSError, ValueError):  # a closed or detached stream
            return False

    def __enter__(self) -> LiveProgress:
        if self.enabled:
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            self._live = Live(
                Text(""),
                console=self._console or Console(),
                auto_refresh=False,  # update() is the clock; no refresh thread
                transient=self._transient,
            )
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def update(self, snapshot: LiveSnapshot) -> None:
        if snapshot.total is None and self.total is not None:
            snapshot = dataclasses.replace(snapshot, total=self.total)
        self.last = snapshot
        if self._live is not None:
            from rich.text import Text

            self._live.update(Text(render_line(snapshot)), refresh=True)
