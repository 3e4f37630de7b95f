"""The HTML report's sections for what is not plain HTTP: tests of the loads runners,
sockets (loads' and cannonade's WebSocket client), custom timers and OCT transactions,
and the workload (each agent or turret, with its status timeline).

Totals come from the :class:`Summary`, like the rest of the report; only the per-name
breakdowns (tests, WebSocket sessions) and the charts read the stored aggregator,
where they are plain counter sums and cannot disagree with the summary.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from html import escape

from cannonade.model.aggregate import Aggregator
from cannonade.model.metrics import (
    BUILTIN_KINDS,
    SOCKET_DATA,
    SOCKET_MESSAGES,
    SOCKETS_CLOSED,
    SOCKETS_OPENED,
    TESTS_ERRORED,
    TESTS_FAILED,
    TESTS_PASSED,
    TESTS_STARTED,
    TRANSACTION_DURATION,
    TRANSACTION_ERRORS,
    TRANSACTIONS,
    WS_CONNECTING,
    WS_DATA_RECEIVED,
    WS_DATA_SENT,
    WS_MSGS_RECEIVED,
    WS_MSGS_SENT,
    WS_SESSION_DURATION,
    WS_SESSIONS,
    Kind,
)
from cannonade.model.summary import AgentLine, CounterValues, Summary, TrendValues
from cannonade.report.html_charts import (
    Cell,
    Chart,
    Num,
    Raw,
    compact,
    count,
    counter_line,
    mono,
    ms,
    muted,
    render_chart,
    table,
    trend_lines,
)
from cannonade.report.text import (
    MISSING,
    format_bytes,
    format_count,
    format_duration,
    format_number,
    format_rate,
)
from cannonade.storage.records import AgentRecord, StoredRun

TEST_METRICS = (TESTS_STARTED, TESTS_PASSED, TESTS_FAILED, TESTS_ERRORED)
MAX_TRACEBACKS = 5
MAX_TIMELINE = 200
MAX_TIMERS = 50  # a chart each: more would make a page nobody scrolls through
# Statuses that mean an agent stopped doing its part (OCT's "Aborted", the HQ's "missing").
BAD_STATUSES = frozenset({"missing", "aborted", "failed", "error"})

SOCKET_COUNTERS = (SOCKETS_OPENED, SOCKETS_CLOSED, SOCKET_MESSAGES, SOCKET_DATA)
WS_COUNTERS = (WS_SESSIONS, WS_MSGS_SENT, WS_MSGS_RECEIVED, WS_DATA_SENT, WS_DATA_RECEIVED)
WS_TRENDS = (WS_CONNECTING, WS_SESSION_DURATION)
SOCKET_CHART = (SOCKETS_OPENED, SOCKETS_CLOSED, SOCKET_MESSAGES)
SOCKET_CHART_WS = (WS_SESSIONS, WS_MSGS_SENT, WS_MSGS_RECEIVED)
BYTES = frozenset({SOCKET_DATA, WS_DATA_SENT, WS_DATA_RECEIVED})


def utc(epoch: float | None) -> str:
    if epoch is None:
        return MISSING
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def offset(at: float, start: float) -> str:
    d = at - start
    return f"{'-' if d < 0 else '+'}{abs(d):.1f}s"


def _by_name(agg: Aggregator, metrics: tuple[str, ...]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key, n in agg.counters.items():
        if key.metric in metrics:
            row = out.setdefault(key.name, {})
            row[key.metric] = row.get(key.metric, 0.0) + n
    return out


def _trend_cells(v: TrendValues) -> list[Cell]:
    stats = (v.avg, v.min, v.med, v.p90, v.p95, v.p99, v.max)
    return [count(v.count), *(Num(format_duration(s), ms(s)) for s in stats)]


TREND_HEADS = ("count", "avg", "min", "med", "p90", "p95", "p99", "max")


# -- tests ---------------------------------------------------------------------------------


def tests_section(stored: StoredRun, summary: Summary) -> str:
    """Tests by name (the summary has only their totals), then the most frequent
    error groups with their tracebacks: a failing test reports its exception as one."""
    by_name = _by_name(stored.aggregator, TEST_METRICS)
    if not by_name:
        return muted("No tests were reported (the loads runners report them).")
    rows: list[list[Cell]] = [
        [name or "(unnamed)", *(count(counts.get(m, 0.0)) for m in TEST_METRICS)]
        for name, counts in sorted(by_name.items())
    ]
    totals = [sum(c.get(m, 0.0) for c in by_name.values()) for m in TEST_METRICS]
    rows.append([Raw("<strong>all tests</strong>"), *(count(n) for n in totals)])
    parts = [table(("test", "started", "passed", "failed", "errored"), rows, "tests")]
    # Most frequent first, as the summary orders them; a group without a sample (an
    # HTTP status, a transaction's message) has no traceback to show.
    top = sorted((e for e in summary.errors if e.sample), key=lambda e: -e.count)
    if top:
        parts.append("<h3>Top tracebacks</h3>")
        for e in top[:MAX_TRACEBACKS]:
            parts.append(
                f'<div class="tb"><p><strong>{escape(format_count(e.count))}×</strong> '
                f"{escape(e.kind)}: {escape(e.message)}</p>"
                f'<pre class="traceback">{escape(e.sample)}</pre></div>'
            )
    return "\n".join(parts)


# -- sockets -------------------------------------------------------------------------------


def _counter_row(summary: Summary, name: str) -> list[Cell] | None:
    m = summary.metric(name)
    if m is None or not isinstance(m.values, CounterValues):
        return None
    v = m.values
    if name in BYTES:
        rate = MISSING if v.rate is None else format_bytes(v.rate) + "/s"
        return [name, Num(format_bytes(v.count), v.count), Num(rate, v.rate)]
    return [name, Num(format_number(v.count), v.count), Num(format_rate(v.rate), v.rate)]


def sockets_section(stored: StoredRun, summary: Summary) -> str:
    """Sockets of the loads runners and sessions of cannonade's WebSocket client: the
    totals, WebSocket sessions by name, their handshake and session times, a chart."""
    rows = [r for r in (_counter_row(summary, n) for n in SOCKET_COUNTERS + WS_COUNTERS) if r]
    trends = []
    for name in WS_TRENDS:
        m = summary.metric(name)
        if m is not None and isinstance(m.values, TrendValues) and m.values.count:
            trends.append([name, *_trend_cells(m.values)])
    if not rows and not trends:
        return muted("No sockets or WebSocket sessions were used.")
    parts = [table(("metric", "count", "rate"), rows, "sockets")] if rows else []
    by_name = _by_name(stored.aggregator, WS_COUNTERS)
    if by_name:
        heads = ("session", "sessions", "msgs sent", "msgs received", "data sent", "data received")
        ws_rows: list[list[Cell]] = []
        for name, c in sorted(by_name.items()):
            cells: list[Cell] = [name or "(unnamed)"]
            for metric in WS_COUNTERS:
                n = c.get(metric, 0.0)
                cells.append(Num(format_bytes(n), n) if metric in BYTES else count(n))
            ws_rows.append(cells)
        parts.append("<h3>WebSocket sessions by name</h3>" + table(heads, ws_rows, "ws"))
    if trends:
        parts.append(table(("trend", *TREND_HEADS), trends, "ws-trends"))
    origin = summary.info.started
    lines = tuple(
        s
        for s in (
            counter_line(stored.aggregator, origin, f"{m}/s", frozenset({m}))
            for m in (*SOCKET_CHART, *SOCKET_CHART_WS)
        )
        if any(v for _, v in s.points)
    )
    if lines:
        chart = Chart("chart-sockets", "Sockets per second", "per second", lines, compact)
        parts.append(render_chart(chart))
    return "\n".join(parts)


# -- custom timers and transactions --------------------------------------------------------


def is_timer(metric: str) -> bool:
    """A trend by this name is a timer: OCT's transaction_duration, or custom."""
    return metric == TRANSACTION_DURATION or metric not in BUILTIN_KINDS


