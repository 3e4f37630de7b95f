"""The end-of-test summary: every number a report shows, computed once from an aggregator.

Renderers (text, JSON export, HTML) read a :class:`Summary` and never the aggregator,
so they agree with each other and a report can be rebuilt from stored series.

Units: durations are seconds, data is bytes, rates are per second or 0..1 fractions.
A value that cannot be computed (no samples, a run of zero length) is None, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cannonade.model.aggregate import Aggregator
from cannonade.model.histogram import Histogram
from cannonade.model.metrics import (
    CHECKS,
    DATA_RECEIVED,
    DATA_SENT,
    DROPPED_ITERATIONS,
    HTTP_ERRORS,
    HTTP_REQ_DURATION,
    HTTP_REQ_DURATION_UNCORRECTED,
    HTTP_REQ_FAILED,
    HTTP_REQS,
    HTTP_STATUS,
    ITERATIONS,
    Key,
    Kind,
)
from cannonade.model.recorder import FALSE, TRUE
from cannonade.model.thresholds import (
    Filters,
    Threshold,
    ThresholdResult,
    evaluate,
    metric_kind,
    select_gauge,
    select_rate,
    select_total,
    select_trend,
    with_tag_index,
)

# Shown in their own sections (status codes, transport errors) rather than as metrics:
# http_status would repeat http_reqs, and both are tag breakdowns rather than totals.
BREAKDOWN_METRICS = frozenset({HTTP_STATUS, HTTP_ERRORS})

TREND_PERCENTILES = (50.0, 90.0, 95.0, 99.0)


@dataclass(frozen=True, slots=True)
class AgentLine:
    """One agent's part in a run, as the HQ saw it."""

    name: str
    uuid: str
    cannons: int
    status: str  # its last reported status
    lost_at: float | None = None  # epoch seconds it went missing (None: never, or back)
    losses: int = 0  # how often it went missing
    intervals: int = 0  # its interval reports that arrived
    expected: int | None = None  # how many it says it sent (None: it never said)
    problems: tuple[str, ...] = ()  # where its totals and the stored series disagree


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What the run was, besides its measurements. Times are epoch seconds."""

    started: float
    ended: float
    interrupted: bool = False
    options: Mapping[str, object] = field(default_factory=dict)
    scenario: str = ""
    run_id: str = ""
    agents: tuple[AgentLine, ...] = ()
    notes: tuple[str, ...] = ()  # what went wrong around the measurements
    error: str = ""  # why the run failed as a whole (no agents, a broken scenario), if it did

    @property
    def degraded(self) -> bool:
        return any(a.losses for a in self.agents)

    @property
    def duration(self) -> float:
        return max(0.0, self.ended - self.started)


@dataclass(frozen=True, slots=True)
class TrendValues:
    """Seconds. None only when ``count`` is 0."""

    count: int
    avg: float | None
    min: float | None
    med: float | None
    max: float | None
    p90: float | None
    p95: float | None
    p99: float | None


@dataclass(frozen=True, slots=True)
class CounterValues:
    count: float
    rate: float | None  # per second over the run; None for a run of zero length


@dataclass(frozen=True, slots=True)
class RateValues:
    trues: int
    falses: int
    rate: float | None  # trues / (trues + falses); None without samples

    @property
    def total(self) -> int:
        return self.trues + self.falses


@dataclass(frozen=True, slots=True)
class GaugeValues:
    value: float
    min: float
    max: float


MetricValues = TrendValues | CounterValues | RateValues | GaugeValues


@dataclass(frozen=True, slots=True)
class MetricSummary:
    """One metric, or a submetric (``parent`` set) selected by a threshold's filters."""

    name: str
    kind: Kind
    values: MetricValues
    parent: str = ""
    filters: Filters = ()
    thresholds: tuple[ThresholdResult, ...] = ()

    @property
    def is_submetric(self) -> bool:
        return bool(self.parent)


@dataclass(frozen=True, slots=True)
class CheckSummary:
    name: str
    passes: int
    fails: int

    @property
    def passed(self) -> bool:
        return self.fails == 0


@dataclass(frozen=True, slots=True)
class RequestRow:
    """One (request name, method). Durations in seconds, None without samples."""

    name: str
    method: str
    count: int
    failures: int
    rps: float | None
    avg: float | None
    min: float | None
    p50: float | None
    p90: float | None
    p95: float | None
    p99: float | None
    max: float | None


@dataclass(frozen=True, slots=True)
class ErrorSummary:
    kind: str
    message: str
    count: int
    sample: str = ""


