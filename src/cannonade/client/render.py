"""A remote run as text: the progress line while it runs, its summary (from the
k6-style export the API serves) and its exit code, as ``cannonade run`` would give."""

from __future__ import annotations

import time
from typing import Any

from cannonade.client.http import RemoteRun
from cannonade.report.live import format_clock
from cannonade.report.text import MISSING, format_bytes, format_count, format_duration

# As ``cannonade run`` (cli/run.py, which pulls in the engine: not imported here).
EXIT_OK, EXIT_ERROR, EXIT_THRESHOLDS, EXIT_INTERRUPTED = 0, 1, 99, 130
FINAL = frozenset({"finished", "degraded", "interrupted", "failed", "aborted"})


def is_final(run: RemoteRun) -> bool:
    return run.status in FINAL


def exit_code(run: RemoteRun) -> int:
    """0 passed, 99 thresholds failed, 1 the run failed, 130 it was stopped."""
    if run.status == "failed":
        return EXIT_ERROR
    if run.status in ("interrupted", "aborted"):
        return EXIT_INTERRUPTED
    extra = _cannonade(run)
    if extra.get("error"):
        return EXIT_ERROR  # as `cannonade run`: an error outranks the thresholds
    if any(not t.get("passed", False) for t in _list(extra.get("thresholds"))):
        return EXIT_THRESHOLDS
    return EXIT_OK if run.verdict in (None, "passed") else EXIT_ERROR


def progress_line(run: RemoteRun, now: float | None = None) -> str:
    """status, elapsed, requests, req/s, errors, p95: one line, for a log or a pipe."""
    live = run.live or {}
    started = run.started or live.get("started")
    if "elapsed" in live:
        elapsed = float(live["elapsed"])
    elif isinstance(started, int | float):
        elapsed = max(0.0, (now or time.time()) - started)
    else:
        elapsed = max(0.0, (now or time.time()) - run.created)  # time spent queued
    clock = format_clock(elapsed)
    total = live.get("total")
    if isinstance(total, int | float) and total > 0:
        clock += f"/{format_clock(total)}"
    if "requests" not in live:
        return f"{run.status:<11} {clock}"
    rps = _number(live.get("rps")) or 0.0
    return (
        f"{run.status:<11} {clock}  requests {format_count(int(live['requests']))}"
        f"  req/s {rps:,.0f}  errors {format_count(int(live.get('errors') or 0))}"
        f"  p95 {format_duration(_number(live.get('p95')))}"
    )


def summary_text(run: RemoteRun) -> str:
    """The run's key totals, thresholds and errors, k6-style."""
    export = run.summary or {}
    metrics: dict[str, Any] = export.get("metrics") or {}
    extra = _cannonade(run)
    totals = extra.get("totals") or {}
    lines = [f"run {run.id}: {run.status}, {run.verdict or 'no verdict'}"]
    rows: list[tuple[str, str]] = [("scenario", run.scenario or MISSING)]
    rows.append(("duration", format_duration(_number(extra.get("duration_s")))))
    reqs = metrics.get("http_reqs") or {}
    count = int(reqs.get("count") or 0)
    rows.append(("http_reqs", f"{format_count(count)}  {_per_second(reqs.get('rate'))}"))
    failed = metrics.get("http_req_failed")
    if failed:
        rows.append(("http_req_failed", _rate(failed, "failed")))
    trend = metrics.get("http_req_duration")
    if trend:
        rows.append(("http_req_duration", _trend(trend)))
    iterations = metrics.get("iterations") or {}
    if iterations:
        rows.append(("iterations", format_count(int(iterations.get("count") or 0))))
    checks = metrics.get("checks")
    if checks:
        rows.append(("checks", _rate(checks, "passed")))
    for name in ("data_received", "data_sent"):
        size = _number(totals.get(name))
        if size:
            rows.append((name, format_bytes(size)))
    width = max(len(name) for name, _ in rows) + 3
    lines += [f"  {(name + ' ').ljust(width, '.')} {value}" for name, value in rows]
    lines += _thresholds(extra)
    errors = _list(extra.get("errors"))
    if errors:
        lines.append("errors")
        lines += [f"  {e.get('count', 0)} × {e.get('kind')}: {e.get('message')}" for e in errors]
    # What went wrong around the measurements: why a run failed, an agent lost...
    lines += [f"note: {n}" for n in extra.get("notes") or () if isinstance(n, str)]
    if extra.get("error"):
        lines.append(f"error: {extra['error']}")
    return "\n".join(lines)


def _thresholds(extra: dict[str, Any]) -> list[str]:
    results = _list(extra.get("thresholds"))
    if not results:
        return []
    out = ["thresholds"]
    for t in results:
        mark = "✓" if t.get("passed") else "✗"
        value = _number(t.get("value"))
        shown = MISSING
        if value is not None:
            shown = format_duration(value / 1000) if t.get("unit") == "ms" else f"{value:g}"
        reason = f" ({t['reason']})" if t.get("reason") else ""
        out.append(f"  {mark} {t.get('metric')}: {t.get('condition')}  value {shown}{reason}")
    return out


def _trend(t: dict[str, Any]) -> str:
    def ms(key: str) -> str:
        value = _number(t.get(key))
        return format_duration(None if value is None else value / 1000)

    return "  ".join(f"{k}={ms(k)}" for k in ("avg", "med", "p(95)", "p(99)", "max"))


def _rate(r: dict[str, Any], what: str) -> str:
    # k6's export counts a rate metric's true samples as "passes": failed requests for
    # http_req_failed, passed checks for checks; ``what`` names which.
    trues, falses = int(r.get("passes") or 0), int(r.get("fails") or 0)
    value = _number(r.get("value"))
    percent = MISSING if value is None else f"{value * 100:.2f}%"
    return f"{percent}  {format_count(trues)} of {format_count(trues + falses)} {what}"


def _per_second(rate: object) -> str:
    value = _number(rate)
    return "" if value is None else f"{value:,.1f}/s"


def _number(x: object) -> float | None:
    """A JSON number as a float; None for null (a value that could not be measured)."""
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _cannonade(run: RemoteRun) -> dict[str, Any]:
    extra = (run.summary or {}).get("cannonade")
    return extra if isinstance(extra, dict) else {}


def _list(x: object) -> list[dict[str, Any]]:
    return [i for i in x if isinstance(i, dict)] if isinstance(x, list) else []


def run_cells(run: RemoteRun) -> tuple[str, ...]:
    """A row of ``cannonade runs``' table: its numbers from the summary of a final run
    (get_run's), the live totals of one in progress, else none."""
    live = run.live or {}
    requests: float | None
    if run.summary is not None:
        metrics = run.summary.get("metrics") or {}
        requests = _number((_cannonade(run).get("totals") or {}).get("requests"))
        p95_ms = _number((metrics.get("http_req_duration") or {}).get("p(95)"))
        p95 = None if p95_ms is None else p95_ms / 1000
    else:
        requests, p95 = _number(live.get("requests")), _number(live.get("p95"))
    started = run.started
    duration = None
    if started is not None and run.ended is not None:
        duration = max(0.0, run.ended - started)
    return (
        run.id,
        run.status,
        run.verdict or MISSING,
        run.scenario or MISSING,
        MISSING if started is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        format_duration(duration),
        MISSING if requests is None else format_count(int(requests)),
        format_duration(p95),
    )
