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

from cannonade.model.aggregate import Aggregator
from cannonade.model.histogram import Histogram
from cannonade.model.metrics import (
    DATA_RECEIVED,
    DATA_SENT,
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
    vus: float | None = None
    latency: list[float] | None = None  # PERCENTILES of the window, seconds


def _windows(aggregator: Aggregator, max_points: int) -> list[_Window]:
    first, last = aggregator.first_second, aggregator.last_second
    if first is None or last is None:
        return []
    span = last - first + 1
    step = max(1, math.ceil(span / max_points))
    out: list[_Window] = []
    for start in range(first, last + 1, step):
        w = _Window(start, min(step, last + 1 - start))
        latency = Histogram()
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
            vus = [v for k, v in point.gauges.items() if k.metric == VUS]
            if vus:
                w.vus = max(w.vus if w.vus is not None else -math.inf, sum(vus))
            for key, h in point.trends.items():
                if key.metric == HTTP_REQ_DURATION:
                    latency.merge(h)
        if latency.count:
            w.latency = latency.percentiles(PERCENTILES)
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
            _compact,
        ),
        Chart("chart-latency", "Latency (http_req_duration)", "ms", tuple(latency), _compact),
        Chart("chart-vus", "Active VUs", "VUs", (line("vus", lambda w: w.vus),), _compact),
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
    ]
    # A run without HTTP (loads tests, OCT transactions) would get flat lines at zero.
    sums = ("chart-requests", "chart-data")
    return [
        c
        for c in charts
        if not c.empty and (c.key not in sums or any(v for s in c.series for _, v in s.points))
    ]


# -- SVG -----------------------------------------------------------------------------------


def _compact(v: float) -> str:
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


CSS = """
:root{--fg:#111827;--muted:#6b7280;--line:#e5e7eb;--bg:#fff;--alt:#f9fafb;
--pass:#15803d;--fail:#b91c1c;--warn:#b45309}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:var(--bg)}
header,main,nav,footer{max-width:1200px;margin:0 auto;padding:0 20px}
h1{font-size:22px;margin:20px 0 8px}h2{font-size:18px;margin:28px 0 10px;
border-bottom:1px solid var(--line);padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.mono,pre,.timeline{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.muted{color:var(--muted)}
.badge{font-size:13px;padding:2px 10px;border-radius:12px;color:#fff;background:var(--muted);
vertical-align:middle}
.badge.passed{background:var(--pass)}.badge.failed{background:var(--fail)}
.badge.degraded,.badge.interrupted{background:var(--warn)}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0}
.facts dt{color:var(--muted)}.facts dd{margin:0}
pre{white-space:pre-wrap;word-break:break-word;margin:6px 0}
.verdict{background:var(--alt);padding:8px 12px;border-radius:6px}
nav{position:sticky;top:0;background:var(--bg);border-bottom:1px solid var(--line);
padding-top:6px;padding-bottom:6px;z-index:1}
nav a{margin-right:14px;color:#1d4ed8;text-decoration:none}
table{border-collapse:collapse;width:100%;margin:6px 0 12px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--alt);font-weight:600}
td{word-break:break-word}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:nth-child(even){background:var(--alt)}
.pass{color:var(--pass);font-weight:700}.fail{color:var(--fail);font-weight:700}
.sub{padding-left:14px;color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:10px}
.card{border:1px solid var(--line);border-radius:6px;padding:8px 12px}
.card .label{color:var(--muted);font-size:12px}.card .value{font-size:18px;font-weight:600}
.chart-box{margin:8px 0 20px}.chart-box figcaption{font-weight:600}
.chart{width:100%;height:auto}
.chart .plot{fill:#fff;stroke:var(--line)}.chart .grid{stroke:#f0f0f0}
.chart .tick{font-size:11px;fill:var(--muted)}.chart .axis-label{font-size:12px;fill:var(--fg)}
.chart .series{fill:none;stroke-width:1.6;stroke-linejoin:round}
.legend{list-style:none;padding:0;margin:4px 0;display:flex;gap:16px;flex-wrap:wrap}
.swatch{display:inline-block;width:12px;height:3px;margin-right:6px;vertical-align:middle}
.timeline{list-style:none;padding:0;margin:0;font-size:12px}
.warnings li{color:var(--warn)}
details summary{cursor:pointer;font-family:ui-monospace,monospace;font-size:12px}
footer{color:var(--muted);font-size:12px;margin:30px auto 20px}
"""
