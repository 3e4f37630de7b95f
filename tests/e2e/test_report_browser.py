"""The HTML report in a real browser: headless Chromium opens the report a real
`cannonade run` wrote, with every network request blocked, and finds the headings,
charts with data points, and the per-request numbers of the stored run; a one-hour
run's report loads too, its charts downsampled."""

import importlib.util
import math
import re
import shutil
import time
from pathlib import Path

import pytest
from conftest import cannonade_run

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"

SCENARIO = """
from cannonade import scenario

@scenario
async def pages(vu):
    async with vu.timer("both_pages"):
        await vu.http.get("/")
        r = await vu.http.get("/json")
    vu.check(r.status == 200, "json is 200")
"""

SECTIONS = [
    "Thresholds", "Totals", "Over time", "Requests", "Tests", "Sockets", "Timers",
    "Metrics", "Workload", "Errors and events", "Options",
]  # fmt: skip

# Every chart line's drawn points (the SVG's own parse of `points`) and data points.
CHART_POINTS = """() => [...document.querySelectorAll('figure.chart-box')].map(f => ({
    id: f.id,
    lines: [...f.querySelectorAll('polyline')].map(p => ({
        series: p.dataset.series,
        drawn: p.points.numberOfItems,
        data: p.dataset.points.trim().split(/\\s+/).length,
    })),
}))"""

REQUEST_ROWS = """() => {
    const t = document.querySelector('table.requests');
    const heads = [...t.tHead.rows[0].cells].map(c => c.textContent);
    return [...t.tBodies[0].rows].map(r => Object.fromEntries(
        [...r.cells].map((c, i) => [heads[i], c.dataset.value ?? c.textContent])));
}"""


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def open_offline(browser, path):
    """The page at ``path`` with every request but the file's own aborted; returns the
    page and the URLs it tried to fetch besides (there must be none)."""
    url = path.resolve().as_uri()
    attempted = []

    def route(r):
        if r.request.url == url:
            r.continue_()
        else:
            attempted.append(r.request.url)
            r.abort()

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.route("**/*", route)
    requests = []
    page.on("request", lambda req: requests.append(req.url))
    t = time.perf_counter()
    page.goto(url, wait_until="load")
    took = time.perf_counter() - t
    return page, attempted + [u for u in requests if u != url], took


def check_charts(page, max_points=600):
    charts = page.evaluate(CHART_POINTS)
    assert charts, "no chart"
    for chart in charts:
        assert chart["lines"], chart["id"]
        for line in chart["lines"]:
            assert 1 <= line["drawn"] <= max_points, (chart["id"], line)
            assert line["drawn"] == line["data"], (chart["id"], line)
    return charts


def test_a_real_runs_report_renders_offline_with_the_stored_numbers(tmp_path, browser, target):
    scenario = tmp_path / "pages.py"
    scenario.write_text(SCENARIO)
    r, export = cannonade_run(tmp_path, str(scenario), "--host", target.url, "-u", "2", "-d", "3s")
    assert r.returncode == 0, r.stderr
    run_id = re.search(r"^run (\S+) stored in ", r.stderr, re.M).group(1)
    path = tmp_path / f"runs-{run_id}.html"
    assert path.exists(), r.stderr

    page, attempted, _ = open_offline(browser, path)
    try:
        assert attempted == []
        assert page.title() == f"cannonade run {run_id}"
        assert page.locator("h1").inner_text().startswith(f"run {run_id}")
        assert page.locator("section > h2").all_inner_texts() == SECTIONS
        charts = check_charts(page)
        ids = [c["id"] for c in charts]
        assert ids[:4] == ["chart-requests", "chart-latency", "chart-vus", "chart-data"]

        rows = page.evaluate(REQUEST_ROWS)
        stored = {row["name"]: row for row in export["cannonade"]["requests_by_name"]}
        assert {row["name"] for row in rows} == set(stored) == {"/", "/json"}
        stats = target.stats()
        for row in rows:
            want = stored[row["name"]]
            assert row["method"] == want["method"] == "GET"
            assert int(row["count"]) == want["count"] == stats["paths"][row["name"]] > 0
            assert int(row["fail"]) == want["failures"] == 0
            # every duration column, its data-value in ms as the export has it
            for col in ("rps", "avg", "min", "p50", "p90", "p95", "p99", "max"):
                key = f"p({col[1:]})" if col[0] == "p" and col[1:].isdigit() else col
                assert math.isclose(float(row[col]), want[key], rel_tol=1e-12), col
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    finally:
        page.close()
    assert (ARTIFACTS / "report.png").stat().st_size > 0


def _bench():
    spec = importlib.util.spec_from_file_location("report_size", REPO / "bench/report_size.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_one_hour_runs_report_loads(tmp_path, browser):
    bench = _bench()
    db = tmp_path / "runs.db"
    # The bench's run, lighter per second (a cannon per agent, two names) so it is
    # stored quickly; its length, what downsampling is about, is the full hour.
    run_id = bench.build_run(db, 3600, agents=(("agent-a", 1), ("agent-b", 1)), names=2)
    html, _, _ = bench.measure(db, run_id)
    assert len(html.encode()) < bench.MAX_BYTES
    path = tmp_path / "hour.html"
    path.write_text(html)

    page, attempted, took = open_offline(browser, path)
    try:
        assert attempted == []
        assert page.locator("section > h2").all_inner_texts() == SECTIONS
        charts = check_charts(page)
        # A point per 6-second window: an hour in 600 points.
        requests = next(c for c in charts if c["id"] == "chart-requests")
        assert [line["drawn"] for line in requests["lines"]] == [600, 600]
        assert {"chart-dropped", "chart-sockets"} <= {c["id"] for c in charts}
        print(f"one-hour report: {len(html.encode()):,} bytes, loaded in {took:.2f} s")
    finally:
        page.close()
    ARTIFACTS.mkdir(exist_ok=True)  # a copy to look at by hand, beside the screenshot
    shutil.copyfile(path, ARTIFACTS / "report-hour.html")
