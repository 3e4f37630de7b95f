"""A run's per-second series as CSV rows: one row per second, run-wide."""

from __future__ import annotations

import csv
import io

from cannonade.model.aggregate import Aggregator
from cannonade.model.histogram import Histogram
from cannonade.model.metrics import (
    DATA_RECEIVED,
    DATA_SENT,
    DROPPED_ITERATIONS,
    HTTP_REQ_DURATION,
    HTTP_REQ_FAILED,
    HTTP_REQS,
    ITERATIONS,
    VUS,
)
from cannonade.model.recorder import TRUE

COLUMNS = (
    "second",
    "requests",
    "failed_requests",
    "iterations",
    "dropped_iterations",
    "vus",
    "data_received",
    "data_sent",
    "p50_ms",
    "p90_ms",
    "p95_ms",
    "p99_ms",
    "max_ms",
)


def series_csv(aggregator: Aggregator) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(COLUMNS)
    for second in sorted(aggregator.series):
        point = aggregator.series[second]
        sums: dict[str, float] = {}
        failed = 0.0
        for key, n in point.counters.items():
            sums[key.metric] = sums.get(key.metric, 0.0) + n
            if key.metric == HTTP_REQ_FAILED and key.tag == TRUE:
                failed += n
        h = Histogram()
        for key, hist in point.trends.items():
            if key.metric == HTTP_REQ_DURATION:
                h.merge(hist)
        vus = sum(v for k, v in point.gauges.items() if k.metric == VUS)
        ms = [_ms(h, q) for q in (50, 90, 95, 99)] if h.count else ["", "", "", ""]
        w.writerow(
            [
                second,
                _n(sums.get(HTTP_REQS, 0.0)),
                _n(failed),
                _n(sums.get(ITERATIONS, 0.0)),
                _n(sums.get(DROPPED_ITERATIONS, 0.0)),
                _n(vus),
                _n(sums.get(DATA_RECEIVED, 0.0)),
                _n(sums.get(DATA_SENT, 0.0)),
                *ms,
                f"{h.max * 1000:.3f}" if h.count else "",
            ]
        )
    return out.getvalue()


def _ms(h: Histogram, q: float) -> str:
    return f"{h.percentile(q) * 1000:.3f}"


def _n(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"