def timer_names(kinds: Mapping[str, Kind]) -> list[str]:
    """OCT's transaction_duration and every custom trend (an OCT custom timer is a trend
    named by the timer), built-in ones left to the metric tables."""
    names = sorted(m for m, k in kinds.items() if k is Kind.TREND and m not in BUILTIN_KINDS)
    return [TRANSACTION_DURATION, *names]


def timers_section(stored: StoredRun, summary: Summary) -> str:
    parts = []
    tx = [r for r in (_counter_row(summary, n) for n in (TRANSACTIONS, TRANSACTION_ERRORS)) if r]
    if tx:
        parts.append(table(("metric", "count", "rate"), tx, "transactions"))
    shown = 0
    for i, name in enumerate(timer_names(stored.aggregator.kinds)):
        m = summary.metric(name)
        if m is None or not isinstance(m.values, TrendValues) or not m.values.count:
            continue
        shown += 1
        if shown > MAX_TIMERS:
            parts.append(muted("… and more timers; all are in the trends under Metrics."))
            break
        parts.append(f"<h3>{escape(name)}</h3>")
        parts.append(table(TREND_HEADS, [_trend_cells(m.values)], "timer"))
        lines = trend_lines(stored.aggregator, summary.info.started, name)
        chart = Chart(f"chart-timer-{i}", f"{name} over time", "ms", lines, compact)
        if not chart.empty:
            parts.append(render_chart(chart))
    return "\n".join(parts) or muted("No custom timers or transactions were recorded.")


