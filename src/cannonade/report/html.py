"""A stored run as one self-contained HTML file: inline CSS, inline SVG charts, no
script and nothing fetched, so it opens the same from a mail attachment or offline.

Every number comes from the same :class:`Summary` the text summary prints, formatted
by the same functions, so the report and ``cannonade show`` never disagree; only the
charts (``html_charts``) and the per-test table read the stored series. Every string
from the run (names, messages, options) is user data and is escaped.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from cannonade import __version__
from cannonade.model.metrics import (
    DATA_RECEIVED,
    DATA_SENT,
    HTTP_REQ_DURATION,
    HTTP_REQ_FAILED,
    HTTP_REQS,
)
from cannonade.model.summary import (
    CounterValues,
    GaugeValues,
    MetricSummary,
    RateValues,
    Summary,
    TrendValues,
)
from cannonade.report.export import json_safe
from cannonade.report.html_charts import (
    Cell,
    Num,
    Raw,
    build_charts,
    count,
    mark,
    mono,
    ms,
    muted,
    render_charts,
    table,
)
from cannonade.report.html_sections import (
    is_timer,
    offset,
    sockets_section,
    tests_section,
    timers_section,
    utc,
    workload_section,
)
from cannonade.report.html_style import CSS
from cannonade.report.stored import stored_summary

# The text summary's own cells and lines, reused on purpose: the
# report must print exactly what `cannonade show` prints.
from cannonade.report.text import (
    BYTE_METRICS,
    FAIL,
    MISSING,
    PASS,
    REQUEST_HEADERS,
    format_bytes,
    format_count,
    format_duration,
    format_number,
    format_percent,
    format_rate,
    innermost_frame,
    measured_text,
    request_cells,
    verdict_line,
    warning_lines,
)
from cannonade.storage.records import ACTIVE_STATUSES, RunStatus, StoredRun

if TYPE_CHECKING:
    from cannonade.storage import Store

MAX_ERROR_GROUPS = 200
MAX_EVENTS = 1000


# -- sections ------------------------------------------------------------------------------


def outcome(status: str, summary: Summary) -> str:
    """One word for the badge, in the order the exit code decides: interrupted, then
    failed, then degraded, else passed; a run still going shows its status."""
    if status == RunStatus.QUEUED or status in ACTIVE_STATUSES:
        return status
    if summary.interrupted or status == RunStatus.INTERRUPTED:
        return "interrupted"
    if status in (RunStatus.FAILED, RunStatus.ABORTED) or summary.verdict == "failed":
        return "failed"
    if status == RunStatus.DEGRADED or summary.info.degraded:
        return "degraded"
    return "passed"


def _header(stored: StoredRun, summary: Summary) -> str:
    info = summary.info
    word = escape(outcome(stored.status, summary))
    facts = (
        ("scenario", info.scenario or stored.scenario or MISSING),
        ("status", stored.status),
        ("verdict", summary.verdict),
        ("started", utc(info.started)),
        ("ended", utc(info.ended)),
        ("duration", format_duration(summary.totals.duration)),
    )
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts)
    note = ""
    if stored.status == RunStatus.QUEUED or stored.status in ACTIVE_STATUSES:
        note = muted("Not finished: this covers what was stored so far.")
    return (
        f'<header><h1>run <span class="mono">{escape(stored.id)}</span> '
        f'<span class="badge {word}">{word}</span></h1><dl class="facts">{dl}</dl>'
        f'<pre class="verdict">{escape(verdict_line(summary))}</pre>{note}</header>'
    )


def _thresholds(summary: Summary) -> str:
    if not summary.thresholds:
        return muted("No thresholds were set.")
    rows = [
        (mark(r.passed), r.threshold.selector, r.threshold.condition, measured_text(r))
        for r in summary.thresholds
    ]
    return table(("", "metric", "condition", "measured"), rows, "thresholds")


def _counter(summary: Summary, name: str) -> CounterValues | None:
    m = summary.metric(name)
    return m.values if m is not None and isinstance(m.values, CounterValues) else None


def _totals(summary: Summary) -> str:
    t = summary.totals
    reqs = _counter(summary, HTTP_REQS)
    failed = summary.metric(HTTP_REQ_FAILED)
    fails = failed.values if failed is not None else None

    def data(name: str, amount: float) -> str:
        c = _counter(summary, name)
        rate = MISSING if c is None or c.rate is None else format_bytes(c.rate) + "/s"
        return f"{format_bytes(amount)} ({rate})"

    cards = (
        ("requests", format_count(t.requests)),
        (
            "failures",
            f"{format_count(fails.trues)} ({format_percent(fails.rate)})"
            if isinstance(fails, RateValues)
            else MISSING,
        ),
        ("req/s", format_rate(reqs.rate if reqs is not None else None)),
        ("data received", data(DATA_RECEIVED, t.data_received)),
        ("data sent", data(DATA_SENT, t.data_sent)),
        ("iterations", format_count(t.iterations)),
        ("dropped iterations", format_count(summary.dropped_iterations)),
        ("duration", format_duration(t.duration)),
    )
    inner = "".join(
        f'<div class="card"><div class="label">{escape(k)}</div>'
        f'<div class="value">{escape(v)}</div></div>'
        for k, v in cards
    )
    return f'<div class="cards">{inner}</div>'


def _requests(summary: Summary) -> str:
    if not summary.requests:
        return muted("No requests were recorded.")
    rows: list[list[Cell]] = []
    for r in summary.requests:
        name, method, count, fail, rps, *durations = request_cells(r)
        seconds = (r.avg, r.min, r.p50, r.p90, r.p95, r.p99, r.max)
        stats = (Num(text, ms(s)) for text, s in zip(durations, seconds, strict=True))
        rows.append(
            [name, method, Num(count, r.count), Num(fail, r.failures), Num(rps, r.rps), *stats]
        )
    return table(REQUEST_HEADERS, rows, "requests")


def _label(m: MetricSummary) -> Cell:
    if not m.is_submetric:
        return m.name
    inner = ", ".join(f"{k}:{v}" for k, v in m.filters)
    return Raw(f'<span class="sub">{escape(m.parent)} {{ {escape(inner)} }}</span>')


def _metric_row(m: MetricSummary) -> list[Cell]:
    v = m.values
    if isinstance(v, TrendValues):
        stats = (v.avg, v.min, v.med, v.p90, v.p95, v.p99, v.max)
        return [_label(m), count(v.count)] + [Num(format_duration(s), ms(s)) for s in stats]
    if isinstance(v, CounterValues):
        if (m.parent or m.name) in BYTE_METRICS:
            rate = MISSING if v.rate is None else format_bytes(v.rate) + "/s"
            return [_label(m), Num(format_bytes(v.count), v.count), Num(rate, v.rate)]
        return [_label(m), Num(format_number(v.count), v.count), Num(format_rate(v.rate), v.rate)]
    if isinstance(v, RateValues):
        pct = Num(format_percent(v.rate), v.rate)
        return [_label(m), pct, Num(str(v.trues), v.trues), Num(str(v.falses), v.falses)]
    return [_label(m)] + [Num(format_number(x), x) for x in (v.value, v.min, v.max)]


METRIC_TABLES = (
    (TrendValues, "Trends", ("trend", "count", "avg", "min", "med", "p90", "p95", "p99", "max")),
    (CounterValues, "Counters", ("counter", "count", "rate")),
    (RateValues, "Rates", ("rate", "value", f"{PASS} true", f"{FAIL} false")),
    (GaugeValues, "Gauges", ("gauge", "last", "min", "max")),
)


def _metrics(summary: Summary) -> str:
    """Every metric of the run, by kind: custom timers and counters, OCT transactions,
    sockets and tests land in these tables like the built-in ones."""
    parts = []
    for kind, title, heads in METRIC_TABLES:
        rows = [_metric_row(m) for m in summary.metrics if isinstance(m.values, kind)]
        if rows:
            parts.append(f"<h3>{title}</h3>" + table(heads, rows, title.lower()))
    if summary.checks:
        rows = [[mark(c.passed), c.name, count(c.passes), count(c.fails)] for c in summary.checks]
        parts.append("<h3>Checks</h3>" + table(("", "check", "passes", "fails"), rows, "checks"))
    return "\n".join(p for p in parts if p) or muted("No measurements were recorded.")


def _sample(sample: str) -> Cell:
    if not sample:
        return MISSING
    frame = escape(innermost_frame(sample) or "sample")
    return Raw(f"<details><summary>{frame}</summary><pre>{escape(sample)}</pre></details>")


def _errors(stored: StoredRun, summary: Summary) -> str:
    parts = []
    warnings = [line.strip() for line in warning_lines(summary) if line.strip()]
    if warnings:
        items = "".join(f"<li>{escape(w)}</li>" for w in warnings)
        parts.append(f'<ul class="warnings">{items}</ul>')
    if summary.errors:
        shown = summary.errors[:MAX_ERROR_GROUPS]
        rows = [[count(e.count), e.kind, e.message, _sample(e.sample)] for e in shown]
        heads = ("count", "kind", "message", "sample")
        parts.append("<h3>Errors</h3>" + table(heads, rows, "errors"))
        rest = summary.errors[MAX_ERROR_GROUPS:]
        if rest:
            n = format_count(sum(e.count for e in rest))
            parts.append(f"<p>… and {len(rest)} more kinds of error ({n} errors)</p>")
    for title, pairs, head in (
        ("Transport errors", summary.transport_errors, "kind"),
        ("Status codes", summary.status_codes, "status"),
    ):
        if pairs:
            rows = [[k, count(n)] for k, n in pairs]
            parts.append(f"<h3>{title}</h3>" + table((head, "count"), rows, head))
    if stored.events:
        start = summary.info.started
        rows = [
            [mono(offset(e.at, start), utc(e.at)), e.kind, e.message]
            for e in stored.events[:MAX_EVENTS]
        ]
        parts.append("<h3>Events</h3>" + table(("at", "kind", "message"), rows, "events"))
        if len(stored.events) > MAX_EVENTS:
            parts.append(f"<p>… and {len(stored.events) - MAX_EVENTS} more events</p>")
    return "\n".join(parts) or muted("No errors, no events.")


def _options(options: Mapping[str, object]) -> str:
    if not options:
        return muted("No options were stored.")
    rows = []
    # Sorted as the store keeps them, so a report rebuilt later lists them the same way.
    for k, v in sorted(options.items()):
        safe = json_safe(v)
        text = safe if isinstance(safe, str) else json.dumps(safe, ensure_ascii=False)
        rows.append([mono(str(k)), mono(text)])
    return table(("option", "value"), rows, "options")


# -- the page ------------------------------------------------------------------------------

SECTIONS = (
    ("thresholds", "Thresholds"),
    ("totals", "Totals"),
    ("charts", "Over time"),
    ("requests", "Requests"),
    ("tests", "Tests"),
    ("sockets", "Sockets"),
    ("timers", "Timers"),
    ("metrics", "Metrics"),
    ("agents", "Workload"),
    ("errors", "Errors and events"),
    ("options", "Options"),
)

# Belt and braces: even a tag that slipped in could not fetch anything.
CSP = "default-src 'none'; style-src 'unsafe-inline'"


def render_html(stored: StoredRun, summary: Summary) -> str:
    """The report of a stored run whose summary is ``summary`` (as printed when it
    ran, or as ``cannonade show`` rebuilds it)."""
    bodies = {
        "thresholds": _thresholds(summary),
        "totals": _totals(summary),
        "charts": render_charts(build_charts(stored.aggregator, summary.info.started)),
        "requests": _requests(summary),
        "tests": tests_section(stored, summary),
        "sockets": sockets_section(stored, summary),
        "timers": timers_section(stored, summary),
        "metrics": _metrics(summary),
        "agents": workload_section(stored, summary),
        "errors": _errors(stored, summary),
        "options": _options(summary.info.options or stored.options),
    }
    nav = "".join(f'<a href="#{k}">{escape(t)}</a>' for k, t in SECTIONS)
    sections = "\n".join(
        f'<section id="{k}"><h2>{escape(t)}</h2>\n{bodies[k]}\n</section>' for k, t in SECTIONS
    )
    version = escape(__version__)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="cannonade {version}">\n'
        f"<title>cannonade run {escape(stored.id)}</title>\n<style>{CSS}</style></head>\n"
        f"<body>\n{_header(stored, summary)}\n<nav>{nav}</nav>\n<main>\n{sections}\n</main>\n"
        f"<footer>cannonade {version}, report written {utc(time.time())}</footer>\n"
        "</body></html>\n"
    )


class ReportSeries(frozenset[str]):
    """The ``series_trends`` a report wants: http_req_duration's per-second histograms
    for the latency chart, and those of every timer (transaction_duration and custom
    trends, whose names are known only once the run is read) for their charts. The
    other built-in trends' are left out: the report draws none of them."""

    def __contains__(self, item: object) -> bool:
        # Only trend keys are asked about, so a name no built-in has is a custom timer.
        return isinstance(item, str) and (item == HTTP_REQ_DURATION or is_timer(item))


def load_for_report(store: Store, run_id: str) -> StoredRun:
    """A stored run read with what its report charts (see :class:`ReportSeries`)."""
    return store.load(run_id, series_trends=ReportSeries())


def render_stored_report(store: Store, run_id: str) -> str:
    """The report of the stored run ``run_id``, its summary rebuilt as ``cannonade show``
    rebuilds it (for callers that hold a store: the HTTP API)."""
    stored = load_for_report(store, run_id)
    return render_html(stored, stored_summary(stored))


def write_html_report(stored: StoredRun, summary: Summary, path: str | os.PathLike[str]) -> None:
    """Write the report to ``path``, replacing it whole: a reader never sees half a file."""
    target = Path(path)
    data = render_html(stored, summary).encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make a report only its writer can read
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
