"""The HTML report's building blocks: per-second series and their inline SVG charts,
table cells, and the page's style sheet.

A chart never has more than ``MAX_POINTS`` points: longer runs are cut into windows of
equal length. Counters become the window's average per second (so the area under a
line is still the total), latency percentiles come from the window's merged histogram
(never an average of percentiles), and VUs show the window's peak. Tables read the
summary, not these series, so downsampling never changes a reported number.

Every point is in the polyline twice: as pixels in ``points`` (what is drawn) and as
data in ``data-points`` (elapsed seconds and the value in the chart's unit), so a
reader or a test can check a chart against the run without undoing the scaling.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

from cannonade.model.aggregate import Aggregator
from cannonade.model.histogram import Histogram, SparseBins
from cannonade.model.metrics import (
    DATA_RECEIVED,
    DATA_SENT,
    DROPPED_ITERATIONS,
    HTTP_REQ_DURATION,
    HTTP_REQ_FAILED,
    HTTP_REQS,
    ITERATION_ERRORS,
    VUS,
)
from cannonade.model.recorder import TRUE
from cannonade.report.text import FAIL, PASS, format_bytes, format_count

MAX_POINTS = 600
PERCENTILES = (50.0, 90.0, 95.0, 99.0)
COLORS = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2")

WIDTH, HEIGHT = 960, 260
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 12, 44


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    points: tuple[tuple[float, float], ...]  # (seconds since the start, value)


@dataclass(frozen=True, slots=True)
class Chart:
    key: str  # an id, unique in the page
    title: str
    unit: str  # the y axis' label
    series: tuple[Series, ...]
    tick: Callable[[float], str]  # formats a y-axis value

    @property
    def empty(self) -> bool:
        return not any(s.points for s in self.series)


@dataclass(slots=True)
class _Window:
    start: int  # epoch second
    seconds: int  # how many seconds it spans
    requests: float = 0.0
    errors: float = 0.0
    received: float = 0.0
    sent: float = 0.0
    dropped: float = 0.0
    vus: float | None = None
    latency: list[float] | None = None  # PERCENTILES of the window, seconds


def windows_of(aggregator: Aggregator, max_points: int = MAX_POINTS) -> list[tuple[int, int]]:
    """(first epoch second, seconds spanned) of each window: at most ``max_points``
    windows of equal length (the last may be shorter) covering the stored seconds."""
    first, last = aggregator.first_second, aggregator.last_second
    if first is None or last is None:
        return []
    step = max(1, math.ceil((last - first + 1) / max_points))
    return [(start, min(step, last + 1 - start)) for start in range(first, last + 1, step)]


def merge_all(hists: Sequence[Histogram]) -> Histogram:
    """The histograms merged, their buckets summed in one pass: merging them one by
    one re-sorts the growing bucket list each time, which a one-hour run's thousands
    of per-second histograms make the report's slowest step."""
    out = Histogram()
    full = [h for h in hists if h.count]
    if not full:
        return out
    parts = [h.sparse() for h in full]
    index = np.concatenate([p.index for p in parts])
    counts = np.concatenate([p.count for p in parts])
    out.add_sparse(
        SparseBins(index, counts),
        sum(h.count for h in full),
        sum(h.sum for h in full),
        min(h.min for h in full),
        max(h.max for h in full),
    )
    return out


def _windows(aggregator: Aggregator, max_points: int) -> list[_Window]:
    out: list[_Window] = []
    for start, seconds in windows_of(aggregator, max_points):
        w = _Window(start, seconds)
        latency: list[Histogram] = []
        for second in range(start, start + w.seconds):
            # A second with no row inside the run completed nothing: it counts as zero.
            point = aggregator.series.get(second)
            if point is None:
                continue
            for key, n in point.counters.items():
                if key.metric == HTTP_REQS:
                    w.requests += n
                elif (key.metric == HTTP_REQ_FAILED and key.tag == TRUE) or (
                    key.metric == ITERATION_ERRORS
                ):
                    w.errors += n
                elif key.metric == DATA_RECEIVED:
                    w.received += n
                elif key.metric == DATA_SENT:
                    w.sent += n
                elif key.metric == DROPPED_ITERATIONS:
                    w.dropped += n
            vus = [v for k, v in point.gauges.items() if k.metric == VUS]
            if vus:
                w.vus = max(w.vus if w.vus is not None else -math.inf, sum(vus))
            for key, h in point.trends.items():
                if key.metric == HTTP_REQ_DURATION:
                    latency.append(h)
        merged = merge_all(latency)
        if merged.count:
            w.latency = merged.percentiles(PERCENTILES)
        out.append(w)
    return out


