"""--out json, --out csv and --junit of a real `cannonade run`: every file parses back,
with the request count the target itself served."""

import csv
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from conftest import cannonade_run

pytestmark = pytest.mark.e2e

SCENARIO = """
from cannonade import scenario

@scenario
async def pages(vu):
    await vu.http.get("/")
    await vu.http.get("/json")
"""


def read_csv(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_run_writes_json_csv_and_junit(tmp_path, target):
    scenario = tmp_path / "pages.py"
    scenario.write_text(SCENARIO)
    jsonl, csv_dir, junit = tmp_path / "points.jsonl", tmp_path / "csv", tmp_path / "junit.xml"
    r, export = cannonade_run(
        tmp_path, str(scenario), "--host", target.url, "-u", "2", "-d", "2s", "--no-report",
        "--out", f"json={jsonl}", "--out", f"csv={csv_dir}", "--junit", str(junit),
        "--threshold", "http_req_failed: rate<0.01", "--threshold", "http_req_duration: p(95)<0",
    )  # fmt: skip
    assert r.returncode == 99, r.stderr  # p(95)<0 cannot pass
    served = target.stats()["requests"]
    assert served > 0
    assert export["metrics"]["http_reqs"]["count"] == served
    for path in (jsonl, csv_dir, junit):
        assert f"output: {path}\n" in r.stderr

    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    points = [x for x in lines if x["type"] == "Point"]
    assert sum(p["data"]["value"] for p in points if p["metric"] == "http_reqs") == served
    durations = [p["data"] for p in points if p["metric"] == "http_req_duration"]
    assert sum(d["count"] for d in durations) == served

    stats = read_csv(csv_dir / "stats.csv")
    aggregated = stats[-1]
    assert aggregated["Name"] == "Aggregated"
    assert int(aggregated["Request Count"]) == served
    assert sum(int(row["Request Count"]) for row in stats[:-1]) == served
    assert {d["tags"]["name"] for d in durations} == {row["Name"] for row in stats[:-1]}
    assert len(stats) == 3  # two pages and the Aggregated row
    history = read_csv(csv_dir / "stats_history.csv")
    history = [row for row in history if row["Name"] == "Aggregated"]
    assert int(history[-1]["Total Request Count"]) == served
    assert sum(float(row["Requests/s"]) for row in history) == served
    assert read_csv(csv_dir / "failures.csv") == []

    root = ET.parse(junit).getroot()
    cases = list(root.iter("testcase"))
    assert len(cases) == 2
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(failed) == 1
    assert failed[0].get("name") == "http_req_duration: p(95)<0"
    assert root.get("tests") == "2"
    assert root.get("failures") == "1"

    # The same files again, later, from the store.
    run_id = re.search(r"^run (\S+) stored in ", r.stderr, re.M).group(1)
    again = tmp_path / "again.jsonl"
    p = subprocess.run(
        [sys.executable, "-m", "cannonade", "show", run_id, "--db", str(tmp_path / "runs.db"),
         "--out", f"json={again}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert p.returncode == 99, p.stderr
    assert again.read_text() == jsonl.read_text()


def test_a_bad_out_is_refused_before_the_run(tmp_path, target):
    scenario = tmp_path / "pages.py"
    scenario.write_text(SCENARIO)
    r, export = cannonade_run(
        tmp_path, str(scenario), "--host", target.url, "-u", "1", "--hits", "1",
        "--out", "influx=http://localhost:8086",
    )  # fmt: skip
    assert r.returncode == 1
    assert "error: --out 'influx=http://localhost:8086': unknown kind 'influx'" in r.stderr
    assert export is None
    assert target.stats()["requests"] == 0
