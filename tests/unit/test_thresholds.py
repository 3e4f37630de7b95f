import contextlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cannonade.errors import ConfigError, ThresholdError
from cannonade.model.aggregate import Aggregator
from cannonade.model.metrics import (
    CHECKS,
    HTTP_ERRORS,
    ITERATIONS,
    VUS,
    Key,
    Kind,
    SourceId,
)
from cannonade.model.recorder import Recorder
from cannonade.model.thresholds import (
    Threshold,
    evaluate,
    parse_threshold,
    parse_thresholds,
)

T0 = 1_700_000_000


def record_requests(
    rec: Recorder,
    name: str,
    method: str,
    durations: list[float],
    statuses: list[int] | None = None,
) -> None:
    slot = rec.request_slot(name, method)
    slot.duration.extend(durations)
    slot.status.extend(statuses if statuses is not None else [200] * len(durations))


@pytest.fixture
def agg() -> Aggregator:
    """Two cannons, 2 s: /login 100 × 10..109 ms (10 of them 500), /home 50 × 1 ms
    (2 of them transport errors)."""
    a = Aggregator()
    for cannon in range(2):
        rec = Recorder(SourceId("local", cannon))
        for sec in range(2):
            if cannon == 0:
                record_requests(
                    rec,
                    "/login",
                    "POST",
                    [(10 + i + 50 * sec) / 1000 for i in range(50)],
                    [500 if i < 5 else 200 for i in range(50)],
                )
            else:
                record_requests(rec, "/home", "GET", [0.001] * 25)
                rec.request_slot("/home", "GET").error("timeout")
                rec.request_slot("/home", "GET").status[-1] = 0
            rec.add(Key(ITERATIONS), 10)
            rec.rate(CHECKS, "ok", True)
            rec.rate(CHECKS, "ok", sec == 0)
            rec.gauge(Key(VUS), 5 + sec)
            a.add(rec.flush(T0 + sec))
    return a


def result(expr: str, a: Aggregator, duration: float = 2.0) -> tuple[bool, float | None, str]:
    (r,) = evaluate([parse_threshold(expr)], a, duration)
    return r.passed, r.value, r.reason


# -- parsing ---------------------------------------------------------------------------


def test_parse_full_form():
    t = parse_threshold("http_req_duration:p(95)<200")
    assert t == Threshold(
        source="http_req_duration:p(95)<200",
        metric="http_req_duration",
        filters=(),
        agg="p(95)",
        op="<",
        value=200.0,
        condition="p(95)<200",
        unit="",
    )
    assert t.percentile == 95.0
    assert t.selector == "http_req_duration"


def test_parse_k6_form_with_metric_apart():
    t = parse_threshold("http_req_duration", "p(95)<200")
    assert (t.metric, t.agg, t.op, t.value, t.condition) == (
        "http_req_duration",
        "p(95)",
        "<",
        200.0,
        "p(95)<200",
    )


def test_parse_is_whitespace_tolerant():
    t = parse_threshold(
        "  http_req_duration { name : /login , method: GET } :  p( 99.9 )  <=  1.5 s "
    )
    assert t.filters == (("name", "/login"), ("method", "GET"))
    assert t.agg == "p(99.9)"
    assert t.percentile == 99.9
    assert t.op == "<="
    assert t.value == 1500.0
    assert t.unit == "s"
    assert t.condition == "p( 99.9 )  <=  1.5 s"


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("200", 200.0),
        ("200ms", 200.0),
        ("1.5s", 1500.0),
        ("500us", 0.5),
        ("500µs", 0.5),
        ("2e2", 200.0),
        (".5s", 500.0),
        ("0", 0.0),
    ],
)
def test_duration_units(text: str, ms: float):
    t = parse_threshold(f"http_req_duration:avg<{text}")
    assert math.isclose(t.value, ms)


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_every_operator(op: str):
    assert parse_threshold(f"http_reqs:count{op}5").op == op


def test_filters_are_stored_in_canonical_order():
    a = parse_threshold("http_req_duration{method:GET,name:/a}:avg<1")
    b = parse_threshold("http_req_duration{name:/a,method:GET}:avg<1")
    assert a.filters == b.filters == (("name", "/a"), ("method", "GET"))
    assert a.selector == "http_req_duration{name:/a,method:GET}"


def test_quoted_filter_value_may_hold_separators():
    t = parse_threshold("http_req_duration{name:'http://x/a,b}'}:avg<1")
    assert t.filters == (("name", "http://x/a,b}"),)
    u = parse_threshold("http_req_duration{name:http://x/a}:avg<1")
    assert u.filters == (("name", "http://x/a"),)


