"""Two runs side by side: what changed from A (the baseline) to B, and which
``--fail-if`` conditions (model/regress.py) that breaks.

Pure functions over two :class:`Summary` objects, so a comparison shows exactly the
numbers ``cannonade show`` prints for each run. Requests are matched by (name, method),
the finest grain a summary keeps: percentiles of two methods cannot be merged after
the fact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from cannonade.model.metrics import HTTP_REQ_DURATION, HTTP_REQ_FAILED
from cannonade.model.regress import Condition, check
from cannonade.model.summary import RateValues, RequestRow, Summary, TrendValues

OVERALL = ("rps", "p50", "p95", "p99", "error_rate", "iteration_rate")
PER_REQUEST = ("rps", "p50", "p95", "p99", "error_rate")

Values = Mapping[str, float | None]


@dataclass(frozen=True, slots=True)
class Change:
    """One quantity in both runs. None: not measured in that run."""

    quantity: str
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def relative(self) -> float | None:
        """B's change as a fraction of A; None ("n/a") when A is 0 or missing."""
        delta = self.delta
        if delta is None or self.a is None or self.a == 0:
            return None
        return delta / abs(self.a)


@dataclass(frozen=True, slots=True)
class RequestComparison:
    name: str
    method: str
    in_a: bool
    in_b: bool
    changes: tuple[Change, ...]

    @property
    def status(self) -> str:
        return "both" if self.in_a and self.in_b else ("added" if self.in_b else "removed")


@dataclass(frozen=True, slots=True)
class ConditionResult:
    condition: Condition
    label: str  # what was measured: ``p95`` or ``p95{name:/login,method:POST}``
    a: float | None
    b: float | None
    passed: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Comparison:
    a: Summary
    b: Summary
    overall: tuple[Change, ...]
    requests: tuple[RequestComparison, ...]
    results: tuple[ConditionResult, ...]

    @property
    def failed(self) -> tuple[ConditionResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def passed(self) -> bool:
        return not self.failed


def overall_values(s: Summary) -> dict[str, float | None]:
    duration = s.totals.duration
    trend = s.metric(HTTP_REQ_DURATION)
    t = trend.values if trend is not None and isinstance(trend.values, TrendValues) else None
    failed = s.metric(HTTP_REQ_FAILED)
    errors = failed.values if failed is not None and isinstance(failed.values, RateValues) else None
    return {
        "rps": s.totals.requests / duration if duration > 0 else None,
        "p50": t.med if t else None,
        "p95": t.p95 if t else None,
        "p99": t.p99 if t else None,
        "error_rate": errors.rate if errors else None,
        "iteration_rate": s.totals.iterations / duration if duration > 0 else None,
    }


def request_values(r: RequestRow) -> dict[str, float | None]:
    return {
        "rps": r.rps,
        "p50": r.p50,
        "p95": r.p95,
        "p99": r.p99,
        "error_rate": r.failures / r.count if r.count else None,
    }


def _changes(names: Sequence[str], a: Values | None, b: Values | None) -> tuple[Change, ...]:
    return tuple(
        Change(q, a.get(q) if a is not None else None, b.get(q) if b is not None else None)
        for q in names
    )


def compare(a: Summary, b: Summary, conditions: Iterable[Condition] = ()) -> Comparison:
    rows_a = {(r.name, r.method): request_values(r) for r in a.requests}
    rows_b = {(r.name, r.method): request_values(r) for r in b.requests}
    requests = tuple(
        RequestComparison(
            name,
            method,
            (name, method) in rows_a,
            (name, method) in rows_b,
            _changes(PER_REQUEST, rows_a.get((name, method)), rows_b.get((name, method))),
        )
        for name, method in sorted(rows_a.keys() | rows_b.keys())
    )
    overall = _changes(OVERALL, overall_values(a), overall_values(b))
    results = tuple(r for c in conditions for r in evaluate(c, overall, requests))
    return Comparison(a, b, overall, requests, results)


def evaluate(
    c: Condition, overall: Sequence[Change], requests: Sequence[RequestComparison]
) -> list[ConditionResult]:
    """One result for a run-wide condition; one per matching (name, method) for a
    scoped one, which fails if the name is in neither run (a typo must not pass)."""
    if not c.scoped:
        change = next(ch for ch in overall if ch.quantity == c.quantity)
        return [_result(c, c.quantity, change)]
    matched = [r for r in requests if c.matches(r.name, r.method)]
    if not matched:
        label = scoped_label(c.quantity, c.name or "", c.method)
        return [ConditionResult(c, label, None, None, False, "no such request in either run")]
    out = []
    for r in matched:
        change = next(ch for ch in r.changes if ch.quantity == c.quantity)
        # The method is named when the condition names it, or the name has several.
        method = r.method if c.method is not None or len(matched) > 1 else None
        label = scoped_label(c.quantity, r.name, method)
        if r.status != "both":
            missing = "B" if r.status == "removed" else "A"
            out.append(
                ConditionResult(c, label, change.a, change.b, False, f"not in run {missing}")
            )
        else:
            out.append(_result(c, label, change))
    return out


def _result(c: Condition, label: str, change: Change) -> ConditionResult:
    verdict = check(c, change.a, change.b)
    return ConditionResult(c, label, change.a, change.b, verdict.passed, verdict.reason)


def scoped_label(quantity: str, name: str, method: str | None) -> str:
    return f"{quantity}{{name:{name}" + (f",method:{method}}}" if method else "}")


# -- JSON -----------------------------------------------------------------------------------


def _change_json(ch: Change) -> dict[str, float | None]:
    return {"a": ch.a, "b": ch.b, "change": ch.delta, "relative": ch.relative}


def _run_json(s: Summary) -> dict[str, object]:
    return {"run_id": s.info.run_id, "scenario": s.info.scenario, "duration": s.info.duration}


def comparison_json(c: Comparison) -> dict[str, object]:
    """Durations in seconds, rates per second, error rates and ``relative`` as 0..1
    fractions (0.123 = +12.3%); null where a value does not exist."""
    return {
        "a": _run_json(c.a),
        "b": _run_json(c.b),
        "overall": {ch.quantity: _change_json(ch) for ch in c.overall},
        "requests": [
            {
                "name": r.name,
                "method": r.method,
                "status": r.status,
                "values": {ch.quantity: _change_json(ch) for ch in r.changes},
            }
            for r in c.requests
        ],
        "conditions": [
            {
                "expression": r.condition.source,
                "measured": r.label,
                "a": r.a,
                "b": r.b,
                "passed": r.passed,
                "reason": r.reason,
            }
            for r in c.results
        ],
        "passed": c.passed,
    }
