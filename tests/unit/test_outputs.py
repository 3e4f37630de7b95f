"""--out json, --out csv and --junit of a stored run: each file parsed back, and its
counts equal to the summary's."""

import argparse
import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cannonade.cli.history import add_history_parsers, history_command
from cannonade.errors import ConfigError
from cannonade.model.aggregate import Aggregator
from cannonade.model.metrics import CHECKS, ITERATIONS, VUS, Key, Kind, SourceId
from cannonade.model.recorder import Recorder
from cannonade.report.junit import junit_xml
from cannonade.report.outputs import (
    FAILURES_COLUMNS,
    HISTORY_COLUMNS,
    STATS_COLUMNS,
    Output,
    json_lines,
    load_for_outputs,
    parse_outputs,
    write_outputs,
    write_run_outputs,
)
from cannonade.report.stored import stored_summary
from cannonade.storage import Store

T0 = 1_700_000_000
ODD = '/search?q="a,b"'  # a name CSV must quote


def record_second(rec, s):
    login = rec.request_slot("/login", "POST")
    login.duration.extend([0.020] * 9 + [0.200])
    login.status.extend([200] * 9 + [500])
    login.received += 1000
    odd = rec.request_slot(ODD, "GET")
    odd.duration.extend([0.001 * (1 + s % 3)] * 5)
    odd.status.extend([200] * 4 + [0])
    odd.error("timeout")
    odd.received += 500
    rec.add(Key(ITERATIONS), 5)
    rec.rate(CHECKS, "status is 200", s % 2 == 0)
    rec.gauge(Key(VUS), 3)
    rec.define("login_time", Kind.TREND)
    rec.samples(Key("login_time")).values.append(0.5)
    if s == 0:
        rec.error("KeyError", "'token'", "Traceback ...\nKeyError: 'token'")


def store_run(store, run_id="abc123", seconds=3, thresholds=()):
    store.create_run(
        run_id,
        scenario="login.py",
        scenario_sha256="0" * 64,
        options={"users": 3},
        thresholds=thresholds,
        created=T0,
    )
    live = Aggregator()
    w = store.writer(run_id)
    recorders = [Recorder(SourceId("agent-1", c)) for c in range(2)]
    for s in range(seconds):
        for rec in recorders:
            record_second(rec, s)
            d = rec.flush(T0 + s, final=s == seconds - 1)
            live.add(d)
            w.add(d)
    w.flush()
    w.record_sources(live.sources)
    store.set_status(run_id, "finished", at=T0 + seconds, started=T0, ended=T0 + seconds)


THRESHOLDS = (
    "http_req_failed: rate<0.5",
    "http_req_duration{name:/login}:p(95)<1",
    "nothing_here:count>0",
)


@pytest.fixture
def stored(tmp_path):
    with Store.open(tmp_path / "runs.db") as store:
        store_run(store, thresholds=THRESHOLDS)
        run = load_for_outputs(store, "abc123")
    return run, stored_summary(run)


def test_parse_outputs():
    assert parse_outputs(["json=a.jsonl", "csv=out/dir", "json=x=y"]) == (
        Output("json", Path("a.jsonl")),
        Output("csv", Path("out/dir")),
        Output("json", Path("x=y")),
    )
    assert parse_outputs(None) == ()
    for bad, says in (
        ("json", "must look like KIND=PATH"),
        ("influx=x", "unknown kind 'influx'"),
        ("csv=", "no path"),
    ):
        with pytest.raises(ConfigError, match=says) as e:
            parse_outputs([bad])
        assert str(e.value).startswith(f"--out {bad!r}")