@dataclass(frozen=True, slots=True)
class Gap:
    """Interval deltas of one cannon that never arrived: its totals undercount."""

    agent: str
    cannon: int
    missing: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Totals:
    requests: int
    iterations: int
    duration: float
    data_received: float
    data_sent: float


@dataclass(frozen=True, slots=True)
class Summary:
    info: RunInfo
    metrics: tuple[MetricSummary, ...]
    checks: tuple[CheckSummary, ...]
    requests: tuple[RequestRow, ...]
    errors: tuple[ErrorSummary, ...]
    transport_errors: tuple[tuple[str, int], ...]  # (kind, count), most frequent first
    status_codes: tuple[tuple[str, int], ...]  # (code, count), by code; "0" = no response
    thresholds: tuple[ThresholdResult, ...]
    totals: Totals
    dropped_iterations: int
    gaps: tuple[Gap, ...]

    @property
    def interrupted(self) -> bool:
        return self.info.interrupted

    @property
    def failed_thresholds(self) -> tuple[ThresholdResult, ...]:
        return tuple(r for r in self.thresholds if not r.passed)

    @property
    def passed(self) -> bool:
        """True when no threshold failed (a run without thresholds passes)."""
        return not self.failed_thresholds

    @property
    def verdict(self) -> str:
        return "passed" if self.passed and not self.info.error else "failed"

    def metric(self, name: str) -> MetricSummary | None:
        for m in self.metrics:
            if m.name == name:
                return m
        return None


# -- computing -----------------------------------------------------------------------------


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def trend_values(h: Histogram) -> TrendValues:
    if h.count == 0:
        return TrendValues(0, None, None, None, None, None, None, None)
    p50, p90, p95, p99 = h.percentiles(TREND_PERCENTILES)
    return TrendValues(
        count=h.count,
        avg=_finite(h.mean),
        min=_finite(h.min),
        med=_finite(p50),
        max=_finite(h.max),
        p90=_finite(p90),
        p95=_finite(p95),
        p99=_finite(p99),
    )


def _per_second(n: float, duration: float) -> float | None:
    return n / duration if duration > 0 else None


def _rate_values(trues: float, falses: float) -> RateValues:
    total = trues + falses
    return RateValues(int(trues), int(falses), trues / total if total else None)


def _values(
    aggregator: Aggregator, metric: str, kind: Kind, filters: Filters, duration: float
) -> MetricValues | None:
    """The metric's values, or None if it has no data of its kind."""
    if kind is Kind.TREND:
        h = select_trend(aggregator, metric, filters)
        return trend_values(h) if h.count else None
    if kind is Kind.RATE:
        trues, falses = select_rate(aggregator, metric, filters)
        return _rate_values(trues, falses) if trues + falses else None
    if kind is Kind.GAUGE:
        stat = select_gauge(aggregator, metric, filters)
        return None if stat is None else GaugeValues(stat.value, stat.min, stat.max)
    total = select_total(aggregator, metric, filters)
    has_keys = any(k.metric == metric for k in aggregator.counters)
    return CounterValues(total, _per_second(total, duration)) if has_keys else None


def _present_metrics(aggregator: Aggregator) -> dict[str, Kind]:
    """Every metric with data, with its kind (declared, else guessed from storage)."""
    found: dict[str, Kind] = {}
    for key in aggregator.trends:
        found.setdefault(key.metric, aggregator.kinds.get(key.metric, Kind.TREND))
    for key in aggregator.counters:
        found.setdefault(key.metric, aggregator.kinds.get(key.metric, Kind.COUNTER))
    for point in aggregator.series.values():
        for key in point.gauges:
            found.setdefault(key.metric, aggregator.kinds.get(key.metric, Kind.GAUGE))
    return found


def _metric_order(name: str) -> tuple[str, int]:
    # The coordinated-omission-corrected duration and the raw one belong side by side,
    # whatever sorts between them alphabetically.
    if name == HTTP_REQ_DURATION_UNCORRECTED:
        return (HTTP_REQ_DURATION, 1)
    return (name, 0)


