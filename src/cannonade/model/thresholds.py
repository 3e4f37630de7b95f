"""k6-style thresholds: parse ``METRIC{tag:value}:AGG OP VALUE`` and evaluate it.

Two spellings are accepted, like k6 (where the metric is the key of ``thresholds``)::

    parse_threshold("http_req_duration{name:/login}:p(99) < 500ms")
    parse_threshold("http_req_duration{name:/login}", "p(99) < 500ms")

Aggregations by kind (``*`` = also accepted for an unknown custom metric)::

    trend    avg  min  max  med  p(N)        milliseconds; a unit may be given (us, µs, ms, s)
    counter  count  rate                     rate is per second over the run
    rate     rate                            fraction of samples that were true (0..1)
    gauge    value  min  max

Filters select part of a metric: ``name`` and ``method`` of the request (or check, or
custom key), ``tag`` (the key's free tag, e.g. a transport error kind for
``http_errors``), and ``status`` on ``http_reqs`` (which reads the ``http_status``
counter, whose tag is the status code).

Parsing raises :class:`~cannonade.errors.ThresholdError`, quoting the expression. Whether
the metric exists is decided when evaluating: a metric that was never recorded fails
with "no samples", except counters, whose count is then 0.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from cannonade.errors import ThresholdError
from cannonade.model.aggregate import Aggregator, GaugeStat
from cannonade.model.histogram import Histogram
from cannonade.model.metrics import BUILTIN_KINDS, HTTP_REQS, HTTP_STATUS, Key, Kind
from cannonade.model.quoted import read_braces, split_unquoted, unquote
from cannonade.model.recorder import FALSE, TRUE

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

# Canonical order: filters are stored in this order whatever order they were written
# in, so two spellings of the same selection are one submetric.
FILTER_FIELDS = ("name", "method", "status", "tag", "scenario", "group")
# Tags a YAML plan gives its samples. They are not stored per sample: the plan knows
# which request, check, group and scenario names each scenario and group uses, and a
# filter on them is resolved through that index (see with_tag_index).
TAG_FIELDS = ("scenario", "group")
_NAMES = "names"  # the resolved form of a tag filter: a set of names, \x1f-separated
_NONE = "\x00"  # the resolved form when nothing carries the tag

AGGS_BY_KIND: dict[Kind, tuple[str, ...]] = {
    Kind.TREND: ("avg", "min", "max", "med", "p(N)"),
    Kind.COUNTER: ("count", "rate"),
    Kind.RATE: ("rate",),
    Kind.GAUGE: ("value", "min", "max"),
}
_ALL_AGGS = frozenset(a for aggs in AGGS_BY_KIND.values() for a in aggs)
_TREND_ONLY = frozenset({"avg", "med", "p(N)"})

# Durations are compared in milliseconds, like k6; bare numbers are milliseconds.
UNITS_TO_MS: dict[str, float] = {"us": 1e-3, "µs": 1e-3, "μs": 1e-3, "ms": 1.0, "s": 1000.0}

_METRIC_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)")
_AGG_RE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)")
_NUMBER_RE = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*([^\d\s.+-][^\s]*)?")

Filters = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Threshold:
    """One parsed threshold.

    ``value`` is in milliseconds when ``unit`` is given or the metric is a trend;
    otherwise a plain number. ``condition`` is the text after the selector as written
    (``"p(95)<200"``), which k6 uses as the threshold's name.
    """

    source: str
    metric: str
    filters: Filters
    agg: str
    op: str
    value: float
    condition: str = ""
    unit: str = ""
    display: str = ""  # the selector as written, when filters were resolved from tags

    @property
    def percentile(self) -> float | None:
        if self.agg.startswith("p("):
            return float(self.agg[2:-1])
        return None

    @property
    def selector(self) -> str:
        """``metric{name:x,method:GET}``: the (sub)metric this threshold is about."""
        return self.display or selector_name(self.metric, self.filters)

    def check(self, measured: float) -> bool:
        return OPS[self.op](measured, self.value)


@dataclass(frozen=True, slots=True)
class ThresholdResult:
    """The outcome of one threshold.

    ``value`` is what was measured, in the threshold's own terms: milliseconds for a
    trend aggregation, a 0..1 fraction for ``rate`` of a rate metric, per second for
    ``rate`` of a counter. It is None when nothing could be measured; ``reason`` then
    says why (and is empty when the comparison itself decided).
    """

    threshold: Threshold
    passed: bool
    value: float | None
    reason: str = ""
    kind: Kind | None = None


def selector_name(metric: str, filters: Filters) -> str:
    if not filters:
        return metric
    return metric + "{" + ",".join(f"{k}:{v}" for k, v in filters) + "}"


# -- parsing ----------------------------------------------------------------------------


def parse_threshold(
    selector_or_expression: str,
    condition: str | None = None,
    *,
    kinds: Mapping[str, Kind] = BUILTIN_KINDS,
) -> Threshold:
    """Parse ``"METRIC[{filters}]:AGG OP VALUE"``, or selector and condition apart.

    ``kinds`` tells custom metrics' kinds when they are known before the run, so a
    wrong aggregation is reported now rather than as a failed threshold afterwards.
    """
    if condition is None:
        source = selector_or_expression.strip()
        metric, filters, rest = _parse_selector(source, source)
        rest = rest.lstrip()
        if not rest.startswith(":"):
            raise _error(
                source,
                "expected METRIC:CONDITION, e.g. 'http_req_duration:p(95)<200'"
                + (f", found {rest[:1]!r} after the metric" if rest else ""),
            )
        cond = rest[1:].strip()
    else:
        source = f"{selector_or_expression.strip()}:{condition.strip()}"
        metric, filters, rest = _parse_selector(selector_or_expression, source)
        if rest.strip():
            raise _error(source, f"unexpected {rest.strip()!r} after the metric")
        cond = condition.strip()
    return _parse_condition(source, metric, filters, cond, kinds)


def parse_thresholds(
    spec: Mapping[str, str | Sequence[str]], *, kinds: Mapping[str, Kind] = BUILTIN_KINDS
) -> list[Threshold]:
    """k6's ``options.thresholds`` shape: ``{"http_req_duration": ["p(95)<200"]}``."""
    out: list[Threshold] = []
    for selector, conditions in spec.items():
        items = [conditions] if isinstance(conditions, str) else list(conditions)
        out.extend(parse_threshold(selector, c, kinds=kinds) for c in items)
    return out


