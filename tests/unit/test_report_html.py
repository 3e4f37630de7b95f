"""The HTML report of a stored run: self-contained, escaped, and the same numbers as
`cannonade show`, with charts downsampled but tables exact."""

import argparse
import dataclasses
import math
import os
from html.parser import HTMLParser

import pytest

from cannonade.cli.history import add_history_parsers, history_command
from cannonade.cli.main import main
from cannonade.cli.report import default_report_path, write_run_report
from cannonade.model.aggregate import Aggregator
from cannonade.model.metrics import (
    CHECKS,
    DROPPED_ITERATIONS,
    ITERATIONS,
    SOCKET_DATA,
    SOCKET_MESSAGES,
    SOCKETS_CLOSED,
    SOCKETS_OPENED,
    TESTS_ERRORED,
    TESTS_FAILED,
    TESTS_PASSED,
    TESTS_STARTED,
    TRANSACTION_DURATION,
    TRANSACTION_ERRORS,
    TRANSACTIONS,
    VUS,
    WS_CONNECTING,
    WS_DATA_RECEIVED,
    WS_DATA_SENT,
    WS_MSGS_RECEIVED,
    WS_MSGS_SENT,
    WS_SESSIONS,
    Key,
    Kind,
    SourceId,
)
from cannonade.model.recorder import Recorder
from cannonade.report.html import outcome, render_html, render_stored_report
from cannonade.report.html_charts import MAX_POINTS
from cannonade.report.stored import stored_summary
from cannonade.storage import Store

T0 = 1_700_000_000
NASTY = "<script>alert('x')</script>"


class Page(HTMLParser):
    """Every tag with its attributes, and every table by class as rows of cells
    (text, data-value)."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags = []
        self.tables = {}
        self._rows = None
        self._cell = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "table":
            self._rows = self.tables.setdefault(a.get("class", ""), [])
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows is not None:
            self._cell = ["", a.get("data-value")]
            self._rows[-1].append(self._cell)

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._cell = None
        elif tag == "table":
            self._rows = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data

    def rows(self, cls):
        """A table's body rows as lists of cell texts (the header row dropped)."""
        return [[text.strip() for text, _ in row] for row in self.tables[cls][1:]]

    def values(self, cls, column):
        head = [text for text, _ in self.tables[cls][0]]
        i = head.index(column)
        return [row[i][1] for row in self.tables[cls][1:]]

    def polylines(self):
        return [a for tag, a in self.tags if tag == "polyline"]


def record_second(rec, s, name="/login"):
    login = rec.request_slot(name, "POST")
    login.duration.extend([0.020] * 9 + [0.200])
    login.status.extend([200] * 9 + [500])
    login.received += 1000
    login.sent += 100
    home = rec.request_slot("/home", "GET")
    home.duration.extend([0.001 * (1 + s % 3)] * 5)
    home.status.extend([200] * 5)
    rec.add(Key(ITERATIONS), 5)
    rec.rate(CHECKS, "status is 200", s % 2 == 0)
    rec.gauge(Key(VUS), 3 + s % 4)


def store_run(store, run_id="abc123", *, seconds=3, name="/login", scenario="login.py", extra=None):
    """A run stored as the HQ stores one: two cannons, a delta per cannon and second."""
    store.create_run(
        run_id,
        scenario=scenario,
        scenario_sha256="0" * 64,
        options={"users": 3, "host": "http://127.0.0.1:9", "stages": [[30, 100]]},
        thresholds=("http_req_duration:p(95)<250", "http_req_duration{name:/home}:max<1"),
        created=T0,
    )
    live = Aggregator()
    w = store.writer(run_id)
    recorders = [Recorder(SourceId("agent-1", c)) for c in range(2)]
    for s in range(seconds):
        for rec in recorders:
            record_second(rec, s, name)
            if extra is not None:
                extra(rec, s)
            d = rec.flush(T0 + s, final=s == seconds - 1)
            live.add(d)
            w.add(d)
        if s % 50 == 0:
            w.flush()
    w.flush()
    w.record_sources(live.sources)
    store.set_status(run_id, "finished", at=T0 + seconds, started=T0, ended=T0 + seconds)
    return live


def report(store, run_id="abc123"):
    stored = store.load(run_id)
    summary = stored_summary(stored)
    return render_html(stored, summary), summary


@pytest.fixture
def db(tmp_path):
    return tmp_path / "runs.db"