def test_aggregations_per_kind_are_accepted():
    for expr in [
        "http_req_duration:avg<1",
        "http_req_duration:min<1",
        "http_req_duration:max<1",
        "http_req_duration:med<1",
        "http_req_duration:p(0)<1",
        "http_req_duration:p(100)<1",
        "http_reqs:count<1",
        "http_reqs:rate<1",
        "http_req_failed:rate<0.01",
        "checks:rate>0.99",
        "vus:value<1",
        "vus:min<1",
        "vus:max<1",
    ]:
        parse_threshold(expr)


def test_custom_metric_kinds_are_used_when_given():
    parse_threshold("my_trend:p(95)<5", kinds={"my_trend": Kind.TREND})
    with pytest.raises(
        ThresholdError, match="unknown aggregation 'count' for trend metric my_trend"
    ):
        parse_threshold("my_trend:count<5", kinds={"my_trend": Kind.TREND})
    # Unknown custom metric: any aggregation some kind has is accepted for now.
    parse_threshold("later:count<5")
    parse_threshold("later:p(90)<5ms")


def test_parse_thresholds_mapping():
    ts = parse_thresholds({"http_req_duration": ["p(95)<200", "avg<100"], "checks": "rate>0.9"})
    assert [t.condition for t in ts] == ["p(95)<200", "avg<100", "rate>0.9"]


def test_threshold_error_is_a_config_error():
    assert issubclass(ThresholdError, ConfigError)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "threshold '': empty expression"),
        ("   ", "threshold '': empty expression"),
        ("9lives:avg<1", "threshold '9lives:avg<1': expected a metric name, found '9'"),
        ("http_req_duration", "expected METRIC:CONDITION, e.g. 'http_req_duration:p(95)<200'"),
        (
            "http_req_duration p(95)<1",
            "expected METRIC:CONDITION, e.g. 'http_req_duration:p(95)<200', "
            "found 'p' after the metric",
        ),
        ("http_req_duration:", "missing condition after the metric"),
        ("http_req_duration:<200", "missing aggregation before '<'"),
        (
            "http_req_duration:p95<200",
            "unknown aggregation 'p95' for trend metric http_req_duration "
            "(expected avg, min, max, med or p(N))",
        ),
        (
            "http_req_duration:count<200",
            "unknown aggregation 'count' for trend metric http_req_duration",
        ),
        ("http_req_duration:rate<200", "unknown aggregation 'rate' for trend metric"),
        (
            "http_reqs:avg<1",
            "unknown aggregation 'avg' for counter metric http_reqs (expected count or rate)",
        ),
        (
            "http_req_failed:count<1",
            "unknown aggregation 'count' for rate metric http_req_failed (expected rate)",
        ),
        (
            "vus:avg<1",
            "unknown aggregation 'avg' for gauge metric vus (expected value, min or max)",
        ),
        (
            "custom:bogus<1",
            "unknown aggregation 'bogus' (expected avg, count, max, med, min, p(N), rate or value)",
        ),
        ("http_req_duration:p<200", "aggregation 'p' needs a percentile, e.g. p(95) or p(99.9)"),
        ("http_req_duration:p(95<200", "unclosed '(' in p(...)"),
        ("http_req_duration:p(x)<200", "bad percentile 'x' in p(...); expected a number"),
        ("http_req_duration:p()<200", "bad percentile '' in p(...)"),
        ("http_req_duration:p(101)<200", "percentile 101 is outside 0..100"),
        ("http_req_duration:p(-1)<200", "percentile -1 is outside 0..100"),
        ("http_req_duration:avg(3)<200", "aggregation 'avg' takes no argument; only p(N) does"),
        (
            "http_req_duration:avg 200",
            "missing operator after 'avg' (expected <, <=, >, >=, == or !=), found '2'",
        ),
        ("http_req_duration:avg", "missing operator after 'avg' (expected <, <=, >, >=, == or !=)"),
        ("http_req_duration:avg=<200", "bad operator '=<' (expected <, <=, >, >=, == or !=)"),
        ("http_req_duration:avg=200", "bad operator '='"),
        ("http_req_duration:avg<>200", "bad operator '<>'"),
        ("http_req_duration:avg!200", "bad operator '!'"),
        ("http_req_duration:avg<", "missing value after '<'"),
        ("http_req_duration:avg<abc", "bad number 'abc'"),
        ("http_req_duration:avg<1.2.3", "bad number '1.2.3'"),
        ("http_req_duration:avg<nan", "bad number 'nan'"),
        ("http_req_duration:avg<1e999", "bad number '1e999'"),
        ("http_req_duration:avg<200kb", "unknown unit 'kb' in '200kb' (expected us, ms or s)"),
        (
            "http_req_failed:rate<1ms",
            "unit 'ms' applies only to durations, not to rate metric http_req_failed",
        ),
        (
            "http_reqs:count<5s",
            "unit 's' applies only to durations, not to counter metric http_reqs",
        ),
        ("custom:count<5s", "unit 's' applies only to durations, not to 'count'"),
        ("http_req_duration{name:/a:avg<1", "unclosed '{' in the metric's filters"),
        ("http_req_duration{}:avg<1", "empty filter '{}'"),
        ("http_req_duration{name}:avg<1", "filter 'name' has no ':' (expected tag:value)"),
        (
            "http_req_duration{url:/a}:avg<1",
            "unknown filter 'url' (expected name, method, status, tag, scenario or group)",
        ),
        ("http_req_duration{name:/a,name:/b}:avg<1", "filter 'name' is given twice"),
        ("http_req_duration{name:}:avg<1", "filter 'name' has an empty value"),
        (
            "http_req_duration{status:500}:avg<1",
            "filter 'status' applies only to http_reqs, not http_req_duration",
        ),
        (
            "http_reqs{status:500,tag:x}:count<1",
            "filters 'status' and 'tag' both select the status code",
        ),
        ("checks{tag:true}:rate<1", "filter 'tag' does not apply to rate metric checks"),
        ("http_req_duration{name:/a} junk:avg<1", "found 'j' after the metric"),
    ],
)
def test_parse_errors_quote_the_expression_and_say_what_is_wrong(expr: str, message: str):
    with pytest.raises(ThresholdError) as info:
        parse_threshold(expr)
    text = str(info.value)
    assert text.startswith(f"threshold {expr.strip()!r}: ")
    assert message.removeprefix(f"threshold {expr.strip()!r}: ") in text