def _error(source: str, what: str) -> ThresholdError:
    return ThresholdError(f"threshold {source!r}: {what}")


def _parse_selector(text: str, source: str) -> tuple[str, Filters, str]:
    """The metric name and its filters; returns the unparsed rest of ``text``."""
    m = _METRIC_RE.match(text)
    if m is None:
        shown = text.strip()
        if not shown:
            raise _error(source, "empty expression")
        raise _error(source, f"expected a metric name, found {shown[:1]!r}")
    metric = m.group(1)
    pos = m.end()
    while pos < len(text) and text[pos].isspace():
        pos += 1
    filters: Filters = ()
    if pos < len(text) and text[pos] == "{":
        body, pos = _read_braces(text, pos, source)
        filters = _parse_filters(body, metric, source)
    return metric, filters, text[pos:]


def _read_braces(text: str, start: int, source: str) -> tuple[str, int]:
    found = read_braces(text, start)
    if found is None:
        raise _error(source, "unclosed '{' in the metric's filters")
    return found


def _parse_filters(body: str, metric: str, source: str) -> Filters:
    if not body.strip():
        raise _error(source, "empty filter '{}'; drop the braces or name a filter")
    found: dict[str, str] = {}
    for part in split_unquoted(body, ","):
        key, colon, value = part.partition(":")
        key = key.strip()
        if not colon:
            raise _error(source, f"filter {part.strip()!r} has no ':' (expected tag:value)")
        if key not in FILTER_FIELDS:
            raise _error(source, f"unknown filter {key!r} (expected {_one_of(FILTER_FIELDS)})")
        if key in found:
            raise _error(source, f"filter {key!r} is given twice")
        value = unquote(value)
        if not value:
            raise _error(source, f"filter {key!r} has an empty value")
        found[key] = value
    if "status" in found:
        if metric not in (HTTP_REQS, HTTP_STATUS):
            raise _error(source, f"filter 'status' applies only to {HTTP_REQS}, not {metric}")
        if "tag" in found:
            raise _error(source, "filters 'status' and 'tag' both select the status code")
    return tuple((k, found[k]) for k in FILTER_FIELDS if k in found)


