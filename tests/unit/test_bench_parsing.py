"""The bench harnesses' result parsing (bench/http_cpu.py, bench/vu_memory.py).

No process is started here: only the pure functions that turn tool output into numbers.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def hc(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module("http_cpu")


@pytest.fixture
def vm(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module("vu_memory")


WRK_OUT = """\
Running 5s test @ http://127.0.0.1:40111/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.41ms  250.11us   9.87ms   91.02%
    Req/Sec    45.71k     1.20k   47.90k    72.00%
  227431 requests in 5.00s, 33.41MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  45486.20
Transfer/sec:      6.68MB
"""


def test_wrk_requests_errors_and_seconds(hc: ModuleType) -> None:
    c = hc.parse_wrk(WRK_OUT)
    assert (c.requests, c.errors, c.seconds) == (227431, 7, 5.0)


def test_wrk_minutes_and_no_errors(hc: ModuleType) -> None:
    c = hc.parse_wrk("  12 requests in 1.50m, 1.00KB read\n")
    assert (c.requests, c.errors, c.seconds) == (12, 0, 90.0)


def test_wrk_garbage_is_an_error(hc: ModuleType) -> None:
    with pytest.raises(ValueError, match="requests in"):
        hc.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_summary_export_legacy_k6_shape(hc: ModuleType) -> None:
    doc = {
        "metrics": {
            "http_reqs": {"count": 200000, "rate": 40000.0},
            "http_req_failed": {"passes": 3, "fails": 199997, "value": 0.000015},
        }
    }
    c = hc.parse_summary_export(json.dumps(doc))
    assert (c.requests, c.errors) == (200000, 3)
    assert c.seconds == pytest.approx(5.0)


def test_summary_export_values_shape(hc: ModuleType) -> None:
    doc = {
        "metrics": {
            "http_reqs": {"values": {"count": 100, "rate": 50}},
            "http_req_failed": {"values": {"rate": 0.02}},
        }
    }
    c = hc.parse_summary_export(json.dumps(doc))
    assert (c.requests, c.errors, c.seconds) == (100, 2, 2.0)


@pytest.mark.parametrize(
    "doc", [{}, {"metrics": {}}, {"metrics": {"http_reqs": {"count": "many"}}}, []]
)
def test_summary_export_without_count(hc: ModuleType, doc: object) -> None:
    with pytest.raises(ValueError, match="metrics"):
        hc.parse_summary_export(json.dumps(doc))


LOCUST_CSV = """\
Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,\
75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
GET,/,20480,2,21,21.3,1,80,3.0,2048.0,0.2,21,22,23,24,26,28,31,35,60,80,80
,Aggregated,20480,2,21,21.3,1,80,3.0,2048.0,0.2,21,22,23,24,26,28,31,35,60,80,80
"""


def test_locust_aggregated_row(hc: ModuleType) -> None:
    c = hc.parse_locust_stats(LOCUST_CSV)
    assert (c.requests, c.errors, c.seconds) == (20480, 2, 10.0)


def test_locust_without_aggregated_row(hc: ModuleType) -> None:
    with pytest.raises(ValueError, match="Aggregated"):
        hc.parse_locust_stats(LOCUST_CSV.splitlines()[0])


def test_molotov_takes_the_last_summary(hc: ModuleType) -> None:
    out = "SUCCESSES: 10 | FAILURES: 0\n...\nSUCCESSES: 14000 | FAILURES: 5\n*** Bye ***\n"
    c = hc.parse_molotov(out)
    assert (c.requests, c.errors, c.seconds) == (14005, 5, None)


def test_stub_status(hc: ModuleType) -> None:
    page = (
        "Active connections: 65 \nserver accepts handled requests\n"
        " 70 70 123456 \nReading: 0 Writing: 1 Waiting: 64 \n"
    )
    assert hc.parse_stub_status(page) == 123456
    with pytest.raises(ValueError, match="stub_status"):
        hc.parse_stub_status("<html>404</html>")


def test_proc_stat_with_odd_command_name(hc: ModuleType) -> None:
    # comm may hold spaces and parentheses; fields are counted from the last ')'.
    fields = ["S", "42"] + ["0"] * 9 + ["100", "50", "30", "20"] + ["0"] * 30
    ppid, cpu = hc.parse_stat("1234 (we ird) (x)) " + " ".join(fields))
    assert ppid == 42
    assert cpu == pytest.approx(200 / hc.CLK_TCK)


def test_cpu_model(hc: ModuleType) -> None:
    info = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R)  Xeon(R)\n"
    assert hc.cpu_model(info) == "Intel(R) Xeon(R)"
    assert hc.cpu_model("") == "unknown CPU"


def test_replace_section_appends_then_replaces(hc: ModuleType) -> None:
    text = "# Performance\n\nintro\n"
    once = hc.replace_section(text, "http_cpu", "table 1")
    block = "<!-- http_cpu:begin -->\ntable 1\n<!-- http_cpu:end -->\n"
    assert once == "# Performance\n\nintro\n\n" + block
    both = hc.replace_section(once + "\n## after\n", "vu_memory", "mem")
    twice = hc.replace_section(both, "http_cpu", "table 2\n")
    assert "table 1" not in twice
    assert "<!-- http_cpu:begin -->\ntable 2\n<!-- http_cpu:end -->" in twice
    assert twice.startswith("# Performance\n\nintro\n")
    assert "## after" in twice
    assert "<!-- vu_memory:begin -->\nmem\n<!-- vu_memory:end -->" in twice


def test_steady_state_skips_ramp_and_shutdown(hc: ModuleType) -> None:
    S = hc.Sample
    samples = [
        S(0.0, 0.0, 0.0, 10),
        S(0.5, 0.4, 0.0, 11),  # start-up: only the sampler's own request
        S(1.0, 0.8, 0.1, 1012),  # first requests (dropped)
        S(1.5, 1.0, 0.2, 2013),  # ramp (dropped)
        S(2.0, 1.2, 0.3, 4014),  # steady: 2000 requests, 0.2 s CPU
        S(2.5, 1.4, 0.4, 6015),  # steady: 2000 requests, 0.2 s CPU
        S(3.0, 1.9, 0.4, 6516),  # shutdown (dropped)
    ]
    us, nginx_share = hc.steady_state(samples)
    assert us == pytest.approx(100.0)
    assert nginx_share == pytest.approx(0.2)
    assert hc.steady_state(samples[:4]) == (None, None)
    assert hc.steady_state([S(0.0, 0.0, 0.0, None), S(1.0, 1.0, 0.0, None)]) == (None, None)


def test_targets(hc: ModuleType) -> None:
    def row(tool: str, cpu: float, requests: int) -> object:
        return hc.Row(tool, tool, requests=requests, client_cpu=cpu, wall=1.0, seconds=1.0)

    rows = [
        row("wrk", 1.0, 100_000),
        row("cannonade", 2.5, 100_000),
        row("locust-fast", 3.0, 10_000),
    ]
    verdicts = [t.verdict for t in hc.evaluate_targets(rows)]
    assert verdicts == ["MISS", "PASS"]  # 25 µs vs 10 µs; 300 µs vs 25 µs
    assert [t.verdict for t in hc.evaluate_targets(rows[:1])] == ["n/a", "n/a"]


def test_duration_is_bounded(hc: ModuleType) -> None:
    assert hc.duration_for(200_000, 40_000, 5, 20) == 5
    assert hc.duration_for(200_000, 1_000, 5, 20) == 20
    assert hc.duration_for(200_000, 25_000, 5, 20) == 8
    assert hc.duration_for(10, 0, 5, 20) == 10


def test_vus_max_from_export(vm: ModuleType) -> None:
    gauge = {"metrics": {"vus_max": {"value": 50000, "min": 50000, "max": 50000}}}
    assert vm.parse_vus_max(json.dumps(gauge)) == 50000
    assert vm.parse_vus_max(json.dumps({"metrics": {"vus": {"values": {"max": 7}}}})) == 7
    assert vm.parse_vus_max("not json") is None
    assert vm.parse_vus_max(json.dumps({"metrics": {}})) is None


def test_memory_verdicts(vm: ModuleType) -> None:
    base = vm.MemoryRun(1, peak_rss_kib=60 * 1024)
    full = vm.MemoryRun(50_000, peak_rss_kib=700 * 1024)
    assert vm.judge(full, base).verdict == "PASS"
    assert vm.judge(vm.MemoryRun(50_000, peak_rss_kib=1100 * 1024), None).verdict == "MISS"
    small = vm.MemoryRun(10_001, peak_rss_kib=60 * 1024 + 10_000 * 30)  # 30 KiB per VU
    verdict = vm.judge(small, base)
    assert verdict.verdict == "MISS"
    assert "projected" in verdict.detail
    assert vm.judge(vm.MemoryRun(10, failed="exit 1"), base).verdict == "n/a"