# -- workload ------------------------------------------------------------------------------


def _info(rec: AgentRecord | None, key: str) -> str:
    # The HQ's record of an agent may carry what its OCT status said (script, rampup).
    if rec is None:
        return MISSING
    v = rec.info.get(key)
    return MISSING if v is None or v == "" else str(v)


def workload_section(stored: StoredRun, summary: Summary) -> str:
    """One row per agent or turret: what it ran and how its status went."""
    records = {a.id: a for a in stored.agents}
    lines: list[AgentLine] = list(summary.info.agents)
    seen = {a.uuid for a in lines}
    for r in stored.agents:
        if r.id not in seen:
            lines.append(
                AgentLine(r.name, r.id, r.cannons, r.timeline[-1][1] if r.timeline else "")
            )
    if not lines:
        return muted("No agent took part.")
    start = summary.info.started
    rows: list[list[Cell]] = []
    for a in lines:
        rec = records.get(a.uuid)
        lost = MISSING if a.lost_at is None else offset(a.lost_at, start)
        got = f"{a.intervals} of {a.expected}" if a.expected is not None else str(a.intervals)
        problems = "".join(f'<div class="fail">{escape(p)}</div>' for p in a.problems)
        rows.append(
            [
                a.name,
                mono(a.uuid),
                rec.hostname if rec is not None and rec.hostname else MISSING,
                Num(str(a.cannons), a.cannons),
                _info(rec, "script"),
                _info(rec, "rampup"),
                a.status or MISSING,
                mono(lost, utc(a.lost_at)) if a.lost_at is not None else MISSING,
                Num(str(a.losses), a.losses),
                got,
                Raw(timeline(rec, start) + problems),
            ]
        )
    heads = ("name", "uuid", "host", "cannons", "script", "rampup", "last status", "lost at")
    return table((*heads, "losses", "intervals", "status timeline"), rows, "agents")


def timeline(rec: AgentRecord | None, start: float) -> str:
    """The agent's statuses, oldest first; going missing or aborting stands out."""
    if rec is None or not rec.timeline:
        return MISSING
    items = []
    for at, status in rec.timeline[:MAX_TIMELINE]:
        bad = ' class="bad"' if status.lower() in BAD_STATUSES else ""
        items.append(
            f'<li{bad} title="{escape(utc(at))}">{offset(at, start)} {escape(status)}</li>'
        )
    if len(rec.timeline) > MAX_TIMELINE:
        items.append(f"<li>… {len(rec.timeline) - MAX_TIMELINE} more</li>")
    return f'<ol class="timeline">{"".join(items)}</ol>'