def test_the_page_fetches_nothing(db):
    with Store.open(db) as store:
        store_run(store)
        text, _ = report(store)
    page = Page(text)
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "link", "img", "iframe", "object", "embed", "base"}
    for _, attrs in page.tags:
        for name, value in attrs.items():
            if name in ("src", "href", "action", "xlink:href", "poster", "srcset"):
                assert not (value or "").lower().startswith(("http:", "https:", "//")), value
    assert "url(" not in text
    assert "@import" not in text
    csp = [a["content"] for t, a in page.tags if a.get("http-equiv") == "Content-Security-Policy"]
    assert len(csp) == 1
    assert csp[0].startswith("default-src 'none'")


def test_charts_hold_their_data_points(db):
    with Store.open(db) as store:
        store_run(store)
        text, _ = report(store)
    page = Page(text)
    ids = [a["id"] for tag, a in page.tags if tag == "figure"]
    assert ids == ["chart-requests", "chart-latency", "chart-vus", "chart-data"]
    lines = page.polylines()
    assert len(lines) == 2 + 4 + 1 + 2
    for line in lines:
        drawn = line["points"].split()
        data = line["data-points"].split()
        assert len(drawn) >= 1
        assert len(drawn) == len(data)
    by_series = {line["data-series"]: line["data-points"].split() for line in lines}
    # 2 cannons x 15 requests a second, 2 of them failed; VUs summed over the cannons
    assert by_series["requests/s"] == ["0,30", "1,30", "2,30"]
    assert by_series["errors/s"] == ["0,2", "1,2", "2,2"]
    assert by_series["vus"] == ["0,6", "1,8", "2,10"]
    assert by_series["received/s"] == ["0,2000", "1,2000", "2,2000"]
    texts = [t for t in text.split("axis-label") if "time since start" in t]
    assert len(texts) == 4  # every chart labels its axes


def test_request_names_and_every_run_string_are_escaped(db):
    def extra(rec, s):
        rec.error("ValueError", "<b>boom</b>", 'Traceback\n  File "<x>", line 1, in <module>')

    with Store.open(db) as store:
        store_run(store, name=NASTY, scenario='"><img src=x onerror=alert(1)>', extra=extra)
        store.event("abc123", T0 + 1.0, "rejected", "bad frame: <svg onload=alert(1)>")
        text, _ = report(store)
    page = Page(text)
    assert NASTY not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in text
    assert "<b>boom" not in text
    assert "&lt;b&gt;boom&lt;/b&gt;" in text
    tags = [tag for tag, _ in page.tags]
    assert "script" not in tags
    assert "img" not in tags
    assert tags.count("svg") == 4  # only the charts'
    assert not any(k.startswith("on") for _, a in page.tags for k in a)
    assert [row[0] for row in page.rows("requests")] == ["/home", NASTY]
    assert page.rows("errors")[0][1:3] == ["ValueError", "<b>boom</b>"]
    assert page.rows("events")[0][1:] == ["rejected", "bad frame: <svg onload=alert(1)>"]


def show(capsys, db, run_id):
    p = argparse.ArgumentParser()
    add_history_parsers(p.add_subparsers(dest="command"))
    history_command(p.parse_args(["show", run_id, "--db", str(db)]))
    return capsys.readouterr().out


def test_numbers_are_those_cannonade_show_prints(capsys, db):
    with Store.open(db) as store:
        store_run(store)
        text, summary = report(store)
    page = Page(text)
    printed = show(capsys, db, "abc123")
    rows = page.rows("requests")
    assert [int(v) for v in page.values("requests", "count")] == [r.count for r in summary.requests]
    assert [r[2] for r in rows] == ["30", "60"]  # 2 cannons x 3 s x 5 (/home) or 10 (/login)
    for row in rows:
        # the same cells, in the same order, on one line of the REQUESTS section
        line = next(x for x in printed.splitlines() if x.split()[:1] == [row[0]])
        assert line.split() == row
    marks = page.rows("thresholds")
    assert [(m[0], m[1], m[2]) for m in marks] == [
        ("✓", "http_req_duration", "p(95)<250"),
        ("✗", "http_req_duration{name:/home}", "max<1"),
    ]
    for m in marks:
        assert f"'{m[2]}' {m[3]}" in printed
    trends = {r[0]: r for r in page.rows("trends")}
    p95 = trends["http_req_duration"][6]
    assert f"p(95)={p95}" in printed


