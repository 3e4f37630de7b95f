import hashlib
import json
import math
from pathlib import Path

import orjson
import pytest

from cannonade.model.aggregate import Aggregator
from cannonade.model.metrics import CHECKS, ITERATIONS, VUS, Key, SourceId
from cannonade.model.recorder import Recorder
from cannonade.model.summary import RunInfo, Summary, compute_summary
from cannonade.model.thresholds import parse_thresholds
from cannonade.report.export import dumps, json_safe, summary_export, write_summary_export

T0 = 1_700_000_000


def build(open_model: bool = False) -> Aggregator:
    agg = Aggregator()
    rec = Recorder(SourceId("agent-1", 0))
    for s in range(2):
        slot = rec.request_slot("/login", "POST")
        slot.duration.extend([0.010, 0.030])
        if open_model:
            slot.uncorrected.extend([0.005, 0.025])
        slot.status.extend([200, 503])
        slot.received += 3000
        rec.add(Key(ITERATIONS), 2)
        rec.rate(CHECKS, "status is 200", True)
        rec.rate(CHECKS, "status is 200", False)
        rec.gauge(Key(VUS), 4 + s)
        rec.error("KeyError", "'token'", "Traceback ...")
        agg.add(rec.flush(T0 + s))
    return agg


THRESHOLDS = {
    "http_req_duration": ["p(95)<200", "max<20"],
    "http_req_failed": "rate<0.01",
    "http_req_duration{name:/login}": "avg<100",
    "never_recorded": "p(95)<1",
}


@pytest.fixture
def summary() -> Summary:
    info = RunInfo(
        started=T0,
        ended=T0 + 2.0,
        options={"vus": 4, "bad": float("nan"), "when": object, "tags": {"a", "b"}},
        scenario="smoke",
    )
    return compute_summary(build(open_model=True), info, parse_thresholds(THRESHOLDS))


def test_top_level_shape(summary: Summary):
    data = summary_export(summary)
    assert list(data) == ["root_group", "metrics", "cannonade"]


def test_trend_metric_in_milliseconds_with_k6_keys(summary: Summary):
    d = summary_export(summary)["metrics"]["http_req_duration"]
    assert list(d) == ["avg", "min", "med", "max", "p(90)", "p(95)", "p(99)", "thresholds"]
    assert math.isclose(d["avg"], 20.0)
    assert d["min"] == pytest.approx(10.0)
    assert d["max"] == pytest.approx(30.0)
    assert d["p(95)"] == pytest.approx(30.0, rel=1e-3)


def test_threshold_booleans_mean_failed_as_in_k6(summary: Summary):
    metrics = summary_export(summary)["metrics"]
    assert metrics["http_req_duration"]["thresholds"] == {"p(95)<200": False, "max<20": True}
    assert metrics["http_req_failed"]["thresholds"] == {"rate<0.01": True}
    assert metrics["http_req_duration{name:/login}"]["thresholds"] == {"avg<100": False}
    # a threshold on a metric without data is still reported, failed
    assert metrics["never_recorded"] == {"thresholds": {"p(95)<1": True}}


def test_counter_rate_and_gauge_shapes(summary: Summary):
    metrics = summary_export(summary)["metrics"]
    assert metrics["http_reqs"] == {"count": 4, "rate": 2}
    assert metrics["iterations"] == {"count": 4, "rate": 2}
    assert metrics["data_received"] == {"count": 6000, "rate": 3000}
    # passes = samples that were true: for http_req_failed, the failed requests
    assert metrics["http_req_failed"]["passes"] == 2
    assert metrics["http_req_failed"]["fails"] == 2
    assert metrics["http_req_failed"]["value"] == 0.5
    assert metrics["checks"] == {"passes": 2, "fails": 2, "value": 0.5}
    assert metrics["vus"] == {"value": 5, "min": 4, "max": 5}
    assert "http_req_duration_uncorrected" in metrics
    assert "http_status" not in metrics