def test_k6_form_errors_quote_both_parts():
    with pytest.raises(
        ThresholdError, match=r"threshold 'http_req_duration:p\(95\)=<1': bad operator"
    ):
        parse_threshold("http_req_duration", "p(95)=<1")
    with pytest.raises(ThresholdError, match="unexpected 'x' after the metric"):
        parse_threshold("http_req_duration x", "p(95)<1")
    with pytest.raises(ThresholdError, match="missing condition"):
        parse_threshold("http_req_duration", "  ")


@given(st.text(max_size=40))
def test_parser_raises_only_threshold_error(text: str):
    with contextlib.suppress(ThresholdError):
        parse_threshold(text)
    with contextlib.suppress(ThresholdError):
        parse_threshold("http_req_duration", text)


# -- evaluation ------------------------------------------------------------------------


def test_trend_aggregations_are_milliseconds(agg: Aggregator):
    passed, value, _ = result("http_req_duration{name:/login}:max<110", agg)
    assert passed
    assert value is not None
    assert math.isclose(value, 109.0)
    passed, value, _ = result("http_req_duration{name:/login}:min>=10", agg)
    assert passed
    assert value is not None
    assert math.isclose(value, 10.0)
    _, value, _ = result("http_req_duration{name:/login}:avg<1", agg)
    assert value is not None
    assert math.isclose(value, 59.5)
    _, med, _ = result("http_req_duration{name:/login}:med<1", agg)
    _, p50, _ = result("http_req_duration{name:/login}:p(50)<1", agg)
    assert med == p50
    assert med is not None
    assert abs(med - 59.0) < 0.1
    passed, value, _ = result("http_req_duration:p(99.9)<1s", agg)
    assert passed
    assert value is not None
    assert abs(value - 109.0) < 0.2


def test_duration_units_compare_in_milliseconds(agg: Aggregator):
    assert result("http_req_duration:max<0.11s", agg)[0]
    assert not result("http_req_duration:max<0.1s", agg)[0]
    assert result("http_req_duration:min>=500us", agg)[0]
    assert not result("http_req_duration:min>1000us", agg)[0]


def test_filters_select_name_and_method(agg: Aggregator):
    _, value, _ = result("http_req_duration{name:/home}:max<2", agg)
    assert value is not None
    assert math.isclose(value, 1.0)
    _, value, _ = result("http_req_duration{name:/home,method:GET}:max<2", agg)
    assert value is not None
    assert math.isclose(value, 1.0)
    assert result("http_req_duration{method:DELETE}:max<2", agg) == (False, None, "no samples")