def test_downsampling_leaves_the_tables_exact(db):
    seconds = 1500
    with Store.open(db) as store:
        live = store_run(store, seconds=seconds)
        text, summary = report(store)
    page = Page(text)
    for line in page.polylines():
        assert 1 <= len(line["points"].split()) <= MAX_POINTS
    counts = [int(v) for v in page.values("requests", "count")]
    assert counts == [30 * seconds // 3, 60 * seconds // 3]  # /home, /login
    assert sum(counts) == summary.totals.requests == live.count("http_reqs")
    # Each point of a downsampled counter is its window's average, so the area is exact.
    reqs = next(p for p in page.polylines() if p["data-series"] == "requests/s")
    xs = [float(p.split(",")[0]) for p in reqs["data-points"].split()]
    ys = [float(p.split(",")[1]) for p in reqs["data-points"].split()]
    widths = [b - a for a, b in zip(xs, [*xs[1:], float(seconds)], strict=True)]
    assert math.isclose(sum(w * y for w, y in zip(widths, ys, strict=True)), sum(counts))
    # The VU chart shows each window's peak: 3 + s % 4 on each of two cannons.
    vus = next(p for p in page.polylines() if p["data-series"] == "vus")
    step = math.ceil(seconds / MAX_POINTS)
    peaks = [max(2 * (3 + s % 4) for s in range(a, a + step)) for a in range(0, seconds, step)]
    assert [float(p.split(",")[1]) for p in vus["data-points"].split()] == peaks


def test_other_metrics_agents_events_and_options(db):
    def extra(rec, s):
        for key in (Key(TESTS_STARTED, "test_home"), Key(TESTS_PASSED, "test_home")):
            rec.add(key)
        rec.add(Key(TESTS_STARTED, "test_cart"))
        rec.add(Key(TESTS_FAILED, "test_cart"))
        rec.add(Key(SOCKETS_OPENED), 2)
        rec.samples(Key(TRANSACTION_DURATION)).values.append(0.5)
        rec.define("checkout_timer", Kind.TREND)
        rec.samples(Key("checkout_timer")).values.append(0.25)

    with Store.open(db) as store:
        store_run(store, extra=extra)
        for at, status in ((T0 - 1.0, "assigned"), (T0 + 0.0, "running"), (T0 + 1.5, "missing")):
            store.record_agent(
                "abc123", "uuid-1", name="edge-1", status=status, at=at, info={"cannons": 2}
            )
        store.event("abc123", T0 + 1.5, "agent_missing", "agent edge-1 (uuid-1) missing")
        text, _ = report(store)
    page = Page(text)
    assert page.rows("tests") == [
        ["test_cart", "6", "0", "6", "0"],
        ["test_home", "6", "6", "0", "0"],
        ["all tests", "12", "6", "6", "0"],
    ]
    trends = [row[0] for row in page.rows("trends")]
    assert {"transaction_duration", "checkout_timer", "http_req_duration"} <= set(trends)
    counters = {row[0]: row[1] for row in page.rows("counters")}
    assert counters["sockets_opened"] == "12"
    assert counters["data_received"] == "6.0 kB"
    assert page.rows("checks") == [["✗", "status is 200", "4", "2"]]
    (agent,) = page.rows("agents")
    assert agent[:8] == ["edge-1", "uuid-1", "-", "2", "-", "-", "missing", "+1.5s"]
    assert agent[-1] == "-1.0s assigned+0.0s running+1.5s missing"
    assert ["agent_missing", "agent edge-1 (uuid-1) missing"] in [
        r[1:] for r in page.rows("events")
    ]
    options = dict(page.rows("options"))
    assert options == {"host": "http://127.0.0.1:9", "stages": "[[30, 100]]", "users": "3"}
    assert 'class="badge failed"' in text  # a threshold failed


def section(text, key):
    """The markup of one ``<section id=key>``."""
    start = text.index(f'<section id="{key}">')
    return text[start : text.index("</section>", start)]


def test_sections_in_order_and_empty_ones_say_so(db):
    with Store.open(db) as store:
        store_run(store)
        text, _ = report(store)
    ids = [a["id"] for tag, a in Page(text).tags if tag == "section"]
    assert ids == [
        "thresholds", "totals", "charts", "requests", "tests", "sockets", "timers",
        "metrics", "agents", "errors", "options",
    ]  # fmt: skip
    assert "No tests were reported" in section(text, "tests")
    assert "No sockets or WebSocket sessions were used." in section(text, "sockets")
    assert "No custom timers or transactions were recorded." in section(text, "timers")
    assert "No agent took part." in section(text, "agents")
    # A run that kept up with its arrival rate draws no dropped-iterations chart.
    assert 'id="chart-dropped"' not in text


def test_dropped_iterations_are_charted(db):
    def extra(rec, s):
        rec.add(Key(DROPPED_ITERATIONS), s)  # 0, 1, 2 per cannon

    with Store.open(db) as store:
        store_run(store, extra=extra)
        text, summary = report(store)
    assert summary.dropped_iterations == 2 * (0 + 1 + 2)
    by_series = {p["data-series"]: p["data-points"] for p in Page(text).polylines()}
    assert by_series["dropped/s"] == "0,0 1,2 2,4"
    assert 'id="chart-dropped"' in section(text, "charts")


def test_tests_section_shows_the_top_tracebacks(db):
    def extra(rec, s):
        rec.add(Key(TESTS_STARTED, "test_pay"))
        rec.add(Key(TESTS_ERRORED, "test_pay"))
        tb = 'Traceback (most recent call last):\n  File "t.py", line 9, in test_pay\nKeyError'
        rec.error("KeyError", "'card' <missing>", tb)
        for _ in range(3):
            rec.error("AssertionError", "total is 0", "Traceback ...\nAssertionError: total")

    with Store.open(db) as store:
        store_run(store, extra=extra)
        text, _ = report(store)
    tests = section(text, "tests")
    assert Page(text).rows("tests") == [
        ["test_pay", "6", "0", "0", "6"],
        ["all tests", "6", "0", "0", "6"],
    ]
    assert tests.count('class="traceback"') == 2
    # Most frequent first, every string escaped.
    assert tests.index("AssertionError: total is 0") < tests.index("KeyError: &#x27;card&#x27;")
    assert "&lt;missing&gt;" in tests
    assert "line 9, in test_pay" in tests


def test_sockets_section_has_loads_sockets_and_websocket_sessions(db):
    def extra(rec, s):
        rec.add(Key(SOCKETS_OPENED), 2)
        rec.add(Key(SOCKETS_CLOSED), 1)
        rec.add(Key(SOCKET_MESSAGES), 10)
        rec.add(Key(SOCKET_DATA), 500)
        rec.add(Key(WS_SESSIONS, "chat"))
        rec.add(Key(WS_MSGS_SENT, "chat"), 4)
        rec.add(Key(WS_MSGS_RECEIVED, "chat"), 5)
        rec.add(Key(WS_DATA_SENT, "chat"), 40)
        rec.add(Key(WS_DATA_RECEIVED, "chat"), 1000)
        rec.samples(Key(WS_CONNECTING, "chat")).values.append(0.003)

    with Store.open(db) as store:
        store_run(store, extra=extra)
        text, _ = report(store)
    page = Page(text)
    totals = {row[0]: row[1] for row in page.rows("sockets")}
    assert totals == {
        "sockets_opened": "12", "sockets_closed": "6", "socket_messages": "60",
        "socket_data": "3.0 kB", "ws_sessions": "6", "ws_msgs_sent": "24",
        "ws_msgs_received": "30", "ws_data_sent": "240 B", "ws_data_received": "6.0 kB",
    }  # fmt: skip
    assert page.rows("ws") == [["chat", "6", "24", "30", "240 B", "6.0 kB"]]
    assert [row[:2] for row in page.rows("ws-trends")] == [["ws_connecting", "6"]]
    sockets = section(text, "sockets")
    assert 'id="chart-sockets"' in sockets
    by_series = {p["data-series"]: p["data-points"] for p in Page(sockets).polylines()}
    assert by_series["sockets_opened/s"] == "0,4 1,4 2,4"
    assert by_series["ws_msgs_received/s"] == "0,10 1,10 2,10"


def test_a_table_per_timer_and_a_chart_when_the_series_was_read(db):
    def extra(rec, s):
        rec.add(Key(TRANSACTIONS), 2)
        rec.add(Key(TRANSACTION_ERRORS), 1)
        rec.samples(Key(TRANSACTION_DURATION)).values.extend([0.5, 0.5])
        rec.define("login_timer", Kind.TREND)
        rec.samples(Key("login_timer")).values.append(0.010 * (s + 1))

    with Store.open(db) as store:
        store_run(store, extra=extra)
        plain, _ = report(store)
        full = render_stored_report(store, "abc123")
    for text in (plain, full):
        timers = section(text, "timers")
        page = Page(timers)
        assert {r[0]: r[1] for r in page.rows("transactions")} == {
            "transactions": "12", "transaction_errors": "6",
        }  # fmt: skip
        heads = [a for tag, a in page.tags if tag == "h3"]
        assert len(heads) == 2
        assert "<h3>transaction_duration</h3>" in timers
        assert "<h3>login_timer</h3>" in timers
        # one table each, in one list here: the second one's header row is in it
        counts = [row[0] for row in page.rows("timer")]
        assert counts == ["12", "count", "6"]
    # Read as `cannonade show` reads a run, no timer has per-second data: no chart.
    assert Page(section(plain, "timers")).polylines() == []
    # Read as the report reads it, each timer has one, its percentiles in ms.
    lines = Page(section(full, "timers")).polylines()
    assert len(lines) == 2 * 3
    login = [p for p in lines if p["data-series"] == "p50"][1]["data-points"].split()
    assert [float(p.split(",")[0]) for p in login] == [0, 1, 2]
    for (_, v), want in zip((p.split(",") for p in login), (10, 20, 30), strict=True):
        assert math.isclose(float(v), want, rel_tol=0.02)


def test_workload_has_script_rampup_and_marks_losses_and_aborts(db):
    with Store.open(db) as store:
        store_run(store)
        info = {"cannons": 4, "script": "shop.py", "rampup": "30", "hostname": "h1"}
        for at, status in ((T0, "Running"), (T0 + 2.0, "Aborted")):
            store.record_agent("abc123", "t-1", name="turret-a", status=status, at=at, info=info)
        for at, status in ((T0, "running"), (T0 + 1.0, "missing"), (T0 + 2.5, "running")):
            store.record_agent(
                "abc123", "t-2", name="turret-b", status=status, at=at, info={"cannons": 1}
            )
        text, _ = report(store)
    page = Page(text)
    rows = {r[0]: r for r in page.rows("agents")}
    assert rows["turret-a"][:7] == ["turret-a", "t-1", "h1", "4", "shop.py", "30", "Aborted"]
    assert rows["turret-b"][4:9] == ["-", "-", "running", "-", "1"]  # back: not lost now
    bad = [a for tag, a in page.tags if tag == "li" and a.get("class") == "bad"]
    assert len(bad) == 2  # turret-a's Aborted, turret-b's missing
    assert '<li class="bad" title="2023-11-14 22:13:22 UTC">+2.0s Aborted</li>' in text


def test_a_run_without_data_still_renders(db):
    with Store.open(db) as store:
        store.create_run(
            "empty", scenario="", scenario_sha256="", options={}, thresholds=(), created=T0
        )
        store.set_status("empty", "failed", at=T0, started=T0, ended=T0)
        text, _ = report(store, "empty")
    page = Page(text)
    assert page.polylines() == []
    assert "No per-second data was stored for this run." in text
    assert "No requests were recorded." in text
    assert 'class="badge failed"' in text


@pytest.mark.parametrize(
    ("status", "word"),
    [("finished", "passed"), ("degraded", "degraded"), ("interrupted", "interrupted"),
     ("failed", "failed"), ("running", "running")],
)  # fmt: skip
def test_outcome_badge(db, status, word):
    with Store.open(db) as store:
        store_run(store, "r1")
        store.set_status("r1", status, at=T0 + 4)
        stored = store.load("r1")
    summary = stored_summary(stored)
    # The stored thresholds include a failing one; judge the status alone here.
    summary = dataclasses.replace(summary, thresholds=())
    assert outcome(stored.status, summary) == word


def test_report_command_resolves_a_prefix(capsys, db, tmp_path):
    with Store.open(db) as store:
        store_run(store, "abc123")
        store_run(store, "abd456")
        expected, _ = report(store, "abc123")
    out = tmp_path / "r.html"
    assert main(["report", "abc", "-o", str(out), "--db", str(db)]) == 0
    assert capsys.readouterr().err == f"report: {out}\n"
    strip = lambda t: t.rsplit("<footer>", 1)[0]  # noqa: E731 - the footer has the time
    assert strip(out.read_text()) == strip(expected)
    assert oct(os.stat(out).st_mode & 0o777) == "0o644"
    assert main(["report", "ab", "-o", str(out), "--db", str(db)]) == 1
    assert capsys.readouterr().err == "error: run id 'ab' is ambiguous: abc123, abd456\n"
    assert main(["report", "abc", "-o", str(tmp_path / "no" / "r.html"), "--db", str(db)]) == 1
    assert "error: " in capsys.readouterr().err
    assert main(["report", "abc", "-o", str(out), "--db", str(tmp_path / "none.db")]) == 1
    assert capsys.readouterr().err == f"error: no database at {tmp_path / 'none.db'}\n"


def test_the_report_after_a_run_goes_beside_the_database(capsys, db):
    assert default_report_path(db, "abc123") == db.parent / "runs-abc123.html"
    with Store.open(db) as store:
        store_run(store, "abc123")
    path = write_run_report(str(db), "abc123", None)
    assert path == db.parent / "runs-abc123.html"
    assert path.read_text().startswith("<!DOCTYPE html>")
    assert capsys.readouterr().err == f"report: {path}\n"
    assert write_run_report(str(db), "nope", None) is None
    assert capsys.readouterr().err == f"error: report: no run 'nope' in {db}\n"