def build_charts(
    aggregator: Aggregator, origin: float, max_points: int = MAX_POINTS
) -> list[Chart]:
    """The report's charts; x is seconds from ``origin`` (the run's start) to the start
    of each window. Charts whose series are all empty are left out."""
    windows = _windows(aggregator, max_points)
    zero = math.floor(origin)

    def line(label: str, value: Callable[[_Window], float | None]) -> Series:
        pts = []
        for w in windows:
            v = value(w)
            if v is not None:
                pts.append((float(w.start - zero), v))
        return Series(label, tuple(pts))

    latency: list[Series] = []
    for i, q in enumerate(PERCENTILES):

        def pick(w: _Window, i: int = i) -> float | None:
            return None if w.latency is None else w.latency[i] * 1000.0

        latency.append(line(f"p{q:g}", pick))
    charts = [
        Chart(
            "chart-requests",
            "Requests per second",
            "per second",
            (
                line("requests/s", lambda w: w.requests / w.seconds),
                line("errors/s", lambda w: w.errors / w.seconds),
            ),
            compact,
        ),
        Chart("chart-latency", "Latency (http_req_duration)", "ms", tuple(latency), compact),
        Chart("chart-vus", "Active VUs", "VUs", (line("vus", lambda w: w.vus),), compact),
        Chart(
            "chart-data",
            "Data per second",
            "bytes/s",
            (
                line("received/s", lambda w: w.received / w.seconds),
                line("sent/s", lambda w: w.sent / w.seconds),
            ),
            format_bytes,
        ),
        Chart(
            "chart-dropped",
            "Dropped iterations per second",
            "per second",
            (line("dropped/s", lambda w: w.dropped / w.seconds),),
            compact,
        ),
    ]
    # A run without HTTP (loads tests, OCT transactions) would get flat lines at zero,
    # and a run that kept up with its arrival rate a flat dropped-iterations line.
    sums = ("chart-requests", "chart-data", "chart-dropped")
    return [
        c
        for c in charts
        if not c.empty and (c.key not in sums or any(v for s in c.series for _, v in s.points))
    ]


def counter_line(
    aggregator: Aggregator,
    origin: float,
    label: str,
    metrics: frozenset[str],
    name: str | None = None,
    max_points: int = MAX_POINTS,
) -> Series:
    """Counters of ``metrics`` (of one name, or all) as each window's average per
    second: like the request chart, the area under the line is the total."""
    zero = math.floor(origin)
    pts = []
    for start, seconds in windows_of(aggregator, max_points):
        total = 0.0
        for second in range(start, start + seconds):
            point = aggregator.series.get(second)
            if point is not None:
                total += sum(
                    n
                    for k, n in point.counters.items()
                    if k.metric in metrics and (name is None or k.name == name)
                )
        pts.append((float(start - zero), total / seconds))
    return Series(label, tuple(pts))


TIMER_PERCENTILES = (50.0, 95.0, 99.0)


def trend_lines(
    aggregator: Aggregator, origin: float, metric: str, max_points: int = MAX_POINTS
) -> tuple[Series, ...]:
    """p50/p95/p99 of one trend per window, in milliseconds, from the window's merged
    histogram; windows without a sample have no point. Empty when the store was read
    without this trend's per-second histograms (they are kept only when asked for)."""
    zero = math.floor(origin)
    lines: list[list[tuple[float, float]]] = [[] for _ in TIMER_PERCENTILES]
    for start, seconds in windows_of(aggregator, max_points):
        hists: list[Histogram] = []
        for second in range(start, start + seconds):
            point = aggregator.series.get(second)
            if point is not None:
                hists.extend(hist for key, hist in point.trends.items() if key.metric == metric)
        h = merge_all(hists)
        if h.count:
            for i, v in enumerate(h.percentiles(TIMER_PERCENTILES)):
                lines[i].append((float(start - zero), v * 1000.0))
    return tuple(
        Series(f"p{q:g}", tuple(pts)) for q, pts in zip(TIMER_PERCENTILES, lines, strict=True)
    )


# -- SVG -----------------------------------------------------------------------------------


def compact(v: float) -> str:
    if v == 0:
        return "0"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def _clock(seconds: float) -> str:
    s = round(seconds)
    sign = "-" if s < 0 else ""
    h, rest = divmod(abs(s), 3600)
    m, sec = divmod(rest, 60)
    return f"{sign}{h}:{m:02d}:{sec:02d}" if h else f"{sign}{m}:{sec:02d}"


def nice_step(span: float, ticks: int = 5) -> float:
    """A round tick spacing (1, 2 or 5 times a power of ten) giving about ``ticks``."""
    if span <= 0:
        return 1.0
    raw = span / ticks
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * power:
            return float(m * power)
    return float(10 * power)  # pragma: no cover


def _time_step(span: float) -> float:
    # Ticks on whole seconds, minutes or hours read better than 2.5 s or 200 s.
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600):
        if span / step <= 8:
            return float(step)
    return nice_step(span, 8)


def _num(v: float) -> str:
    return f"{v:.6g}"


