import dataclasses
import math

import pytest
from samples import sample_run

from cannonade.model.aggregate import Aggregator
from cannonade.model.metrics import (
    CHECKS,
    DROPPED_ITERATIONS,
    Key,
    Kind,
    SourceId,
)
from cannonade.model.recorder import Recorder
from cannonade.model.summary import (
    CounterValues,
    GaugeValues,
    RateValues,
    RunInfo,
    Summary,
    TrendValues,
    compute_summary,
)
from cannonade.model.thresholds import parse_thresholds

T0 = 1_700_000_000
TB = 'Traceback (most recent call last):\n  File "user.py", line 3, in f\nKeyError: x'


def run(cannons: int = 2, seconds: int = 2, *, open_model: bool = False) -> Aggregator:
    return sample_run(cannons, seconds, open_model=open_model)


INFO = RunInfo(started=T0, ended=T0 + 2.0, scenario="smoke")


def walk_floats(obj: object):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from walk_floats(getattr(obj, f.name))
    elif isinstance(obj, tuple | list):
        for x in obj:
            yield from walk_floats(x)
    elif isinstance(obj, float):
        yield obj


def test_metrics_are_listed_with_kinds_and_sorted():
    s = compute_summary(run(), INFO)
    assert [(m.name, m.kind) for m in s.metrics] == [
        ("checks", Kind.RATE),
        ("data_received", Kind.COUNTER),
        ("data_sent", Kind.COUNTER),
        ("http_req_duration", Kind.TREND),
        ("http_req_failed", Kind.RATE),
        ("http_reqs", Kind.COUNTER),
        ("iterations", Kind.COUNTER),
        ("vus", Kind.GAUGE),
    ]
    # tag breakdowns have their own fields, not metric lines
    assert s.metric("http_status") is None
    assert s.metric("http_errors") is None


def test_trend_values_are_seconds():
    m = compute_summary(run(), INFO).metric("http_req_duration")
    assert m is not None
    assert isinstance(m.values, TrendValues)
    v = m.values
    assert v.count == 60
    assert v.min == 0.001
    assert v.max == 0.020
    assert v.avg is not None
    assert math.isclose(v.avg, (40 * 0.020 + 20 * 0.001) / 60)
    assert v.p90 is not None
    assert abs(v.p90 - 0.020) < 0.020 / 1000
    assert v.med is not None
    assert abs(v.med - 0.020) < 0.020 / 1000


def test_counter_rate_is_per_second_of_the_run():
    s = compute_summary(run(), INFO)
    reqs = s.metric("http_reqs")
    assert reqs is not None
    assert reqs.values == CounterValues(60.0, 30.0)
    data = s.metric("data_received")
    assert data is not None
    assert data.values == CounterValues(100_000.0, 50_000.0)
    zero = compute_summary(run(), RunInfo(T0, T0))
    z = zero.metric("http_reqs")
    assert z is not None
    assert z.values == CounterValues(60.0, None)


def test_rate_and_gauge_values():
    s = compute_summary(run(), INFO)
    failed = s.metric("http_req_failed")
    # per cannon-second: one 500 and one transport error out of 15
    assert failed is not None
    assert failed.values == RateValues(8, 52, 8 / 60)
    checks = s.metric("checks")
    assert checks is not None
    assert checks.values == RateValues(6, 2, 0.75)
    vus = s.metric("vus")
    assert vus is not None
    assert vus.values == GaugeValues(6.0, 6.0, 6.0)


def test_uncorrected_duration_sits_next_to_duration():
    agg = run(open_model=True)
    rec = Recorder(SourceId("agent-2"))
    # a custom trend that sorts between the two alphabetically
    rec.define("http_req_duration_db", Kind.TREND)
    rec.samples(Key("http_req_duration_db")).values.append(0.002)
    agg.add(rec.flush(T0))
    names = [m.name for m in compute_summary(agg, INFO).metrics]
    i = names.index("http_req_duration")
    assert names[i + 1] == "http_req_duration_uncorrected"
    assert "http_req_duration_db" in names
    u = compute_summary(agg, INFO).metric("http_req_duration_uncorrected")
    assert u is not None
    assert isinstance(u.values, TrendValues)
    assert u.values.max == 0.015