def test_root_group_is_k6s_legacy_shape(summary: Summary):
    root = summary_export(summary)["root_group"]
    path = "::status is 200"
    assert root == {
        "name": "",
        "path": "",
        "id": "d41d8cd98f00b204e9800998ecf8427e",
        "groups": {},
        "checks": {
            "status is 200": {
                "name": "status is 200",
                "path": path,
                "id": hashlib.md5(path.encode()).hexdigest(),
                "passes": 2,
                "fails": 2,
            }
        },
    }


def test_cannonade_section(summary: Summary):
    c = summary_export(summary)["cannonade"]
    assert c["verdict"] == "failed"
    assert c["interrupted"] is False
    assert c["scenario"] == "smoke"
    assert c["started"] == "2023-11-14T22:13:20.000Z"
    assert c["ended"] == "2023-11-14T22:13:22.000Z"
    assert c["duration_s"] == 2
    assert c["gaps"] == []
    assert c["status_codes"] == {"200": 2, "503": 2}
    assert c["transport_errors"] == []
    assert c["errors"] == [
        {"kind": "KeyError", "message": "'token'", "count": 2, "sample": "Traceback ..."}
    ]
    (row,) = c["requests_by_name"]
    assert row["name"] == "/login"
    assert row["method"] == "POST"
    assert (row["count"], row["failures"], row["rps"]) == (4, 2, 2)
    assert row["min"] == pytest.approx(10.0)
    assert row["max"] == pytest.approx(30.0)
    assert set(row) == {
        "name",
        "method",
        "count",
        "failures",
        "rps",
        "avg",
        "min",
        "p(50)",
        "p(90)",
        "p(95)",
        "p(99)",
        "max",
    }
    first = c["thresholds"][0]
    assert first == {
        "metric": "http_req_duration",
        "condition": "p(95)<200",
        "passed": True,
        "value": pytest.approx(30.0, rel=1e-3),
        "unit": "ms",
        "reason": "",
    }
    assert c["thresholds"][-1]["reason"] == "no samples"
    assert c["thresholds"][-1]["value"] is None
    assert c["totals"] == {
        "requests": 4,
        "iterations": 4,
        "data_received": 6000,
        "data_sent": 0,
        "dropped_iterations": 0,
    }


def test_options_are_made_json_safe(summary: Summary):
    options = summary_export(summary)["cannonade"]["options"]
    assert options["vus"] == 4
    assert options["bad"] is None
    assert options["when"] == str(object)
    assert options["tags"] == ["a", "b"]


def test_never_nan_even_for_an_empty_zero_length_run():
    empty = compute_summary(
        Aggregator(), RunInfo(T0, T0), parse_thresholds({"http_req_duration": "p(95)<1"})
    )
    for s in (empty,):
        data = summary_export(s)
        json.dumps(data, allow_nan=False)  # raises on NaN or infinity
        assert b"NaN" not in dumps(s)
        assert b"Infinity" not in dumps(s)
    zero = compute_summary(build(), RunInfo(T0, T0))
    data = summary_export(zero)
    json.dumps(data, allow_nan=False)
    assert data["metrics"]["http_reqs"] == {"count": 4, "rate": None}


def test_dumps_round_trips(summary: Summary):
    assert orjson.loads(dumps(summary)) == json.loads(json.dumps(summary_export(summary)))


def test_write_summary_export(tmp_path: Path, summary: Summary):
    target = tmp_path / "summary.json"
    target.write_text("old")
    write_summary_export(summary, target)
    assert orjson.loads(target.read_bytes())["cannonade"]["verdict"] == "failed"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    assert target.stat().st_mode & 0o644 == 0o644
    write_summary_export(summary, str(target))  # str paths too


def test_write_to_a_missing_directory_fails_cleanly(tmp_path: Path, summary: Summary):
    with pytest.raises(FileNotFoundError):
        write_summary_export(summary, tmp_path / "nope" / "summary.json")


def test_json_safe():
    assert json_safe({1: (1.5, float("inf")), "s": frozenset({3, 1})}) == {
        "1": [1.5, None],
        "s": [1, 3],
    }
    assert json_safe(None) is None
    assert json_safe(True) is True
