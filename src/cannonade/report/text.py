"""The end-of-test summary as plain text, in k6's layout.

Sections, each only when it has something to say: THRESHOLDS, TOTAL RESULTS (one line
per metric, submetrics indented under their metric), CHECKS, REQUESTS (per name),
ERRORS (top 10), TRANSPORT ERRORS, warnings (lost data, dropped iterations), and a
final verdict line. Output depends only on the summary, in a fixed order.

Formatting follows k6: durations in adaptive units with three significant digits,
data in SI units (1 kB = 1000 B), rates as percentages with ✓ trues and ✗ falses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from cannonade.model.metrics import (
    DATA_RECEIVED,
    DATA_SENT,
    WS_DATA_RECEIVED,
    WS_DATA_SENT,
    Kind,
)
from cannonade.model.summary import (
    CounterValues,
    GaugeValues,
    MetricSummary,
    RateValues,
    RequestRow,
    Summary,
    TrendValues,
)
from cannonade.model.thresholds import ThresholdResult

BYTE_METRICS = frozenset({DATA_RECEIVED, DATA_SENT, WS_DATA_RECEIVED, WS_DATA_SENT})
PASS = "✓"
FAIL = "✗"
WARN = "⚠"
MAX_ERRORS = 10
DEFAULT_WIDTH = 100
MISSING = "-"


# -- number formatting ---------------------------------------------------------------------


def _sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits, no exponent, trailing zeros dropped."""
    if x == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - magnitude)
    text = f"{x:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _trunc2(x: float) -> str:
    # Truncated, not rounded, so 199.999 shown for a '<200' threshold that passed does
    # not read as "200" (k6 truncates for the same reason).
    text = f"{math.floor(x * 100) / 100:.2f}"
    return text.rstrip("0").rstrip(".")


def format_duration(seconds: float | None, *, precise: bool = False) -> str:
    """Adaptive units: ``532µs``, ``12.3ms``, ``1.25s``, ``2m5s``, ``1h2m5s``.

    ``precise`` keeps two decimals (truncated) instead of three significant digits,
    for values compared against a threshold.
    """
    if seconds is None or not math.isfinite(seconds):
        return MISSING
    if seconds == 0:
        return "0s"
    if seconds < 0:
        return "-" + format_duration(-seconds, precise=precise)
    if not precise and seconds < 60:
        # Round first so that 999.7µs becomes 1ms rather than "1000µs"; from a minute
        # on, whole seconds are shown, and three digits would lose some of them.
        seconds = float(f"{seconds:.3g}")
    fmt = _trunc2 if precise else _sig
    if seconds < 1e-3:
        return fmt(seconds * 1e6) + "µs"
    if seconds < 1:
        return fmt(seconds * 1e3) + "ms"
    if seconds < 60:
        return fmt(seconds) + "s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s"


def format_bytes(n: float) -> str:
    """SI units like k6: ``512 B``, ``75 kB``, ``2.3 MB``."""
    if not math.isfinite(n):
        return MISSING
    if n < 1000:
        return f"{n:.0f} B"
    units = ("kB", "MB", "GB", "TB", "PB")
    value, i = n / 1000, 0
    while value >= 999.5 and i < len(units) - 1:  # else rounding would print "1000 kB"
        value, i = value / 1000, i + 1
    return f"{value:.1f} {units[i]}" if value < 10 else f"{value:.0f} {units[i]}"


def format_number(n: float) -> str:
    if not math.isfinite(n):
        return MISSING
    if float(n).is_integer():
        return str(int(n))
    return _sig(n, 4)


def format_rate(per_second: float | None) -> str:
    return MISSING if per_second is None else _sig(per_second) + "/s"


def format_percent(fraction: float | None) -> str:
    return MISSING if fraction is None else f"{fraction * 100:.2f}%"


def format_count(n: int) -> str:
    return f"{n:,}"


# -- sections ------------------------------------------------------------------------------


def measured_text(result: ThresholdResult) -> str:
    """``p(95)=12.31ms``, ``rate=0.50%``, or the reason nothing was measured."""
    t = result.threshold
    if result.value is None:
        return result.reason or "no value"
    if result.kind is Kind.TREND or t.unit:
        shown = format_duration(result.value / 1000.0, precise=True)
    elif result.kind is Kind.RATE:
        shown = format_percent(result.value)
    elif result.kind is Kind.COUNTER and t.agg == "rate":
        shown = _sig(result.value, 4) + "/s"
    else:
        shown = format_number(result.value)
    return f"{t.agg}={shown}"


def _thresholds_section(summary: Summary) -> list[str]:
    groups: dict[str, list[ThresholdResult]] = {}
    for r in summary.thresholds:
        groups.setdefault(r.threshold.selector, []).append(r)
    lines = ["  █ THRESHOLDS", ""]
    for selector, results in groups.items():
        lines.append(f"    {selector}")
        for r in results:
            mark = PASS if r.passed else FAIL
            lines.append(f"    {mark} '{r.threshold.condition}' {measured_text(r)}")
        lines.append("")
    return lines