def render_chart(chart: Chart) -> str:
    """One chart as a ``<figure>``: an inline SVG with axes, labels and a legend."""
    pts = [p for s in chart.series for p in s.points]
    x0 = min(x for x, _ in pts)
    x1 = max(x for x, _ in pts)
    if x1 <= x0:
        x1 = x0 + 1.0
    top = max(y for _, y in pts)
    ystep = nice_step(top if top > 0 else 1.0)
    y1 = max(ystep, math.ceil(top / ystep) * ystep) if top > 0 else ystep * 5
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return TOP + ph - (y / y1) * ph

    title = escape(chart.title)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{title}" preserveAspectRatio="xMidYMid meet">',
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}"/>',
    ]
    y = 0.0
    while y <= y1 + ystep / 1000:
        yy = py(y)
        parts.append(
            f'<line class="grid" x1="{LEFT}" y1="{yy:.1f}" x2="{LEFT + pw}" y2="{yy:.1f}"/>'
        )
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{yy + 4:.1f}" text-anchor="end">'
            f"{escape(chart.tick(y))}</text>"
        )
        y += ystep
    xstep = _time_step(x1 - x0)
    x = math.ceil(x0 / xstep) * xstep
    while x <= x1 + 1e-9:
        xx = px(x)
        parts.append(f'<line class="grid" x1="{xx:.1f}" y1="{TOP}" x2="{xx:.1f}" y2="{TOP + ph}"/>')
        parts.append(
            f'<text class="tick" x="{xx:.1f}" y="{TOP + ph + 16}" text-anchor="middle">'
            f"{_clock(x)}</text>"
        )
        x += xstep
    parts.append(
        f'<text class="axis-label" x="{LEFT + pw / 2:.0f}" y="{HEIGHT - 6}" '
        'text-anchor="middle">time since start (m:ss)</text>'
    )
    parts.append(
        f'<text class="axis-label" transform="translate(14 {TOP + ph / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle">{escape(chart.unit)}</text>'
    )
    legend: list[str] = []
    for i, s in enumerate(chart.series):
        if not s.points:
            continue
        color = COLORS[i % len(COLORS)]
        drawn = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in s.points)
        data = " ".join(f"{_num(a)},{_num(b)}" for a, b in s.points)
        label = escape(s.label)
        parts.append(
            f'<polyline class="series" data-series="{label}" stroke="{color}" '
            f'points="{drawn}" data-points="{data}"><title>{label}</title></polyline>'
        )
        if len(s.points) == 1:  # a one-point line draws nothing on its own
            ((a, b),) = s.points
            parts.append(f'<circle cx="{px(a):.1f}" cy="{py(b):.1f}" r="3" fill="{color}"/>')
        legend.append(f'<li><span class="swatch" style="background:{color}"></span>{label}</li>')
    parts.append("</svg>")
    return (
        f'<figure class="chart-box" id="{escape(chart.key)}"><figcaption>{title}</figcaption>'
        f'<ul class="legend">{"".join(legend)}</ul>{"".join(parts)}</figure>'
    )


def render_charts(charts: Sequence[Chart]) -> str:
    if not charts:
        return '<p class="muted">No per-second data was stored for this run.</p>'
    return "\n".join(render_chart(c) for c in charts if not c.empty)


# -- tables --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Num:
    """A right-aligned number: ``text`` as shown, ``value`` in ``data-value`` (durations
    in milliseconds), so a script or a test reads the report without parsing ``1,234``
    or ``12.3ms``."""

    text: str
    value: float | None


@dataclass(frozen=True, slots=True)
class Raw:
    """Markup already built and escaped, placed as is."""

    html: str


Cell = str | Num | Raw


def _cell(c: Cell) -> str:
    if isinstance(c, Num):
        value = "" if c.value is None else f' data-value="{c.value:.17g}"'
        return f'<td class="num"{value}>{escape(c.text)}</td>'
    if isinstance(c, Raw):
        return f"<td>{c.html}</td>"
    return f"<td>{escape(c)}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence[Cell]], cls: str) -> str:
    """Plain strings in ``rows`` are escaped here: they may come from the run."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "\n".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in rows)
    return (
        f'<table class="{escape(cls)}"><thead><tr>{head}</tr></thead>'
        f"<tbody>\n{body}\n</tbody></table>"
    )


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000.0


def count(n: float) -> Num:
    return Num(format_count(int(n)), n)


def mark(passed: bool) -> Raw:
    return Raw(
        f'<span class="pass">{PASS}</span>' if passed else f'<span class="fail">{FAIL}</span>'
    )


def muted(text: str) -> str:
    return f'<p class="muted">{escape(text)}</p>'


def mono(text: str, title: str = "") -> Raw:
    attr = f' title="{escape(title)}"' if title else ""
    return Raw(f'<span class="mono"{attr}>{escape(text)}</span>')