def test_checks_per_name():
    s = compute_summary(run(), INFO)
    assert [(c.name, c.passes, c.fails, c.passed) for c in s.checks] == [
        ("body has token", 2, 2, False),
        ("status is 200", 4, 0, True),
    ]


def test_requests_by_name():
    s = compute_summary(run(), INFO)
    home, login = s.requests
    assert (home.name, home.method, home.count, home.failures) == ("/home", "GET", 20, 4)
    assert (login.name, login.method, login.count, login.failures) == ("/login", "POST", 40, 4)
    assert login.rps == 20.0
    assert login.min == login.max == 0.020
    assert login.p50 == login.p99 == 0.020  # clamped to the exact min and max
    assert home.avg is not None
    assert math.isclose(home.avg, 0.001)


def test_errors_grouped_and_sorted_by_count():
    agg = run()
    rec = Recorder(SourceId("agent-9"))
    for _ in range(9):
        rec.error("ValueError", "bad", "")
    rec.error("AError", "rare", "")
    agg.add(rec.flush(T0))
    s = compute_summary(agg, INFO)
    assert [(e.kind, e.message, e.count) for e in s.errors] == [
        ("ValueError", "bad", 9),
        ("KeyError", "'token'", 4),
        ("AError", "rare", 1),
    ]
    assert s.errors[1].sample == TB


def test_transport_errors_and_status_codes():
    s = compute_summary(run(), INFO)
    assert s.transport_errors == (("timeout", 4),)
    assert s.status_codes == (("0", 4), ("200", 52), ("500", 4))


def test_status_codes_sort_numerically():
    agg = Aggregator()
    rec = Recorder()
    slot = rec.request_slot("x", "GET")
    slot.duration.extend([0.001] * 3)
    slot.status.extend([1000, 404, 99])
    agg.add(rec.flush(T0))
    s = compute_summary(agg, INFO)
    assert [code for code, _ in s.status_codes] == ["99", "404", "1000"]


def test_totals_dropped_and_gaps():
    agg = run()
    rec = Recorder(SourceId("agent-3", 1))
    rec.add(Key(DROPPED_ITERATIONS), 7)
    agg.add(rec.flush(T0))
    rec.flush(T0 + 1)  # lost on the way
    rec.flush(T0 + 2)  # lost too
    agg.add(rec.flush(T0 + 3, final=True))
    s = compute_summary(agg, INFO)
    assert s.totals.requests == 60
    assert s.totals.iterations == 24
    assert s.totals.duration == 2.0
    assert s.totals.data_received == 100_000
    assert s.totals.data_sent == 4_000
    assert s.dropped_iterations == 7
    assert [(g.agent, g.cannon, g.missing) for g in s.gaps] == [("agent-3", 1, (1, 2))]


def test_verdict_and_threshold_results():
    ths = parse_thresholds(
        {"http_req_duration": ["p(95)<200", "max<10"], "http_req_failed": "rate<0.5"}
    )
    s = compute_summary(run(), INFO, ths)
    assert [r.passed for r in s.thresholds] == [True, False, True]
    assert not s.passed
    assert s.verdict == "failed"
    assert [r.threshold.condition for r in s.failed_thresholds] == ["max<10"]
    dur = s.metric("http_req_duration")
    assert dur is not None
    assert [r.threshold.condition for r in dur.thresholds] == [
        "p(95)<200",
        "max<10",
    ]
    ok = compute_summary(run(), INFO, ths[:1])
    assert ok.passed
    assert ok.verdict == "passed"
    assert compute_summary(run(), INFO).verdict == "passed"


def test_counter_rate_threshold_uses_run_duration():
    ths = parse_thresholds({"http_reqs": "rate>=30"})
    assert compute_summary(run(), RunInfo(T0, T0 + 2), ths).passed
    assert not compute_summary(run(), RunInfo(T0, T0 + 4), ths).passed