def test_json_lines_parse_back_and_sum_to_the_summary(stored, tmp_path):
    run, summary = stored
    path = tmp_path / "out.jsonl"
    write_outputs(run, summary, [Output("json", path)], None)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert all(set(x) == {"type", "metric", "data"} for x in lines)
    metrics = {x["metric"]: x["data"] for x in lines if x["type"] == "Metric"}
    points = [x for x in lines if x["type"] == "Point"]
    # A Metric line comes once, before the metric's first point.
    seen = set()
    for x in lines:
        if x["type"] == "Metric":
            assert x["metric"] not in seen
        seen.add(x["metric"])
        if x["type"] == "Point":
            assert x["metric"] in metrics
    assert metrics["http_req_duration"]["type"] == "trend"
    assert metrics["http_req_duration"]["contains"] == "time"
    assert metrics["http_req_failed"]["type"] == "rate"
    assert metrics["http_req_failed"]["thresholds"] == ["rate<0.5"]
    assert metrics["vus"]["type"] == "gauge"

    def total(metric, field="value"):
        return sum(p["data"][field] for p in points if p["metric"] == metric)

    assert total("http_reqs") == summary.totals.requests == 90
    assert total("http_req_failed", "passes") == summary.metric("http_req_failed").values.trues
    assert total("http_req_failed", "fails") == summary.metric("http_req_failed").values.falses
    assert total("http_req_duration", "count") == summary.metric("http_req_duration").values.count
    assert total("login_time", "count") == 6  # custom trends have per-second points too
    assert total("iterations") == summary.totals.iterations

    times = sorted({p["data"]["time"] for p in points})
    assert times == ["2023-11-14T22:13:20Z", "2023-11-14T22:13:21Z", "2023-11-14T22:13:22Z"]
    login = [
        p["data"]
        for p in points
        if p["metric"] == "http_req_duration" and p["data"]["tags"]["name"] == "/login"
    ]
    assert len(login) == 3
    first = login[0]
    assert first["tags"] == {"name": "/login", "method": "POST"}
    assert first["count"] == 20
    assert first["value"] == first["avg"] == pytest.approx(38.0)
    assert first["min"] == pytest.approx(20.0)
    assert first["max"] == pytest.approx(200.0)
    assert first["p(50)"] == pytest.approx(20.0, rel=1e-3)
    assert first["p(99)"] == pytest.approx(200.0, rel=1e-3)
    assert {"p(90)", "p(95)"} <= set(first)
    vus = [p["data"] for p in points if p["metric"] == "vus"]
    assert [v["value"] for v in vus] == [6, 6, 6]  # the level, summed over both cannons
    statuses = {p["data"]["tags"].get("status") for p in points if p["metric"] == "http_status"}
    assert statuses == {"0", "200", "500"}
    errors = [p["data"]["tags"] for p in points if p["metric"] == "http_errors"]
    assert errors[0] == {"name": ODD, "method": "GET", "error": "timeout"}
    checks = [p["data"] for p in points if p["metric"] == "checks"]
    assert [(c["value"], c["passes"], c["fails"]) for c in checks] == [
        (1.0, 2, 0),
        (0.0, 0, 2),
        (1.0, 2, 0),
    ]


def test_json_is_the_same_without_a_summary_file(stored):
    run, _ = stored
    assert b"".join(json_lines(run)).count(b"\n") > 0


def read_csv(path):
    with path.open(newline="") as f:
        r = csv.DictReader(f)
        return r.fieldnames, list(r)


def test_csv_files_parse_back_and_match_the_summary(stored, tmp_path):
    run, summary = stored
    d = tmp_path / "csv" / "deeper"
    write_outputs(run, summary, [Output("csv", d)], None)
    assert sorted(p.name for p in d.iterdir()) == [
        "exceptions.csv",
        "failures.csv",
        "stats.csv",
        "stats_history.csv",
    ]

    head, stats = read_csv(d / "stats.csv")
    assert tuple(head) == STATS_COLUMNS
    assert head[-11:] == ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%",
                          "99.99%", "100%"]  # fmt: skip
    by_name = {row["Name"]: row for row in stats}
    assert [row["Name"] for row in stats] == ["/login", ODD, "Aggregated"]
    assert by_name["Aggregated"]["Type"] == ""
    for r in summary.requests:
        row = by_name[r.name]
        assert row["Type"] == r.method
        assert int(row["Request Count"]) == r.count
        assert int(row["Failure Count"]) == r.failures
        assert float(row["Requests/s"]) == pytest.approx(r.rps)
        assert float(row["Median Response Time"]) == pytest.approx(r.p50 * 1000)
        assert float(row["Max Response Time"]) == pytest.approx(r.max * 1000)
        assert float(row["100%"]) == pytest.approx(r.max * 1000)
    assert int(by_name["Aggregated"]["Request Count"]) == summary.totals.requests
    assert float(by_name["/login"]["Average Content Size"]) == pytest.approx(100.0)
    assert float(by_name["/login"]["Failures/s"]) == pytest.approx(2.0)

    head, history = read_csv(d / "stats_history.csv")
    assert tuple(head) == HISTORY_COLUMNS
    aggregated = [row for row in history if row["Name"] == "Aggregated"]
    assert [int(row["Timestamp"]) for row in aggregated] == [T0, T0 + 1, T0 + 2]
    assert [int(row["User Count"]) for row in aggregated] == [6, 6, 6]
    assert [float(row["Requests/s"]) for row in aggregated] == [30, 30, 30]
    assert [int(row["Total Request Count"]) for row in aggregated] == [30, 60, 90]
    per_name = [row for row in history if row["Name"] != "Aggregated"]
    assert sum(float(row["Requests/s"]) for row in per_name) == summary.totals.requests
    last_login = [row for row in per_name if row["Name"] == "/login"][-1]
    assert int(last_login["Total Failure Count"]) == 6

    head, failures = read_csv(d / "failures.csv")
    assert tuple(head) == FAILURES_COLUMNS
    got = {(row["Method"], row["Name"], row["Error"]): int(row["Occurrences"]) for row in failures}
    assert got == {("POST", "/login", "HTTP 500"): 6, ("GET", ODD, "timeout"): 6}
    assert sum(got.values()) == summary.metric("http_req_failed").values.trues

    _, exceptions = read_csv(d / "exceptions.csv")
    assert [(row["Count"], row["Message"]) for row in exceptions] == [("2", "KeyError: 'token'")]
    assert exceptions[0]["Traceback"].endswith("KeyError: 'token'")


