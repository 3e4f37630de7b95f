"""A comparison (report/compare.py) as plain text, in the summary's house style
(report/text.py): ``█`` sections, space-aligned columns, ✓/✗ marks, ``-`` for a value
that does not exist and ``n/a`` for a relative change from zero."""

from __future__ import annotations

from collections.abc import Sequence

from cannonade.model.regress import QUANTITIES, Unit
from cannonade.model.summary import Summary
from cannonade.report.compare import Change, Comparison, ConditionResult
from cannonade.report.text import (
    FAIL,
    MISSING,
    PASS,
    WARN,
    format_duration,
    format_percent,
    format_rate,
)

NOT_APPLICABLE = "n/a"
HEADER = ("", "A", "B", "change", "relative")


def format_value(quantity: str, value: float | None) -> str:
    if value is None:
        return MISSING
    unit = QUANTITIES[quantity][0]
    if unit is Unit.SECONDS:
        return format_duration(value)
    if unit is Unit.FRACTION:
        return format_percent(value)
    return format_rate(value)


def format_delta(quantity: str, delta: float | None) -> str:
    if delta is None:
        return MISSING
    unit = QUANTITIES[quantity][0]
    if unit is Unit.FRACTION:
        # Percentage points: "+1.00%" would read as a relative change.
        return f"{delta * 100:+.2f}pp"
    sign = "+" if delta > 0 else ("-" if delta < 0 else "")
    return sign + format_value(quantity, abs(delta))


def format_relative(change: Change) -> str:
    if change.delta is None:
        return MISSING
    rel = change.relative
    return NOT_APPLICABLE if rel is None else f"{rel * 100:+.1f}%"


def change_cells(ch: Change) -> list[str]:
    return [
        ch.quantity,
        format_value(ch.quantity, ch.a),
        format_value(ch.quantity, ch.b),
        format_delta(ch.quantity, ch.delta),
        format_relative(ch),
    ]


def _table(rows: Sequence[Sequence[str]], indent: str = "    ") -> list[str]:
    """Text columns left-aligned, numbers right-aligned; a blank cell stays blank."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    numeric = len(rows[0]) - 4  # the last four columns: A, B, change, relative
    out = []
    for row in rows:
        cells = [
            c.ljust(w) if i < numeric else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def _run_line(label: str, s: Summary) -> str:
    parts = [f"{label}: run {s.info.run_id or MISSING}", s.info.scenario or MISSING]
    parts.append(format_duration(s.info.duration))
    if s.info.interrupted:
        parts.append("interrupted")
    return ", ".join(parts)


def _overall_section(c: Comparison) -> list[str]:
    rows = [list(HEADER), *(change_cells(ch) for ch in c.overall)]
    return ["  █ OVERALL", "", *_table(rows), ""]


def _requests_section(c: Comparison) -> list[str]:
    lines = ["  █ REQUESTS", ""]
    both = [r for r in c.requests if r.in_a and r.in_b]
    if both:
        rows: list[list[str]] = [["name", "method", *HEADER]]
        for r in both:
            for i, ch in enumerate(r.changes):
                # The name once per request: five rows of it would bury the numbers.
                head = [r.name or "(unnamed)", r.method] if i == 0 else ["", ""]
                rows.append([*head, *change_cells(ch)])
        lines += _table(rows)
    else:
        lines.append("    no request name is in both runs")
    lines.append("")
    for status, where in (("added", "only in B"), ("removed", "only in A")):
        names = [f"{r.method} {r.name or '(unnamed)'}" for r in c.requests if r.status == status]
        if names:
            lines.append(f"    {status} ({where}): " + ", ".join(names))
    if lines[-1]:
        lines.append("")
    return lines


def condition_line(r: ConditionResult) -> str:
    """``✗ 'p95 +10%' p95: A 20ms, B 25ms (+5ms, +25.0%)``, or why it could not be
    decided."""
    q = r.condition.quantity
    ch = Change(q, r.a, r.b)
    mark = PASS if r.passed else FAIL
    text = f"{mark} {r.condition.source!r} {r.label}: "
    if r.a is None or r.b is None:
        return text + r.reason
    text += f"A {format_value(q, r.a)}, B {format_value(q, r.b)} "
    text += f"({format_delta(q, ch.delta)}, {format_relative(ch)})"
    return text + (f"; {r.reason}" if r.reason else "")


def _conditions_section(c: Comparison) -> list[str]:
    return ["  █ FAIL-IF", "", *("    " + condition_line(r) for r in c.results), ""]


def verdict_line(c: Comparison) -> str:
    n, failed = len(c.results), len(c.failed)
    if failed:
        return f"  {FAIL} FAILED: {failed} of {n} conditions failed"
    return f"  {PASS} PASSED: all {n} conditions held"


def render_comparison(c: Comparison) -> str:
    lines = ["", "  " + _run_line("A", c.a), "  " + _run_line("B", c.b), ""]
    if c.a.info.interrupted or c.b.info.interrupted:
        lines += [f"  {WARN} an interrupted run covers only what ran", ""]
    lines += _overall_section(c)
    if c.requests:
        lines += _requests_section(c)
    if c.results:
        lines += _conditions_section(c)
        lines.append(verdict_line(c))
    return "\n".join(lines) + "\n"