def test_filtered_thresholds_add_submetrics_under_their_metric():
    ths = parse_thresholds(
        {
            "http_req_duration{name:/home}": "p(95)<5",
            "http_reqs{status:500}": "count<1",
            "http_req_duration{name:/nowhere}": "p(95)<5",
        }
    )
    s = compute_summary(run(), INFO, ths)
    names = [m.name for m in s.metrics]
    assert names.index("http_req_duration{name:/home}") == names.index("http_req_duration") + 1
    assert names.index("http_reqs{status:500}") == names.index("http_reqs") + 1
    assert "http_req_duration{name:/nowhere}" not in names  # no samples, no line
    home = s.metric("http_req_duration{name:/home}")
    assert home is not None
    assert home.parent == "http_req_duration"
    assert home.filters == (("name", "/home"),)
    assert isinstance(home.values, TrendValues)
    assert home.values.max == 0.001
    assert [r.passed for r in home.thresholds] == [True]
    st500 = s.metric("http_reqs{status:500}")
    assert st500 is not None
    assert st500.values == CounterValues(4.0, 2.0)
    parent = s.metric("http_req_duration")
    assert parent is not None
    assert parent.thresholds == ()
    assert [r.reason for r in s.thresholds] == ["", "", "no samples"]


def test_custom_metrics():
    agg = Aggregator()
    rec = Recorder()
    rec.define("logins", Kind.COUNTER)
    rec.define("cache_hit", Kind.RATE)
    rec.define("queue", Kind.GAUGE)
    rec.define("think", Kind.TREND)
    rec.add(Key("logins"), 4)
    rec.rate("cache_hit", "", True)
    rec.rate("cache_hit", "", False)
    rec.rate("cache_hit", "", True)
    rec.gauge(Key("queue"), 12)
    rec.samples(Key("think")).values.extend([0.25, 0.75])
    agg.add(rec.flush(T0))
    s = compute_summary(agg, INFO)
    assert s.metric("logins") is not None
    values = {m.name: m.values for m in s.metrics}
    think = values.pop("think")
    assert values == {
        "cache_hit": RateValues(2, 1, 2 / 3),
        "logins": CounterValues(4.0, 2.0),
        "queue": GaugeValues(12.0, 12.0, 12.0),
    }
    # percentiles are bucket midpoints: within 1/2048 of the sample
    assert think == TrendValues(
        2,
        0.5,
        0.25,
        pytest.approx(0.25, rel=1 / 2048),
        0.75,
        pytest.approx(0.75, rel=1 / 2048),
        pytest.approx(0.75, rel=1 / 2048),
        pytest.approx(0.75, rel=1 / 2048),
    )


def test_empty_run_has_no_nan():
    s = compute_summary(Aggregator(), RunInfo(T0, T0, interrupted=True))
    assert s.metrics == ()
    assert s.requests == ()
    assert s.checks == ()
    assert s.interrupted
    assert s.totals.requests == 0
    assert all(math.isfinite(x) for x in walk_floats(s))


def test_no_nan_anywhere_in_a_full_summary():
    ths = parse_thresholds({"http_req_duration": "p(95)<1", "missing_trend": "avg<1"})
    s = compute_summary(run(open_model=True), RunInfo(T0, T0), ths)
    assert all(math.isfinite(x) for x in walk_floats(s))


def test_summary_is_independent_of_delta_order():
    def deltas():
        out = []
        for c in range(3):
            rec = Recorder(SourceId("a", c))
            for s in range(3):
                slot = rec.request_slot(f"/r{c}", "GET")
                slot.duration.extend([0.001 * (c + 1) * (s + 1)] * 4)
                slot.status.extend([200, 200, 503, 200])
                rec.rate(CHECKS, f"c{s}", c % 2 == 0)
                rec.error("E", str(s), "")
                out.append(rec.flush(T0 + s))
        return out

    forward, backward = Aggregator(), Aggregator()
    for d in deltas():
        forward.add(d)
    for d in reversed(deltas()):
        backward.add(d)
    a = compute_summary(forward, INFO)
    b = compute_summary(backward, INFO)
    assert a == b


@pytest.mark.parametrize("interrupted", [True, False])
def test_run_info(interrupted: bool):
    info = RunInfo(T0, T0 + 5, interrupted=interrupted, options={"vus": 3}, scenario="x")
    s: Summary = compute_summary(run(), info)
    assert s.interrupted is interrupted
    assert s.info.options == {"vus": 3}
    assert RunInfo(T0 + 5, T0).duration == 0.0