def test_counter_count_and_rate(agg: Aggregator):
    assert result("http_reqs:count==150", agg, 2.0)[:2] == (True, 150.0)
    assert result("http_reqs:rate==75", agg, 2.0)[:2] == (True, 75.0)
    assert result("iterations:count==40", agg)[:2] == (True, 40.0)
    assert result("http_reqs{name:/home}:count==50", agg)[:2] == (True, 50.0)


def test_counter_rate_over_a_run_of_no_length(agg: Aggregator):
    assert result("http_reqs:rate<1000", agg, 0.0) == (False, None, "the run lasted no time")
    # count needs no duration
    assert result("http_reqs:count>0", agg, 0.0)[0]


def test_status_filter_reads_the_status_counter(agg: Aggregator):
    assert result("http_reqs{status:500}:count<1", agg)[:2] == (False, 10.0)
    assert result("http_reqs{status:404}:count<1", agg)[:2] == (True, 0.0)
    assert result("http_reqs{status:0}:count==2", agg)[:2] == (True, 2.0)
    assert result("http_reqs{name:/login,status:500}:rate==5", agg, 2.0)[:2] == (True, 5.0)


def test_tag_filter_on_a_counter(agg: Aggregator):
    assert result(f"{HTTP_ERRORS}{{tag:timeout}}:count==2", agg)[:2] == (True, 2.0)


def test_rate_metrics(agg: Aggregator):
    # 10 of 150 requests got a 500 and 2 a transport error
    passed, value, _ = result("http_req_failed:rate<0.01", agg)
    assert not passed
    assert value is not None
    assert math.isclose(value, 12 / 150)
    passed, value, _ = result("checks:rate>=0.75", agg)
    assert passed
    assert value == 0.75
    passed, value, _ = result("http_req_failed{name:/home}:rate==0.04", agg)
    assert passed
    assert value == 0.04


def test_gauges(agg: Aggregator):
    # two cannons: 5+5 in the first second, 6+6 in the second
    assert result("vus:value==12", agg)[:2] == (True, 12.0)
    assert result("vus:min==10", agg)[:2] == (True, 10.0)
    assert result("vus:max==12", agg)[:2] == (True, 12.0)


def test_never_recorded_metrics(agg: Aggregator):
    empty = Aggregator()
    assert result("http_req_duration:p(95)<200", empty) == (False, None, "no samples")
    assert result("http_req_failed:rate<0.01", empty) == (False, None, "no samples")
    assert result("vus:max<10", empty) == (False, None, "no samples")
    # a counter that never fired counted zero
    assert result("http_reqs:count<1", empty)[:3] == (True, 0.0, "")
    assert result("http_reqs:rate<1", empty)[:3] == (True, 0.0, "")
    assert result("dropped_iterations:count==0", agg)[:2] == (True, 0.0)
    # an unknown custom metric: only count is answerable
    assert result("my_counter:count<1", agg)[:2] == (True, 0.0)
    assert result("my_trend:p(95)<1", agg) == (False, None, "no samples")


def test_custom_metric_kind_mismatch_found_at_evaluation():
    a = Aggregator()
    rec = Recorder()
    rec.define("logins", Kind.COUNTER)
    rec.add(Key("logins"), 3)
    rec.define("think", Kind.TREND)
    rec.samples(Key("think")).values.extend([0.5, 1.5])
    a.add(rec.flush(T0))
    assert result("logins:count==3", a)[:2] == (True, 3.0)
    assert result("logins:p(95)<1", a) == (
        False,
        None,
        "p(95) does not apply to counter metric logins",
    )
    assert result("logins:min<1ms", a)[:1] == (False,)
    passed, value, _ = result("think:avg==1000", a)
    assert passed
    assert value == 1000.0


def test_evaluate_keeps_order_and_kind(agg: Aggregator):
    ts = parse_thresholds({"http_reqs": "count>0", "http_req_duration": "avg<1s"})
    rs = evaluate(ts, agg, 2.0)
    assert [r.threshold for r in rs] == ts
    assert [r.kind for r in rs] == [Kind.COUNTER, Kind.TREND]
    assert all(r.passed and r.reason == "" for r in rs)


def test_equality_operators(agg: Aggregator):
    assert result("http_reqs:count!=0", agg)[0]
    assert not result("http_reqs:count!=150", agg)[0]
    assert result("http_reqs:count>=150", agg)[0]
    assert not result("http_reqs:count>150", agg)[0]