def _metric_label(m: MetricSummary) -> str:
    if not m.is_submetric:
        return m.name
    inner = ", ".join(f"{k}:{v}" for k, v in m.filters)
    return "  { " + inner + " }"


def _trend_cols(v: TrendValues) -> list[str]:
    return [
        f"avg={format_duration(v.avg)}",
        f"min={format_duration(v.min)}",
        f"med={format_duration(v.med)}",
        f"max={format_duration(v.max)}",
        f"p(90)={format_duration(v.p90)}",
        f"p(95)={format_duration(v.p95)}",
        f"p(99)={format_duration(v.p99)}",
    ]


def _plain_cols(m: MetricSummary) -> list[str]:
    """First column the value, then up to two extras, as in k6."""
    v = m.values
    if isinstance(v, CounterValues):
        base = m.parent or m.name
        if base in BYTE_METRICS:
            rate = MISSING if v.rate is None else format_bytes(v.rate) + "/s"
            return [format_bytes(v.count), rate]
        return [format_number(v.count), format_rate(v.rate)]
    if isinstance(v, RateValues):
        return [format_percent(v.rate), f"{PASS} {v.trues}", f"{FAIL} {v.falses}"]
    if isinstance(v, GaugeValues):
        return [
            format_number(v.value),
            f"min={format_number(v.min)}",
            f"max={format_number(v.max)}",
        ]
    raise TypeError(f"not a plain metric: {m.name}")  # pragma: no cover


def _pad_columns(rows: Sequence[Sequence[str]]) -> list[str]:
    """Each column padded to its widest cell; the last cell of a row is not padded."""
    widths: list[int] = []
    for row in rows:
        for i, cell in enumerate(row):
            if i == len(widths):
                widths.append(0)
            widths[i] = max(widths[i], len(cell))
    out = []
    for row in rows:
        cells = [c.ljust(widths[i]) if i < len(row) - 1 else c for i, c in enumerate(row)]
        out.append(" ".join(cells))
    return out


def _totals_section(summary: Summary) -> list[str]:
    metrics = summary.metrics
    if not metrics:
        return ["  █ TOTAL RESULTS", "", "    no measurements were recorded", ""]
    labels = [_metric_label(m) for m in metrics]
    name_width = max(31, max(len(label) for label in labels) + 3)
    trend_rows = [_trend_cols(m.values) for m in metrics if isinstance(m.values, TrendValues)]
    plain_rows = [_plain_cols(m) for m in metrics if not isinstance(m.values, TrendValues)]
    trend_text = iter(_pad_columns(trend_rows))
    plain_text = iter(_pad_columns(plain_rows))
    lines = ["  █ TOTAL RESULTS", ""]
    for m, label in zip(metrics, labels, strict=True):
        text = next(trend_text) if isinstance(m.values, TrendValues) else next(plain_text)
        dotted = label + "." * (name_width - len(label))
        lines.append(f"    {dotted}: {text}".rstrip())
    lines.append("")
    return lines


def _checks_section(summary: Summary, width: int) -> list[str]:
    lines = ["  █ CHECKS", ""]
    for c in summary.checks:
        lines.append(_clip(f"    {PASS if c.passed else FAIL} {c.name}", width))
        if not c.passed:
            total = c.passes + c.fails
            pct = math.floor(c.passes * 100 / total) if total else 0
            lines.append(f"     ↳  {pct}% — {PASS} {c.passes} / {FAIL} {c.fails}")
    lines.append("")
    return lines


REQUEST_HEADERS = (
    "name",
    "method",
    "count",
    "fail",
    "rps",
    "avg",
    "min",
    "p50",
    "p90",
    "p95",
    "p99",
    "max",
)


def request_cells(r: RequestRow) -> list[str]:
    return [
        r.name or "(unnamed)",
        r.method,
        format_count(r.count),
        format_count(r.failures),
        MISSING if r.rps is None else _sig(r.rps),
        *(format_duration(x) for x in (r.avg, r.min, r.p50, r.p90, r.p95, r.p99, r.max)),
    ]


