"""bench/cannon_scaling.py's parsing and arithmetic (no process is started here)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture
def cs(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module("cannon_scaling")


# --------------------------------------------------------------------------- /proc


def _stat(comm: str, utime: int, stime: int, cutime: int = 0, cstime: int = 0) -> str:
    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    # utime stime cutime cstime ...
    head = f"4242 ({comm}) S 1 4242 4242 0 -1 4194304 10 0 0 0"
    return f"{head} {utime} {stime} {cutime} {cstime} 20 0 1 0"


def test_own_cpu_leaves_reaped_children_out(cs: ModuleType) -> None:
    tck = cs.CLK_TCK
    assert cs.parse_own_cpu(_stat("python", 3 * tck, tck, 50 * tck, 50 * tck)) == 4.0


def test_own_cpu_survives_a_command_name_with_spaces_and_parens(cs: ModuleType) -> None:
    tck = cs.CLK_TCK
    assert cs.parse_own_cpu(_stat("we) ird (name", tck, tck)) == 2.0


def test_roles_from_command_lines(cs: ModuleType) -> None:
    hq = ["/v/bin/python", "/v/bin/cannonade", "run", "s.py", "--cannons", "2"]
    agent = ["/v/bin/python", "-m", "cannonade", "agent", "--hq", "127.0.0.1"]
    cannon = ["/v/bin/python", "-m", "cannonade.agent.cannon", "--ipc", "x", "--agent", "u"]
    assert cs.classify(hq, root=True) == "hq"
    assert cs.classify(agent, root=False) == "agent"
    assert cs.classify(cannon, root=False) == "cannon"
    assert cs.classify(["/bin/sh", "-c", "true"], root=False) == "other"


def test_machine_busy_from_proc_stat(cs: ModuleType) -> None:
    tck = cs.CLK_TCK
    text = (
        f"cpu  {10 * tck} {tck} {5 * tck} {100 * tck} {7 * tck} {tck} {2 * tck} {3 * tck} 0 0\n"
        "cpu0 1 2 3 4 5 6 7 8 0 0\nintr 1 2 3\n"
    )
    # user + nice + system + irq + softirq; idle, iowait and steal are not busy.
    assert cs.parse_proc_stat_busy(text) == 19.0
    with pytest.raises(ValueError, match="cpu"):
        cs.parse_proc_stat_busy("intr 1 2 3\n")


# --------------------------------------------------------------------------- counts


def test_access_log_counts_lines_and_non_2xx(cs: ModuleType) -> None:
    assert cs.parse_access_log("200\n200\n204\n499\n\n503\n") == (5, 2)
    assert cs.parse_access_log("") == (0, 0)


def test_dropped_iterations_from_the_export(cs: ModuleType) -> None:
    doc = {"metrics": {"http_reqs": {"count": 10}, "dropped_iterations": {"count": 870}}}
    assert cs.parse_dropped(json.dumps(doc)) == 870
    k6 = {"metrics": {"dropped_iterations": {"values": {"count": 3}}}}
    assert cs.parse_dropped(json.dumps(k6)) == 3
    assert cs.parse_dropped(json.dumps({"metrics": {"http_reqs": {"count": 10}}})) == 0


def test_summary_export_and_access_log_must_agree(cs: ModuleType) -> None:
    r = cs.RunResult("cpu", 1, 0, exported=80_000, logged=80_000)
    assert r.counts_match
    assert cs._counts(r) == "80,000 = 80,000"
    r.logged = 79_999
    assert not r.counts_match
    assert cs._counts(r) == "80,000 ≠ 79,999"
    assert not cs.RunResult("cpu", 1, 0, exported=5).counts_match  # no log read


# --------------------------------------------------------------------------- windows


def _snaps(cs: ModuleType, served: list[int], cpu: list[dict[int, float]]) -> list:
    # One sample every 0.5 s; nginx's counter includes the poll of each sample.
    return [
        cs.Snap(t=0.5 * i, served=s + (i + 1), polls=i + 1, nginx_cpu=0.1 * i, cpu=c)
        for i, (s, c) in enumerate(zip(served, cpu, strict=True))
    ]


def test_activity_ignores_our_own_polls(cs: ModuleType) -> None:
    snaps = _snaps(cs, [0, 0, 0, 10, 30, 30, 30], [{}] * 7)
    assert cs.activity(snaps) == (3, 4)
    assert cs.activity(_snaps(cs, [0, 0, 0], [{}] * 3)) is None


def test_steady_window_trims_and_splits_cpu_by_role(cs: ModuleType) -> None:
    n = 21  # 0..10 s; requests from t=1.0 (sample 2) to t=9.0 (sample 18)
    served = [0, 0] + [1000 * k for k in range(1, 17)] + [16_000] * 3
    cpu = [{1: 0.01 * i, 2: 0.02 * i, 3: 0.5 * i, 4: 0.5 * i, 5: 9.0} for i in range(n)]
    roles = {1: "hq", 2: "agent", 3: "cannon", 4: "cannon", 5: "other"}
    w = cs.steady_window(_snaps(cs, served, cpu), roles, warm=2.0, cool=1.0, minimum=3.0)
    assert w is not None
    # first request seen at sample 2 (t=1.0): from t=3.0 (sample 6); last increase at
    # sample 17 (t=8.5), so up to t <= 8.0 - 1.0 = 7.0 (sample 14).
    assert w.seconds == pytest.approx(4.0)
    assert w.requests == 8000
    assert w.role_cpu == pytest.approx({"hq": 0.08, "agent": 0.16, "cannon": 8.0})
    assert w.client_cpu == pytest.approx(8.24)
    assert w.rate == pytest.approx(2000.0)
    assert w.us_per_req() == pytest.approx(1030.0)
    assert w.us_per_req("agent") == pytest.approx(20.0)
    assert w.nginx_cpu == pytest.approx(0.8)
    assert w.other_cpu is None  # the samples had no machine-wide figure


def test_other_cpu_is_what_neither_cannonade_nor_nginx_used(cs: ModuleType) -> None:
    w = cs.Window(4.0, 8000, {"hq": 0.1, "agent": 0.1, "cannon": 1.8}, 0.5, machine_cpu=3.5)
    assert w.other_cpu == pytest.approx(1.0)
    assert cs._other_cores(w) == pytest.approx(0.25)
    w = cs.Window(4.0, 8000, {"hq": 0.1, "agent": 0.1, "cannon": 1.8}, 0.5, machine_cpu=2.4)
    assert w.other_cpu == 0.0  # sampling skew never makes it negative


def test_steady_window_needs_enough_time_and_counts(cs: ModuleType) -> None:
    served = [0, 0, 100, 200, 300, 300]
    assert cs.steady_window(_snaps(cs, served, [{}] * 6), {}) is None
    snaps = _snaps(cs, [0, 0, 100, 200], [{}] * 4)
    snaps[1].served = None  # stub_status did not answer
    assert cs.steady_window(snaps, {}) is None


def test_processes_born_inside_the_window_are_not_counted(cs: ModuleType) -> None:
    n = 21
    served = [0, 0] + [1000 * k for k in range(1, 17)] + [16_000] * 3
    cpu = [{3: 0.5 * i, **({9: 1.0 * i} if i > 8 else {})} for i in range(n)]
    w = cs.steady_window(_snaps(cs, served, cpu), {3: "cannon", 9: "cannon"})
    assert w is not None
    assert w.role_cpu["cannon"] == pytest.approx(0.5 * (14 - 6))


def test_cpu_until_sums_per_role(cs: ModuleType) -> None:
    snap = cs.Snap(t=3.0, served=1, polls=1, nginx_cpu=0.0, cpu={1: 0.6, 2: 0.4, 3: 0.5, 4: 0.5})
    roles = {1: "hq", 2: "agent", 3: "cannon", 4: "cannon"}
    assert cs.cpu_until(snap, roles) == {"hq": 0.6, "agent": 0.4, "cannon": 1.0}


# --------------------------------------------------------------------------- arithmetic


def test_efficiencies(cs: ModuleType) -> None:
    assert cs.efficiency_cpu(40.0, 50.0) == pytest.approx(0.8)
    assert cs.efficiency_cpu(None, 50.0) is None
    assert cs.efficiency_cpu(40.0, 0.0) is None
    assert cs.efficiency_throughput(30_000.0, 57_000.0) == pytest.approx(0.95)
    assert cs.efficiency_throughput(0.0, 57_000.0) is None


def test_ceiling_rate(cs: ModuleType) -> None:
    # client 20 µs + target 10 µs of CPU per request on 2 cores: 2e6 / 30 req/s.
    assert cs.ceiling_rate(20.0, 10.0, 2) == pytest.approx(66_666.67)
    assert cs.ceiling_rate(20.0, 10.0, 1.5) == pytest.approx(50_000.0)
    assert cs.ceiling_rate(None, 10.0, 2) is None
    assert cs.ceiling_rate(20.0, None, 2) is None
    assert cs.ceiling_rate(20.0, 10.0, 0.0) is None


def test_median_and_spread_skip_missing_values(cs: ModuleType) -> None:
    assert cs.median([3.0, None, 1.0, 2.0]) == 2.0
    assert cs.median([None]) is None
    assert cs.spread([3.0, None, 1.0]) == (1.0, 3.0)
    assert cs.spread([]) is None


def test_grid_and_schedule_alternate_one_and_two_cannons(cs: ModuleType) -> None:
    assert cs.cpu_grid(10_000) == [(1, 5000), (2, 10_000), (1, 10_000), (2, 20_000)]
    plan = cs.schedule(["cpu", "throughput"], 2, 10_000)
    assert [n for _, n, _, _ in plan] == [1, 2] * 6
    assert plan[:4] == [
        ("cpu", 1, 5000, 0),
        ("cpu", 2, 10_000, 0),
        ("cpu", 1, 10_000, 0),
        ("cpu", 2, 20_000, 0),
    ]
    assert plan[-2:] == [("throughput", 1, 0, 1), ("throughput", 2, 0, 1)]


def _run(cs: ModuleType, cannons: int, rate: int, us: float, rep: int = 0) -> object:
    # A run whose steady window cost ``us`` µs per request, 95% of it in the cannons.
    reqs = 100_000
    cpu = us * reqs / 1e6
    w = cs.Window(
        seconds=10.0,
        requests=reqs,
        role_cpu={"hq": 0.02 * cpu, "agent": 0.03 * cpu, "cannon": 0.95 * cpu},
        nginx_cpu=1.0,
    )
    return cs.RunResult(
        "cpu",
        cannons,
        rep,
        rate,
        exported=reqs,
        logged=reqs,
        tree_cpu=cpu * 1.2,
        first_request=3.5,
        last_request=13.5,
        wall=14.0,
        startup_cpu={"hq": 0.5, "agent": 0.4, "cannon": 0.4 * cannons},
        window=w,
    )


def _result(cs: ModuleType, us: dict[tuple[int, int], list[float]]) -> object:
    configs = [
        cs.Config("cpu", n, r, [_run(cs, n, r, x, i) for i, x in enumerate(values)])
        for (n, r), values in us.items()
    ]
    return cs.Result(configs, None, 10_000, {"cpu": 20, "throughput": 15}, 3)


def test_config_medians_and_comparisons(cs: ModuleType) -> None:
    res = _result(
        cs,
        {
            (1, 5000): [50.0, 52.0, 60.0],
            (2, 10_000): [48.0, 49.0, 47.0],
            (1, 10_000): [40.0, 39.0, 41.0],
            (2, 20_000): [42.0, 44.0, 43.0],
        },
    )
    one = cs.find(res.cpu, 1, 10_000)
    assert one.us() == pytest.approx(40.0)
    assert one.us("cannon") == pytest.approx(38.0)
    assert one.range_us() == pytest.approx((39.0, 41.0))
    assert one.steady_rate == pytest.approx(10_000.0)
    assert one.nginx_us == pytest.approx(10.0)
    assert one.whole_us == pytest.approx(48.0)
    # 40 µs x 100,000 requests over 10 s, 3% of it in the agent: 12 ms per second.
    assert one.role_ms_per_s("agent") == pytest.approx(12.0)
    comps = res.comparisons()
    assert [c.label for c in comps] == [
        "same load per cannon, 10,000 req/s each",
        "same load per cannon, 5,000 req/s each",
        "same total load, 10,000 req/s",
    ]
    assert comps[0].efficiency == pytest.approx(40.0 / 43.0)
    assert comps[1].efficiency == pytest.approx(52.0 / 48.0)
    assert comps[2].efficiency == pytest.approx(40.0 / 48.0)
    assert cs.verdict(res) == ("PASS", "93%")


def test_verdict_misses_below_ninety_percent_and_needs_data(cs: ModuleType) -> None:
    res = _result(cs, {(1, 10_000): [40.0], (2, 20_000): [50.0]})
    assert cs.verdict(res) == ("MISS", "80%")
    assert cs.verdict(_result(cs, {(1, 10_000): [40.0]}))[0] == "n/a"


def test_failed_runs_are_left_out_of_medians(cs: ModuleType) -> None:
    runs = [_run(cs, 1, 10_000, 40.0), _run(cs, 1, 10_000, 1000.0)]
    runs[1].failed = "exit 1: boom"
    c = cs.Config("cpu", 1, 10_000, runs)
    assert c.us() == pytest.approx(40.0)
    assert len(c.ok) == 1


def test_markdown_section_reports_counts_ratio_and_verdict(cs: ModuleType) -> None:
    hc = importlib.import_module("http_cpu")
    res = _result(cs, {(1, 10_000): [40.0, 41.0], (2, 20_000): [42.0, 43.0]})
    machine = hc.Machine(2, "Test CPU", "6.1", "3.11.7", "2026-01-01 00:00 UTC", "abc1234")
    text = cs.render_markdown(res, machine, "python bench/cannon_scaling.py", ["nginx/1.22.1"], [])
    assert "`python bench/cannon_scaling.py`" in text
    assert "100,000 = 100,000<br>100,000 = 100,000" in text
    assert "**PASS** scaling efficiency from 1 to 2 cannons >= 90% (95%)" in text
    assert "(10,000 req/s on 1 cannon vs 20,000 on 2): 40.50 → 42.50 µs = **95%**" in text
    assert "agree on every run (4/4)" in text
    doc = "# Performance\n\nintro\n\n<!-- http_cpu:begin -->\nkept\n<!-- http_cpu:end -->\n"
    out = hc.replace_section(doc, cs.SECTION, text)
    assert "<!-- http_cpu:begin -->\nkept\n<!-- http_cpu:end -->" in out
    assert out.count("<!-- cannon_scaling:begin -->") == 1
    console = cs.render_console(res, 2)
    assert "**" not in console
    assert "<br>" not in console


def test_throughput_summary_ratio_and_machine_ceiling(cs: ModuleType) -> None:
    def run(cannons: int, rate: float, client_us: float, nginx_us: float, other: float):
        reqs = int(rate * 10)
        cpu = client_us * reqs / 1e6
        w = cs.Window(
            10.0,
            reqs,
            {"hq": 0.01 * cpu, "agent": 0.01 * cpu, "cannon": 0.98 * cpu},
            nginx_us * reqs / 1e6,
            machine_cpu=cpu + nginx_us * reqs / 1e6 + other * 10.0,
        )
        return cs.RunResult("throughput", cannons, 0, exported=reqs, logged=reqs, window=w)

    one = cs.Config("throughput", 1, 0, [run(1, 45_000, 20.0, 12.5, 0.0)])
    two = cs.Config("throughput", 2, 0, [run(2, 60_000, 20.0, 10.0, 0.5)])
    assert two.cores("other") == pytest.approx(0.5)
    res = cs.Result([], (one, two), 10_000, {"cpu": 20, "throughput": 15}, 1)
    (line, counts, _start) = cs.summary_lines(res, 2)
    assert "45,000 → 60,000 req/s = 1.33x (67% efficiency)" in line
    # 1.5 free cores / (20 + 10) µs = 50,000 req/s: 1.11x of 45,000, reached at 120%.
    assert "serve at most 50,000 req/s, i.e. 1.11x the 1-cannon rate" in line
    assert "reached 120% of that" in line
    assert "agree on every run (2/2)" in counts
    assert cs.verdict(res) == ("n/a", "the cpu mode gave no steady figures")