def test_junit_has_a_testcase_per_threshold(stored, tmp_path):
    run, summary = stored
    path = tmp_path / "junit.xml"
    write_outputs(run, summary, [], str(path))
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(summary.thresholds) == 3
    assert suite.get("tests") == root.get("tests") == "3"
    failed = [c for c in cases if c.find("failure") is not None]
    assert suite.get("failures") == str(len(failed)) == str(len(summary.failed_thresholds)) == "2"
    names = [c.get("name") for c in cases]
    assert names == [
        "http_req_failed: rate<0.5",
        "http_req_duration{name:/login}: p(95)<1",
        "nothing_here: count>0",
    ]
    assert cases[0].find("failure") is None
    assert cases[1].find("failure").get("message").startswith("p(95)=")
    assert cases[1].get("classname") == "thresholds.http_req_duration"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["verdict"] == "failed"
    assert props["requests"] == "90"


def test_junit_without_thresholds_and_with_nasty_text(tmp_path):
    with Store.open(tmp_path / "runs.db") as store:
        store_run(store, thresholds=("http_req_duration{name:'<&\"]]>'}:max<1",))
        summary = stored_summary(store.load("abc123"))
    root = ET.fromstring(junit_xml(summary))
    (case,) = root.iter("testcase")
    assert case.get("name") == 'http_req_duration{name:<&"]]>}: max<1'
    assert case.find("failure").get("message") == "no samples"


def test_show_writes_the_outputs_again(tmp_path, capsys):
    db = tmp_path / "runs.db"
    with Store.open(db) as store:
        store_run(store, thresholds=THRESHOLDS)
    parser = argparse.ArgumentParser()
    add_history_parsers(parser.add_subparsers(dest="command"))
    out = tmp_path / "o.jsonl"
    args = parser.parse_args(
        ["show", "abc", "--db", str(db), "--out", f"json={out}", "--out", f"csv={tmp_path / 'c'}",
         "--junit", str(tmp_path / "j.xml")]
    )  # fmt: skip
    assert history_command(args) == 99
    err = capsys.readouterr().err
    assert f"output: {out}" in err
    assert (tmp_path / "c" / "stats.csv").exists()
    assert ET.parse(tmp_path / "j.xml").getroot().get("failures") == "2"
    args = parser.parse_args(["show", "abc", "--db", str(db), "--out", "xml=x"])
    assert history_command(args) == 1
    assert "--out 'xml=x': unknown kind 'xml'" in capsys.readouterr().err


def test_an_unwritable_path_is_named(stored, tmp_path, capsys):
    run, summary = stored
    missing = tmp_path / "no" / "such" / "dir" / "points.jsonl"
    with pytest.raises(FileNotFoundError) as e:
        write_outputs(run, summary, [Output("json", missing)], None)
    assert e.value.filename == str(missing)
    with pytest.raises(FileNotFoundError) as e:
        write_outputs(run, summary, [], str(missing))
    assert e.value.filename == str(missing)
    assert (
        write_run_outputs(tmp_path / "runs.db", "abc123", [Output("json", missing)], None, summary)
        is False
    )
    assert f"error: --out/--junit {missing}: No such file or directory" in capsys.readouterr().err
