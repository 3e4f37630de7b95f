"""``--summary-export``: the summary as JSON in k6's legacy export shape.

Tools that read k6's ``--summary-export`` file read this one. Where k6's own shape is
odd, we keep it rather than "fix" it, because compatibility is the point:

* ``metrics.<name>.thresholds`` maps each condition to **true when it FAILED** (k6
  writes ``!threshold.ok``; see grafana/k6 issue #1498). Our unambiguous per-threshold
  results are under ``cannonade.thresholds`` with a ``passed`` field.
* ``root_group.checks`` and ``root_group.groups`` are objects keyed by name (k6's
  legacy export turns its arrays into maps); ids are md5 of the path, as in k6.
* A rate metric has ``passes`` (samples that were true), ``fails`` (false) and
  ``value`` (the fraction true): for ``http_req_failed`` "passes" are failed requests.

Durations are milliseconds. Values that could not be measured are ``null``; NaN and
infinities never appear. cannonade's own data lives under the ``cannonade`` key.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import orjson

from cannonade.model.metrics import Kind
from cannonade.model.summary import (
    CounterValues,
    GaugeValues,
    MetricValues,
    RateValues,
    RequestRow,
    Summary,
    TrendValues,
)
from cannonade.model.thresholds import ThresholdResult

EXPORT_VERSION = 1
GROUP_SEPARATOR = "::"

Json = dict[str, object]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None or not math.isfinite(seconds) else seconds * 1000.0


def _num(x: float | None) -> float | int | None:
    if x is None or not math.isfinite(x):
        return None
    return int(x) if float(x).is_integer() and abs(x) < 2**53 else x


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def metric_values(values: MetricValues) -> Json:
    if isinstance(values, TrendValues):
        return {
            "avg": _ms(values.avg),
            "min": _ms(values.min),
            "med": _ms(values.med),
            "max": _ms(values.max),
            "p(90)": _ms(values.p90),
            "p(95)": _ms(values.p95),
            "p(99)": _ms(values.p99),
        }
    if isinstance(values, CounterValues):
        return {"count": _num(values.count), "rate": _num(values.rate)}
    if isinstance(values, RateValues):
        return {"passes": values.trues, "fails": values.falses, "value": _num(values.rate)}
    if isinstance(values, GaugeValues):
        return {"value": _num(values.value), "min": _num(values.min), "max": _num(values.max)}
    raise TypeError(f"unknown metric values {values!r}")  # pragma: no cover


def _k6_thresholds(results: tuple[ThresholdResult, ...] | list[ThresholdResult]) -> Json:
    out: dict[str, object] = {}
    for r in results:
        # Two thresholds with the same text on one metric share a key; failed wins.
        out[r.threshold.condition] = bool(out.get(r.threshold.condition, False)) or not r.passed
    return out


def _metrics(summary: Summary) -> Json:
    out: Json = {}
    for m in summary.metrics:
        entry = metric_values(m.values)
        if m.thresholds:
            entry["thresholds"] = _k6_thresholds(m.thresholds)
        out[m.name] = entry
    # A threshold on a metric that has no data still belongs in the file, failed.
    shown = {(r.threshold.selector) for m in summary.metrics for r in m.thresholds}
    orphans: dict[str, list[ThresholdResult]] = {}
    for r in summary.thresholds:
        if r.threshold.selector not in shown:
            orphans.setdefault(r.threshold.selector, []).append(r)
    for selector, results in orphans.items():
        out[selector] = {"thresholds": _k6_thresholds(results)}
    return out


def _root_group(summary: Summary) -> Json:
    checks: Json = {}
    for c in summary.checks:
        path = GROUP_SEPARATOR + c.name
        checks[c.name] = {
            "name": c.name,
            "path": path,
            "id": _md5(path),
            "passes": c.passes,
            "fails": c.fails,
        }
    return {"name": "", "path": "", "id": _md5(""), "groups": {}, "checks": checks}


def _request(r: RequestRow) -> Json:
    return {
        "name": r.name,
        "method": r.method,
        "count": r.count,
        "failures": r.failures,
        "rps": _num(r.rps),
        "avg": _ms(r.avg),
        "min": _ms(r.min),
        "p(50)": _ms(r.p50),
        "p(90)": _ms(r.p90),
        "p(95)": _ms(r.p95),
        "p(99)": _ms(r.p99),
        "max": _ms(r.max),
    }


def _threshold(r: ThresholdResult) -> Json:
    t = r.threshold
    return {
        "metric": t.selector,
        "condition": t.condition,
        "passed": r.passed,
        "value": _num(r.value),
        "unit": "ms" if r.kind is Kind.TREND or t.unit else "",
        "reason": r.reason,
    }


def json_safe(value: object) -> object:
    """Any options value made JSON-safe: non-finite floats to null, the unknown to str."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [json_safe(v) for v in items]
    return str(value)


def _cannonade(summary: Summary) -> Json:
    info = summary.info
    totals = summary.totals
    return {
        "version": EXPORT_VERSION,
        "scenario": info.scenario,
        "started": iso(info.started),
        "ended": iso(info.ended),
        "duration_s": _num(totals.duration),
        "interrupted": info.interrupted,
        "verdict": summary.verdict,
        "thresholds": [_threshold(r) for r in summary.thresholds],
        "totals": {
            "requests": totals.requests,
            "iterations": totals.iterations,
            "data_received": _num(totals.data_received),
            "data_sent": _num(totals.data_sent),
            "dropped_iterations": summary.dropped_iterations,
        },
        "requests_by_name": [_request(r) for r in summary.requests],
        "errors": [
            {"kind": e.kind, "message": e.message, "count": e.count, "sample": e.sample}
            for e in summary.errors
        ],
        "transport_errors": [{"kind": k, "count": n} for k, n in summary.transport_errors],
        "status_codes": dict(summary.status_codes),
        "gaps": [
            {"agent": g.agent, "cannon": g.cannon, "missing": list(g.missing)} for g in summary.gaps
        ],
        "options": json_safe(info.options),
        "run_id": info.run_id,
        "degraded": info.degraded,
        "agents": [
            {
                "name": a.name,
                "uuid": a.uuid,
                "cannons": a.cannons,
                "status": a.status,
                "lost_at": a.lost_at,
                "losses": a.losses,
                "intervals": a.intervals,
                "expected_intervals": a.expected,
                "problems": list(a.problems),
            }
            for a in info.agents
        ],
        "notes": list(info.notes),
        "error": info.error,
    }


def summary_export(summary: Summary) -> Json:
    """The export as plain JSON-ready data (also NaN-free for the stdlib ``json``)."""
    return {
        "root_group": _root_group(summary),
        "metrics": _metrics(summary),
        "cannonade": _cannonade(summary),
    }


def dumps(summary: Summary) -> bytes:
    return orjson.dumps(summary_export(summary), option=orjson.OPT_INDENT_2) + b"\n"


def write_summary_export(summary: Summary, path: str | os.PathLike[str]) -> None:
    """Write the export to ``path``, replacing it whole: a reader never sees half a file."""
    target = Path(path)
    data = dumps(summary)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make a report only its writer can read
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