def _one_of(items: Iterable[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _parse_condition(
    source: str, metric: str, filters: Filters, cond: str, kinds: Mapping[str, Kind]
) -> Threshold:
    if not cond:
        raise _error(source, "missing condition after the metric, e.g. 'p(95)<200'")
    m = _AGG_RE.match(cond)
    if m is None:
        raise _error(
            source, f"missing aggregation before {cond[:1]!r} (e.g. avg, p(95), rate, count)"
        )
    agg = m.group(1)
    pos = m.end()
    while pos < len(cond) and cond[pos].isspace():
        pos += 1
    if agg == "p":
        agg, pos = _parse_percentile(source, cond, pos)
    elif pos < len(cond) and cond[pos] == "(":
        raise _error(source, f"aggregation {agg!r} takes no argument; only p(N) does")

    kind = kinds.get(metric)
    if filters and filters[0][0] == "status":
        kind = Kind.COUNTER
    generic = "p(N)" if agg.startswith("p(") else agg
    if kind is not None:
        allowed = AGGS_BY_KIND[kind]
        if generic not in allowed:
            raise _error(
                source,
                f"unknown aggregation {agg!r} for {kind.value} metric {metric} "
                f"(expected {_one_of(allowed)})",
            )
    elif generic not in _ALL_AGGS:
        raise _error(
            source,
            f"unknown aggregation {agg!r} (expected {_one_of(sorted(_ALL_AGGS))})",
        )
    if kind is Kind.RATE and any(k == "tag" for k, _ in filters):
        raise _error(source, f"filter 'tag' does not apply to rate metric {metric}")

    rest = cond[pos:].lstrip()
    op_match = re.match(r"[<>=!]+", rest)
    if op_match is None:
        found = rest.strip()[:1]
        raise _error(
            source,
            f"missing operator after {agg!r} (expected {_one_of(OPS)})"
            + (f", found {found!r}" if found else ""),
        )
    op = op_match.group(0)
    if op not in OPS:
        raise _error(source, f"bad operator {op!r} (expected {_one_of(OPS)})")
    raw = rest[op_match.end() :].strip()
    if not raw:
        raise _error(source, f"missing value after {op!r}")
    value, unit = _parse_value(source, raw)
    if unit:
        # An unknown custom metric may still turn out to be a trend: accept the unit
        # for the aggregations a trend has, and re-check the kind when evaluating.
        is_time = kind is Kind.TREND or (kind is None and generic in _TREND_ONLY | {"min", "max"})
        if not is_time:
            what = f"{kind.value} metric {metric}" if kind else f"{agg!r}"
            raise _error(source, f"unit {unit!r} applies only to durations, not to {what}")
    return Threshold(
        source=source,
        metric=metric,
        filters=filters,
        agg=agg,
        op=op,
        value=value,
        condition=cond,
        unit=unit,
    )


def _parse_percentile(source: str, cond: str, pos: int) -> tuple[str, int]:
    if pos >= len(cond) or cond[pos] != "(":
        raise _error(source, "aggregation 'p' needs a percentile, e.g. p(95) or p(99.9)")
    end = cond.find(")", pos)
    if end < 0:
        raise _error(source, "unclosed '(' in p(...)")
    arg = cond[pos + 1 : end].strip()
    try:
        q = float(arg)
    except ValueError:
        raise _error(source, f"bad percentile {arg!r} in p(...); expected a number") from None
    if not 0.0 <= q <= 100.0:  # also false for NaN
        raise _error(source, f"percentile {arg} is outside 0..100")
    return f"p({_plain(q)})", end + 1


def _plain(q: float) -> str:
    return str(int(q)) if q.is_integer() else repr(q)


def _parse_value(source: str, raw: str) -> tuple[float, str]:
    m = _NUMBER_RE.fullmatch(raw)
    if m is None:
        raise _error(source, f"bad number {raw!r}")
    number = float(m.group(1))
    unit = m.group(2) or ""
    if not math.isfinite(number):
        raise _error(source, f"bad number {raw!r}")
    if unit:
        factor = UNITS_TO_MS.get(unit)
        if factor is None:
            raise _error(
                source, f"unknown unit {unit!r} in {raw!r} (expected {_one_of(['us', 'ms', 's'])})"
            )
        number *= factor
    return number, unit


# -- selecting data ------------------------------------------------------------------------


def resolve(metric: str, filters: Filters) -> tuple[str, Filters]:
    """Map the user's selection onto stored keys: ``http_reqs{status:X}`` is stored as
    the ``http_status`` counter with tag X."""
    if any(k == "status" for k, _ in filters):
        return HTTP_STATUS, tuple(("tag", v) if k == "status" else (k, v) for k, v in filters)
    return metric, filters


def _matches(key: Key, filters: Filters) -> bool:
    for field_name, value in filters:
        if field_name == _NAMES:
            if key.name not in value.split("\x1f"):
                return False
        elif field_name in TAG_FIELDS:
            return False  # never resolved: no index, so nothing carries the tag
        elif getattr(key, field_name) != value:
            return False
    return True


# Which names a tag selects, by the family of the metric filtered.
_BY_SCENARIO_NAME = frozenset(
    {"iterations", "iteration_duration", "iteration_errors", "interrupted_iterations"}
)


def with_tag_index(
    t: Threshold, index: Mapping[str, Mapping[str, Mapping[str, Sequence[str]]]]
) -> Threshold:
    """``t`` with its ``scenario``/``group`` filters resolved into the set of names that
    carry the tag, from a plan's index ``{field: {value: {family: [names]}}}`` (families:
    ``requests``, ``checks``, ``groups``, ``scenarios``)."""
    tags = [(f, v) for f, v in t.filters if f in TAG_FIELDS]
    if not tags:
        return t
    allowed: set[str] | None = None
    family = (
        "scenarios"
        if t.metric in _BY_SCENARIO_NAME
        else "checks"
        if t.metric == "checks"
        else "groups"
        if t.metric == "group_duration"
        else "requests"
    )
    for field_name, value in tags:
        names = set((index.get(field_name) or {}).get(value, {}).get(family, ()))
        allowed = names if allowed is None else allowed & names
    rest = tuple((f, v) for f, v in t.filters if f not in TAG_FIELDS)
    resolved = "\x1f".join(sorted(allowed)) if allowed else _NONE
    return dataclasses.replace(t, filters=(*rest, (_NAMES, resolved)), display=t.selector)


def select_trend(aggregator: Aggregator, metric: str, filters: Filters = ()) -> Histogram:
    metric, filters = resolve(metric, filters)
    h = Histogram()
    for key, hist in aggregator.trends.items():
        if key.metric == metric and _matches(key, filters):
            h.merge(hist)
    return h


def select_total(
    aggregator: Aggregator, metric: str, filters: Filters = (), tag: str | None = None
) -> float:
    metric, filters = resolve(metric, filters)
    return sum(
        n
        for key, n in aggregator.counters.items()
        if key.metric == metric and _matches(key, filters) and (tag is None or key.tag == tag)
    )


def select_rate(aggregator: Aggregator, metric: str, filters: Filters = ()) -> tuple[float, float]:
    """(trues, falses) of a rate metric."""
    return (
        select_total(aggregator, metric, filters, TRUE),
        select_total(aggregator, metric, filters, FALSE),
    )


def select_gauge(aggregator: Aggregator, metric: str, filters: Filters = ()) -> GaugeStat | None:
    """Like :meth:`Aggregator.gauge`, restricted to matching keys; None if never set."""
    metric, filters = resolve(metric, filters)
    stat = GaugeStat()
    seen = False
    for second in sorted(aggregator.series):
        values = [
            v
            for k, v in aggregator.series[second].gauges.items()
            if k.metric == metric and _matches(k, filters)
        ]
        if not values:
            continue
        seen = True
        v = sum(values)
        stat.value = v
        stat.min = min(stat.min, v)
        stat.max = max(stat.max, v)
    return stat if seen else None


def metric_kind(aggregator: Aggregator, metric: str, filters: Filters = ()) -> Kind | None:
    if any(k == "status" for k, _ in filters):
        return Kind.COUNTER
    return aggregator.kinds.get(metric)


# -- evaluation ----------------------------------------------------------------------------


def evaluate(
    thresholds: Iterable[Threshold], aggregator: Aggregator, duration_s: float
) -> list[ThresholdResult]:
    """Evaluate every threshold against the run's totals; ``duration_s`` is the run's
    length, the denominator of a counter's ``rate``."""
    return [evaluate_one(t, aggregator, duration_s) for t in thresholds]


def evaluate_one(t: Threshold, aggregator: Aggregator, duration_s: float) -> ThresholdResult:
    kind = metric_kind(aggregator, t.metric, t.filters)
    generic = "p(N)" if t.percentile is not None else t.agg
    if kind is None:
        if t.agg == "count":
            # Only counters have ``count``; a counter that never fired counted nothing.
            return _compare(t, 0.0, Kind.COUNTER)
        return ThresholdResult(t, False, None, "no samples")
    if generic not in AGGS_BY_KIND[kind]:
        return ThresholdResult(
            t, False, None, f"{t.agg} does not apply to {kind.value} metric {t.metric}", kind
        )
    if t.unit and kind is not Kind.TREND:
        return ThresholdResult(
            t, False, None, f"unit {t.unit!r} does not apply to {kind.value} metric", kind
        )

    if kind is Kind.RATE and any(k == "tag" for k, _ in t.filters):
        return ThresholdResult(
            t, False, None, f"filter 'tag' does not apply to rate metric {t.metric}", kind
        )

    if kind is Kind.TREND:
        h = select_trend(aggregator, t.metric, t.filters)
        if h.count == 0:
            return ThresholdResult(t, False, None, "no samples", kind)
        q = t.percentile
        if q is not None:
            seconds = h.percentile(q)
        elif t.agg == "med":
            seconds = h.percentile(50)
        else:
            seconds = {"avg": h.mean, "min": h.min, "max": h.max}[t.agg]
        return _compare(t, seconds * 1000.0, kind)

    if kind is Kind.COUNTER:
        total = select_total(aggregator, t.metric, t.filters)
        if t.agg == "count":
            return _compare(t, total, kind)
        if duration_s <= 0:
            return ThresholdResult(t, False, None, "the run lasted no time", kind)
        return _compare(t, total / duration_s, kind)

    if kind is Kind.RATE:
        trues, falses = select_rate(aggregator, t.metric, t.filters)
        if trues + falses == 0:
            return ThresholdResult(t, False, None, "no samples", kind)
        return _compare(t, trues / (trues + falses), kind)

    stat = select_gauge(aggregator, t.metric, t.filters)
    if stat is None:
        return ThresholdResult(t, False, None, "no samples", kind)
    return _compare(t, {"value": stat.value, "min": stat.min, "max": stat.max}[t.agg], kind)


def _compare(t: Threshold, measured: float, kind: Kind) -> ThresholdResult:
    return ThresholdResult(t, t.check(measured), measured, "", kind)