def _requests_section(summary: Summary, width: int) -> list[str]:
    rows = [list(REQUEST_HEADERS)] + [request_cells(r) for r in summary.requests]
    widths = [max(len(row[i]) for row in rows) for i in range(len(REQUEST_HEADERS))]
    # Numbers are never cut; a long request name is, down to a readable minimum.
    rest = sum(widths[1:]) + 2 * (len(widths) - 1) + 4
    widths[0] = max(12, min(widths[0], width - rest))
    lines = ["  █ REQUESTS", ""]
    for row in rows:
        cells = [_clip(row[0], widths[0]).ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [c.rjust(w) for c, w in zip(row[2:], widths[2:], strict=True)]
        lines.append("    " + "  ".join(cells))
    lines.append("")
    return lines


def innermost_frame(sample: str) -> str:
    """The last ``File "...", line N, in f`` line of a traceback, else its first line.

    The outermost frame is always the engine calling the user's code; the innermost
    one is where the error came from, which is what a reader wants to see.
    """
    lines = [line.strip() for line in sample.splitlines() if line.strip()]
    frames = [line for line in lines if line.startswith("File ")]
    if frames:
        return frames[-1]
    return lines[0] if lines else ""


def _errors_section(summary: Summary, width: int) -> list[str]:
    lines = ["  █ ERRORS", ""]
    count_width = len(format_count(summary.errors[0].count))
    for e in summary.errors[:MAX_ERRORS]:
        head = f"{e.kind}: {e.message}" if e.message else e.kind
        head = " ".join(head.split())  # a multi-line message stays on one line
        lines.append(_clip(f"    {format_count(e.count).rjust(count_width)}× {head}", width))
        frame = innermost_frame(e.sample)
        if frame:
            lines.append(_clip(" " * (count_width + 6) + frame, width))
    rest = summary.errors[MAX_ERRORS:]
    if rest:
        n = sum(e.count for e in rest)
        lines.append(f"    … and {len(rest)} more kinds of error ({format_count(n)} errors)")
    lines.append("")
    return lines


def _transport_section(summary: Summary) -> list[str]:
    lines = ["  █ TRANSPORT ERRORS", ""]
    width = max(len(kind) for kind, _ in summary.transport_errors) + 3
    for kind, n in summary.transport_errors:
        lines.append(f"    {kind + '.' * (width - len(kind))}: {format_count(n)}")
    lines.append("")
    return lines


def warning_lines(summary: Summary) -> list[str]:
    lines: list[str] = []
    started = summary.info.started
    for a in summary.info.agents:
        if a.losses and a.status.lower() == "aborted" and a.lost_at is not None:
            lines.append(
                f"  {WARN} DEGRADED: turret {a.name} ({a.uuid[:8]}) reported Aborted "
                f"at +{a.lost_at - started:.1f}s"
            )
        elif a.losses:
            when = f"+{a.lost_at - started:.1f}s" if a.lost_at is not None else "and came back"
            got = f"{a.intervals} of {a.expected}" if a.expected is not None else str(a.intervals)
            lines.append(
                f"  {WARN} DEGRADED: agent {a.name} ({a.uuid[:8]}) was lost {when}; "
                f"{got} of its interval reports arrived"
            )
        for p in a.problems:
            lines.append(f"  {WARN} agent {a.name} ({a.uuid[:8]}): {p}")
    for note in summary.info.notes:
        lines.append(f"  {WARN} {note}")
    if summary.gaps:
        lost = sum(len(g.missing) for g in summary.gaps)
        where = ", ".join(f"{g.agent}/{g.cannon}: {_ranges(g.missing)}" for g in summary.gaps)
        lines.append(
            f"  {WARN} LOST DATA: {lost} interval report(s) never arrived ({where}); "
            "totals undercount"
        )
    if summary.dropped_iterations:
        lines.append(
            f"  {WARN} {format_count(summary.dropped_iterations)} iterations were dropped: "
            "the arrival rate outran the available VUs"
        )
    if lines:
        lines.append("")
    return lines


def _ranges(seqs: Sequence[int]) -> str:
    """``1-3, 7`` for (1, 2, 3, 7)."""
    parts: list[str] = []
    start = prev = None
    for s in sorted(seqs):
        if start is None or prev is None:
            start = prev = s
        elif s == prev + 1:
            prev = s
        else:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = prev = s
    if start is not None and prev is not None:
        parts.append(str(start) if start == prev else f"{start}-{prev}")
    return ", ".join(parts)


def verdict_line(summary: Summary) -> str:
    """The last lines: the verdict, and each failed threshold again, since the
    THRESHOLDS section has usually scrolled away by now."""
    n = len(summary.thresholds)
    failed = summary.failed_thresholds
    lines: list[str] = []
    if summary.interrupted:
        ran = format_duration(summary.totals.duration)
        lines.append(f"  {WARN} INTERRUPTED after {ran}: results cover only what ran")
    if summary.info.error:
        lines.append(f"  {FAIL} ERROR: {summary.info.error}")
    elif not n:
        lines.append(f"  {PASS} PASSED: no thresholds were set")
    elif failed:
        lines.append(f"  {FAIL} FAILED: {len(failed)} of {n} thresholds failed")
        lines += [
            f"    {FAIL} {r.threshold.selector} '{r.threshold.condition}' {measured_text(r)}"
            for r in failed
        ]
    else:
        lines.append(f"  {PASS} PASSED: all {n} thresholds passed")
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def render_summary(summary: Summary, *, width: int = DEFAULT_WIDTH) -> str:
    """The whole summary. ``width`` bounds free text (names, messages); metric lines
    are never cut, since every number on them matters."""
    lines: list[str] = [""]
    if summary.thresholds:
        lines += _thresholds_section(summary)
    lines += _totals_section(summary)
    if summary.checks:
        lines += _checks_section(summary, width)
    if summary.requests:
        lines += _requests_section(summary, width)
    if summary.errors:
        lines += _errors_section(summary, width)
    if summary.transport_errors:
        lines += _transport_section(summary)
    lines += warning_lines(summary)
    lines.append(verdict_line(summary))
    return "\n".join(lines) + "\n"