def compute_summary(
    aggregator: Aggregator, info: RunInfo, thresholds: Sequence[Threshold] = ()
) -> Summary:
    duration = info.duration
    index = info.options.get("tag_index") if isinstance(info.options, Mapping) else None
    if isinstance(index, Mapping):  # a YAML plan's scenario/group tags
        thresholds = [with_tag_index(t, index) for t in thresholds]
    results = evaluate(thresholds, aggregator, duration)

    by_selector: dict[tuple[str, Filters], list[ThresholdResult]] = {}
    for r in results:
        by_selector.setdefault((r.threshold.metric, r.threshold.filters), []).append(r)

    metrics: list[MetricSummary] = []
    for metric in sorted(_present_metrics(aggregator).items(), key=lambda mk: _metric_order(mk[0])):
        name, kind = metric
        if name in BREAKDOWN_METRICS:
            continue
        values = _values(aggregator, name, kind, (), duration)
        if values is None:
            continue
        metrics.append(
            MetricSummary(name, kind, values, thresholds=tuple(by_selector.get((name, ()), ())))
        )
        metrics.extend(_submetrics(aggregator, name, by_selector, duration))

    return Summary(
        info=info,
        metrics=tuple(metrics),
        checks=_checks(aggregator),
        requests=_requests(aggregator, duration),
        errors=tuple(
            ErrorSummary(e.kind, e.message, e.count, e.sample)
            for e in sorted(aggregator.errors.values(), key=lambda e: (-e.count, e.kind, e.message))
        ),
        transport_errors=_tag_counts(aggregator, HTTP_ERRORS, by_count=True),
        status_codes=_tag_counts(aggregator, HTTP_STATUS, by_count=False),
        thresholds=tuple(results),
        totals=Totals(
            requests=int(aggregator.count(HTTP_REQS)),
            iterations=int(aggregator.count(ITERATIONS)),
            duration=duration,
            data_received=aggregator.count(DATA_RECEIVED),
            data_sent=aggregator.count(DATA_SENT),
        ),
        dropped_iterations=int(aggregator.count(DROPPED_ITERATIONS)),
        gaps=tuple(
            Gap(agent, cannon, tuple(missing))
            for (agent, cannon), missing in sorted(aggregator.gaps().items())
        ),
    )


def _submetrics(
    aggregator: Aggregator,
    parent: str,
    by_selector: Mapping[tuple[str, Filters], list[ThresholdResult]],
    duration: float,
) -> list[MetricSummary]:
    out: list[MetricSummary] = []
    for (metric, filters), rs in by_selector.items():
        if metric != parent or not filters:
            continue
        kind = metric_kind(aggregator, metric, filters)
        if kind is None:
            continue
        values = _values(aggregator, metric, kind, filters, duration)
        if values is None:
            continue
        out.append(
            MetricSummary(rs[0].threshold.selector, kind, values, metric, filters, tuple(rs))
        )
    return out


def _checks(aggregator: Aggregator) -> tuple[CheckSummary, ...]:
    passes: dict[str, float] = {}
    fails: dict[str, float] = {}
    for key, n in aggregator.counters.items():
        if key.metric != CHECKS:
            continue
        if key.tag == TRUE:
            passes[key.name] = passes.get(key.name, 0.0) + n
        elif key.tag == FALSE:
            fails[key.name] = fails.get(key.name, 0.0) + n
    return tuple(
        CheckSummary(name, int(passes.get(name, 0.0)), int(fails.get(name, 0.0)))
        for name in sorted(passes.keys() | fails.keys())
    )


def _requests(aggregator: Aggregator, duration: float) -> tuple[RequestRow, ...]:
    pairs = {(k.name, k.method) for k in aggregator.counters if k.metric == HTTP_REQS}
    pairs |= {(k.name, k.method) for k in aggregator.trends if k.metric == HTTP_REQ_DURATION}
    rows: list[RequestRow] = []
    for name, method in sorted(pairs):
        h = Histogram()
        for key, hist in aggregator.trends.items():
            if key.metric == HTTP_REQ_DURATION and key.name == name and key.method == method:
                h.merge(hist)
        count = aggregator.counters.get(Key(HTTP_REQS, name, method), 0.0)
        failures = aggregator.counters.get(Key(HTTP_REQ_FAILED, name, method, TRUE), 0.0)
        t = trend_values(h)
        rows.append(
            RequestRow(
                name=name,
                method=method,
                count=int(count),
                failures=int(failures),
                rps=_per_second(count, duration),
                avg=t.avg,
                min=t.min,
                p50=t.med,
                p90=t.p90,
                p95=t.p95,
                p99=t.p99,
                max=t.max,
            )
        )
    return tuple(rows)


def _tag_counts(
    aggregator: Aggregator, metric: str, *, by_count: bool
) -> tuple[tuple[str, int], ...]:
    counts: dict[str, float] = {}
    for key, n in aggregator.counters.items():
        if key.metric == metric:
            counts[key.tag] = counts.get(key.tag, 0.0) + n
    items = [(tag, int(n)) for tag, n in counts.items()]
    if by_count:
        items.sort(key=lambda kv: (-kv[1], kv[0]))
    else:
        items.sort(key=lambda kv: (len(kv[0]), kv[0]))  # numeric order for status codes
    return tuple(items)
