import math
import re
import sqlite3

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from cannonade.model.aggregate import Aggregator
from cannonade.model.histogram import Histogram, SparseBins
from cannonade.model.metrics import (
    CHECKS,
    HTTP_REQ_DURATION,
    HTTP_REQS,
    ITERATION_DURATION,
    VUS,
    ErrorGroup,
    IntervalDelta,
    Key,
    Kind,
    SourceId,
    TrendDelta,
)
from cannonade.storage import Headline, RunStatus, RunWriter, StorageError, Store

T0 = 1_700_000_000

TREND_KEYS = [
    Key(HTTP_REQ_DURATION, "/a", "GET"),
    Key(HTTP_REQ_DURATION, "/b", "POST"),
    Key(ITERATION_DURATION),
    Key("login_time"),  # custom trend
]
COUNTER_KEYS = [
    Key(HTTP_REQS, "/a", "GET"),
    Key(CHECKS, "ok", "", "true"),
    Key("orders"),  # custom counter
]
GAUGE_KEYS = [Key(VUS), Key("queue_depth")]
ERRORS = [("KeyError", "'token'"), ("ValueError", "bad"), ("timeout", "")]
CUSTOM = {"login_time": Kind.TREND, "orders": Kind.COUNTER, "queue_depth": Kind.GAUGE}


def open_run(path, run_id="run-1", **kw):
    store = Store.open(path)
    store.create_run(
        run_id,
        scenario=kw.get("scenario", "s.py"),
        scenario_sha256="0" * 64,
        options=kw.get("options", {"users": 3}),
        thresholds=kw.get("thresholds", ()),
        created=kw.get("created", float(T0)),
    )
    return store


def trend(index, counts, total, lo, hi):
    return TrendDelta(
        int(sum(counts)),
        total,
        lo,
        hi,
        SparseBins(np.array(index, np.int32), np.array(counts, np.int64)),
    )


# -- the round trip ---------------------------------------------------------------------------

# Dyadic values (k/1024) add without rounding, so sums are exact whatever order they are
# added in; the test below with arbitrary floats covers rounding.
dyadic = st.integers(0, 10_000).map(lambda k: k / 1024)


@st.composite
def trend_deltas(draw, values=dyadic):
    n = draw(st.integers(1, 5))
    index = draw(
        st.lists(st.sampled_from([0, 1, 7, 2047, 5000, 23551]), min_size=1, max_size=n, unique=True)
    )
    counts = draw(st.lists(st.integers(1, 1000), min_size=len(index), max_size=len(index)))
    a, b = draw(values), draw(values)
    return trend(index, counts, draw(values), min(a, b), max(a, b))


@st.composite
def deltas(draw, values=dyadic):
    """Deltas of 2-3 cannons, interleaved, some seqs lost, some repeated, seconds out of
    order; and after which of them the writer flushes."""
    sources = draw(
        st.lists(
            st.sampled_from([("a1", 0), ("a1", 1), ("a2", 0)]), min_size=2, max_size=3, unique=True
        )
    )
    out = []
    for agent, cannon in sources:
        n = draw(st.integers(1, 6))
        lost = draw(st.sets(st.integers(0, n - 2), max_size=2)) if n > 1 else set()
        for seq in range(n):
            if seq in lost:
                continue
            d = IntervalDelta(SourceId(agent, cannon), seq, T0 + draw(st.integers(0, 3)))
            for key in draw(st.lists(st.sampled_from(TREND_KEYS), max_size=3, unique=True)):
                d.trends[key] = draw(trend_deltas(values))
            for key in draw(st.lists(st.sampled_from(COUNTER_KEYS), max_size=3, unique=True)):
                d.counters[key] = (
                    float(draw(st.integers(0, 100))) if values is dyadic else draw(values)
                )
            for key in draw(st.lists(st.sampled_from(GAUGE_KEYS), max_size=2, unique=True)):
                d.gauges[key] = (
                    float(draw(st.integers(0, 50))) if values is dyadic else draw(values)
                )
            for kind, message in draw(st.lists(st.sampled_from(ERRORS), max_size=2, unique=True)):
                d.errors.append(ErrorGroup(kind, message, draw(st.integers(1, 5)), f"tb {seq}"))
            d.custom_kinds = {m: k for m, k in CUSTOM.items() if draw(st.booleans())}
            d.final = seq == n - 1
            out.append(d)
            if draw(st.integers(0, 4)) == 0:
                out.append(d)  # a duplicate: ignored by both
    order = draw(st.permutations(range(len(out))))
    flush_after = draw(st.lists(st.booleans(), min_size=len(out), max_size=len(out)))
    return [out[i] for i in order], flush_after


def same_histogram(a: Histogram, b: Histogram, exact=True):
    assert a.count == b.count
    if exact:
        assert a.sum == b.sum
    else:
        assert math.isclose(a.sum, b.sum, rel_tol=1e-12, abs_tol=1e-12)
    assert a.min == b.min
    assert a.max == b.max
    sa, sb = a.sparse(), b.sparse()
    assert np.array_equal(sa.index, sb.index)
    assert np.array_equal(sa.count, sb.count)


def assert_same(live: Aggregator, rebuilt: Aggregator, exact_series=True):
    """Run-wide totals always to the bit; per-second values to the bit when ``exact_series``."""
    assert rebuilt.counters == live.counters
    assert rebuilt.trends.keys() == live.trends.keys()
    for key, h in live.trends.items():
        same_histogram(rebuilt.trends[key], h)
    assert rebuilt.errors == live.errors
    assert rebuilt.kinds == live.kinds
    assert rebuilt.series.keys() == live.series.keys()
    for second, point in live.series.items():
        got = rebuilt.series[second]
        assert got.by_source == point.by_source
        if exact_series:
            assert got.counters == point.counters
            assert got.gauges == point.gauges
        else:
            assert got.counters.keys() == point.counters.keys()
            for key, v in point.counters.items():
                assert math.isclose(got.counters[key], v, rel_tol=1e-12, abs_tol=1e-12)
        assert got.trends.keys() == point.trends.keys()
        for key, h in point.trends.items():
            same_histogram(got.trends[key], h, exact=exact_series)
    assert rebuilt.sources.keys() == live.sources.keys()
    for src, t in live.sources.items():
        got = rebuilt.sources[src]
        assert (got.seen, got.highest, got.duplicates, got.finished) == (
            t.seen,
            t.highest,
            t.duplicates,
            t.finished,
        )
    assert rebuilt.gaps() == live.gaps()
    assert rebuilt.unfinished() == live.unfinished()


def store_and_load(path, stream, flush_after, *, record_sources):
    live = Aggregator()
    with open_run(path) as store:
        w = store.writer("run-1")
        for d, flush in zip(stream, flush_after, strict=True):
            # The HQ hands over accepted deltas only and then its sources; without them,
            # the writer counts duplicates itself.
            if live.add(d) or not record_sources:
                w.add(d)
            if flush:
                w.flush()
        w.flush()
        if record_sources:
            w.record_sources(live.sources)
    with Store.open(path) as store:
        return live, store.load("run-1").aggregator


@settings(max_examples=60, deadline=None)
@given(deltas(), st.booleans())
def test_rebuilt_aggregator_equals_live(tmp_path_factory, data, record_sources):
    stream, flush_after = data
    path = tmp_path_factory.mktemp("db") / "c.db"
    live, rebuilt = store_and_load(path, stream, flush_after, record_sources=record_sources)
    assert_same(live, rebuilt)
    db = sqlite3.connect(path)
    (split,) = db.execute(
        "SELECT count(*) FROM (SELECT 1 FROM trend_series GROUP BY second, key_id"
        " HAVING count(*) > 1)"
    ).fetchone()
    db.close()
    event("a second flushed twice" if split else "each second flushed once")


@settings(max_examples=30, deadline=None)
@given(deltas(values=st.floats(0.0, 1e4, allow_subnormal=False)))
def test_totals_are_exact_with_any_floats(tmp_path_factory, data):
    # Per-second values of a second split over two flushes are summed in another
    # grouping, which may round differently; run-wide totals never do.
    stream, flush_after = data
    path = tmp_path_factory.mktemp("db") / "c.db"
    live, rebuilt = store_and_load(path, stream, flush_after, record_sources=True)
    assert_same(live, rebuilt, exact_series=False)


def test_late_delta_adds_rows_and_gauges_are_replaced(tmp_path):
    path = tmp_path / "c.db"
    key = Key(HTTP_REQ_DURATION, "/a", "GET")
    first = IntervalDelta(SourceId("a1", 0), 0, T0, trends={key: trend([5], [2], 0.5, 0.25, 0.25)})
    first.gauges[Key(VUS)] = 3.0
    first.counters[Key(HTTP_REQS, "/a", "GET")] = 2.0
    other = IntervalDelta(SourceId("a2", 0), 0, T0, gauges={Key(VUS): 4.0})
    late = IntervalDelta(
        SourceId("a1", 0), 1, T0, trends={key: trend([5, 9], [1, 1], 0.5, 0.2, 0.3)}
    )
    late.gauges[Key(VUS)] = 5.0  # the same cannon's level again: replaces its 3
    late.counters[Key(HTTP_REQS, "/a", "GET")] = 2.0
    live = Aggregator()
    with open_run(path) as store:
        w = store.writer("run-1")
        for d in (first, other):
            live.add(d)
            w.add(d)
        w.flush()
        live.add(late)
        w.add(late)
        w.flush()
        w.flush()  # nothing pending: no rows
        run = store.load("run-1")
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM trend_series WHERE second = ?", (T0,)).fetchone() == (
        2,
    )
    assert db.execute("SELECT count(*) FROM gauge_series").fetchone() == (2,)
    db.close()
    assert_same(live, run.aggregator)
    point = run.aggregator.series[T0]
    assert point.gauges == {Key(VUS): 9.0}
    assert point.counters == {Key(HTTP_REQS, "/a", "GET"): 4.0}
    assert point.trends[key].count == 4


def test_a_failed_flush_loses_nothing(tmp_path, monkeypatch):
    live = Aggregator()
    with open_run(tmp_path / "c.db") as store:
        w = store.writer("run-1")
        first = IntervalDelta(SourceId(), 0, T0, counters={Key(HTTP_REQS): 1.0})
        first.trends[Key("t")] = trend([3], [1], 0.5, 0.5, 0.5)
        live.add(first)
        w.add(first)
        write = RunWriter._write

        def fail(self, conn):
            write(self, conn)  # the new keys and every row are in the transaction...
            raise sqlite3.OperationalError("disk I/O error")  # ...which then fails

        monkeypatch.setattr(RunWriter, "_write", fail)
        with pytest.raises(StorageError, match=r"c\.db: disk I/O error"):
            w.flush()
        monkeypatch.undo()
        second = IntervalDelta(SourceId(), 1, T0, counters={Key(HTTP_REQS): 2.0})
        live.add(second)
        w.add(second)
        w.flush()
        assert_same(live, store.load("run-1").aggregator)


def test_errors_keep_the_first_sample_and_add_counts(tmp_path):
    with open_run(tmp_path / "c.db") as store:
        w = store.writer("run-1")
        w.add(IntervalDelta(SourceId(), 0, T0, errors=[ErrorGroup("E", "m", 2, "first")]))
        w.flush()
        w.add(IntervalDelta(SourceId(), 1, T0 + 1, errors=[ErrorGroup("E", "m", 3, "second")]))
        w.flush()
        errors = store.load("run-1").aggregator.errors
    assert errors == {("E", "m"): ErrorGroup("E", "m", 5, "first")}


def test_a_second_writer_continues_the_totals(tmp_path):
    key = Key("t")
    values = [0.1, 0.2, 0.3, 0.7]  # sums that round: order and grouping matter
    live = Aggregator()
    with open_run(tmp_path / "c.db") as store:
        for seq, v in enumerate(values):
            d = IntervalDelta(SourceId(), seq, T0 + seq, trends={key: trend([1], [1], v, v, v)})
            d.counters[Key("n")] = v
            live.add(d)
            w = store.writer("run-1")  # as an HQ restarted between deltas would
            w.add(d)
            w.flush()
        rebuilt = store.load("run-1").aggregator
    assert_same(live, rebuilt)


def test_custom_kinds_rebuild(tmp_path):
    d = IntervalDelta(SourceId(), 0, T0, counters={Key("orders"): 1.0})
    d.custom_kinds = {"orders": Kind.COUNTER, "login_time": Kind.TREND, HTTP_REQS: Kind.GAUGE}
    with open_run(tmp_path / "c.db") as store:
        w = store.writer("run-1")
        w.add(d)
        w.flush()
        kinds = store.load("run-1").aggregator.kinds
    assert kinds["orders"] is Kind.COUNTER
    assert kinds["login_time"] is Kind.TREND
    assert kinds[HTTP_REQS] is Kind.COUNTER  # a built-in's kind cannot be redeclared


def headline_delta(seq, ms):
    d = IntervalDelta(SourceId(), seq, T0 + seq)
    v = ms / 1000
    d.trends[Key(HTTP_REQ_DURATION, "/a", "GET")] = trend([ms * 1000], [10], 10 * v, v, v)
    d.trends[Key(HTTP_REQ_DURATION, "/b", "GET")] = trend([3000], [5], 0.01, 0.003, 0.003)
    d.counters[Key(HTTP_REQS, "/a", "GET")] = 10.0
    d.counters[Key(HTTP_REQS, "/b", "GET")] = 5.0
    return d


def test_headline(tmp_path):
    live = Aggregator()
    with open_run(tmp_path / "c.db") as store:
        w = store.writer("run-1")
        for seq in range(3):
            live.add(headline_delta(seq, 1))
            w.add(headline_delta(seq, 1))
        w.flush()
        head = store.headline("run-1")
        store.create_run(
            "run-2", scenario="", scenario_sha256="", options={}, thresholds=(), created=T0
        )
        empty = store.headline("run-2")
    assert head.requests == 45
    assert head.p95 == live.trend(HTTP_REQ_DURATION).percentile(95)
    assert (empty.requests, empty.p95) == (0, None)


def test_headline_is_kept_once_the_run_is_over_until_more_data(tmp_path):
    path = tmp_path / "c.db"
    live = Aggregator()
    with open_run(path) as store:
        w = store.writer("run-1")
        live.add(headline_delta(0, 1))
        w.add(headline_delta(0, 1))
        w.flush()
        store.set_status("run-1", "finished", at=T0 + 1)
        first = store.headline("run-1")
        assert first == Headline(15, live.trend(HTTP_REQ_DURATION).percentile(95))
        db = sqlite3.connect(path)
        kept = db.execute("SELECT headline_requests, headline_p95 FROM runs").fetchone()
        assert kept == (first.requests, first.p95)
        for seq in (1, 2):  # a late flush after the end
            live.add(headline_delta(seq, 9))
            w.add(headline_delta(seq, 9))
        w.flush()
        assert db.execute("SELECT headline_requests FROM runs").fetchone() == (None,)
        db.close()
        second = store.headline("run-1")
    assert second == Headline(45, live.trend(HTTP_REQ_DURATION).percentile(95))
    assert second.p95 != first.p95


# -- runs, statuses, agents, events -----------------------------------------------------------


def test_run_row_round_trip(tmp_path):
    with open_run(
        tmp_path / "c.db",
        options={"users": 3, "host": "http://x"},
        thresholds=["http_req_duration:p(95)<200"],
    ) as store:
        store.set_status("run-1", "running", at=T0 + 1, started=T0 + 1.5)
        store.set_status("run-1", RunStatus.FINISHED, at=T0 + 9, ended=T0 + 9.5, verdict="passed")
        run = store.load("run-1")
    assert (run.id, run.status, run.scenario, run.verdict) == (
        "run-1",
        "finished",
        "s.py",
        "passed",
    )
    assert run.options == {"users": 3, "host": "http://x"}
    assert run.thresholds == ("http_req_duration:p(95)<200",)
    assert (run.created, run.updated, run.started, run.ended) == (T0, T0 + 9, T0 + 1.5, T0 + 9.5)


def test_status_is_validated(tmp_path):
    with open_run(tmp_path / "c.db") as store:
        with pytest.raises(ValueError, match="unknown run status 'done'"):
            store.set_status("run-1", "done", at=T0)
        with pytest.raises(StorageError, match="no run 'nope'"):
            store.set_status("nope", "running", at=T0)
        with pytest.raises(StorageError, match="already exists"):
            store.create_run(
                "run-1", scenario="", scenario_sha256="", options={}, thresholds=(), created=T0
            )
        with pytest.raises(StorageError, match="no run 'nope'"):
            store.writer("nope")
        with pytest.raises(StorageError, match="no run 'nope'"):
            store.load("nope")


def test_list_runs_newest_first_with_limit_and_status(tmp_path):
    store = Store.open(tmp_path / "c.db")
    for i, status in enumerate(["finished", "failed", "finished", "queued"]):
        store.create_run(
            f"r{i}", scenario="s.py", scenario_sha256="", options={}, thresholds=(), created=T0 + i
        )
        if status != "queued":
            store.set_status(f"r{i}", status, at=T0 + i)
    assert [r.id for r in store.list_runs()] == ["r3", "r2", "r1", "r0"]
    assert [r.id for r in store.list_runs(limit=2)] == ["r3", "r2"]
    assert [r.id for r in store.list_runs(status="finished")] == ["r2", "r0"]
    with pytest.raises(ValueError, match="unknown run status"):
        store.list_runs(status="nope")
    store.close()


def test_resolve_prefix(tmp_path):
    store = Store.open(tmp_path / "c.db")
    for run_id in ("abc123", "abd456", "ab"):
        store.create_run(
            run_id, scenario="", scenario_sha256="", options={}, thresholds=(), created=T0
        )
    assert store.resolve("abc") == "abc123"
    assert store.resolve("ab") == "ab"  # an exact id wins over being a prefix
    with pytest.raises(StorageError, match="ambiguous: ab, abc123, abd456"):
        store.resolve("a")
    with pytest.raises(StorageError, match="no run 'x'"):
        store.resolve("x")
    with pytest.raises(StorageError, match="no run ''"):
        store.resolve("")
    store.close()


def test_agent_timeline_records_changes_only(tmp_path):
    with open_run(tmp_path / "c.db") as store:
        info = {"hostname": "h1", "cannons": 4}
        store.record_agent(None, "ag-1", name="one", status="idle", at=T0, info=info)
        for i in range(5):  # heartbeats
            store.record_agent(
                "run-1", "ag-1", name="one", status="ready", at=T0 + 1 + i, info=info
            )
        store.record_agent("run-1", "ag-1", name="one", status="running", at=T0 + 10, info=info)
        store.record_agent("run-1", "ag-1", name="one", status="running", at=T0 + 11, info=info)
        store.record_agent("run-1", "ag-2", name="two", status="lost", at=T0 + 12, info={})
        run = store.load("run-1")
    one, two = run.agents
    assert (one.id, one.name, one.hostname, one.cannons) == ("ag-1", "one", "h1", 4)
    assert one.info == info
    assert (one.first_seen, one.last_seen) == (T0, T0 + 11)
    assert one.timeline == ((T0 + 1, "ready"), (T0 + 10, "running"))
    assert two.timeline == ((T0 + 12, "lost"),)
    assert (two.hostname, two.cannons) == ("", 0)
    db = sqlite3.connect(tmp_path / "c.db")
    assert db.execute("SELECT count(*) FROM agent_status").fetchone() == (4,)
    db.close()


def test_events(tmp_path):
    with open_run(tmp_path / "c.db") as store:
        store.event("run-1", T0 + 2, "phase", "running")
        store.event("run-1", T0 + 1, "phase", "waiting")
        store.event(None, T0, "hq", "started")
        events = store.load("run-1").events
    assert [(e.at, e.kind, e.message) for e in events] == [
        (T0 + 1, "phase", "waiting"),
        (T0 + 2, "phase", "running"),
    ]


def test_interrupt_unfinished(tmp_path):
    path = tmp_path / "c.db"
    store = Store.open(path)
    for status in ("queued", "waiting", "running", "stopping", "finished"):
        store.create_run(
            status, scenario="", scenario_sha256="", options={}, thresholds=(), created=T0
        )
        if status != "queued":
            store.set_status(status, status, at=T0, started=T0 + 0.5)
    w = store.writer("running")
    for seq in range(3):
        w.add(IntervalDelta(SourceId(), seq, T0 + seq, counters={Key(HTTP_REQS): 1.0}))
    w.flush()
    store.close()  # the HQ dies

    with Store.open(path) as store:
        assert store.interrupt_unfinished(T0 + 3600) == ["running", "stopping", "waiting"]
        assert store.interrupt_unfinished(T0 + 3601) == []
        statuses = {r.id: r.status for r in store.list_runs()}
        running = store.load("running")
        waiting = store.load("waiting")
    assert statuses == {
        "queued": "queued",
        "waiting": "interrupted",
        "running": "interrupted",
        "stopping": "interrupted",
        "finished": "finished",
    }
    assert running.aggregator.counters == {Key(HTTP_REQS): 3.0}  # the data stays
    assert running.ended == T0 + 3  # after its last stored second, not when noticed
    assert waiting.ended == T0 + 0.5  # no data: its start
    assert running.aggregator.unfinished() == [("local", 0)]
    assert [(e.kind, e.message) for e in running.events] == [
        ("interrupted", "the HQ stopped while the run was running")
    ]


# -- the file ---------------------------------------------------------------------------------


def test_wal_and_schema_version(tmp_path):
    path = tmp_path / "c.db"
    Store.open(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
    db.close()
    Store.open(path).close()  # reopening an existing file


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "c.db"
    Store.open(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match=r"c\.db: schema version 3 .* newer cannonade"):
        Store.open(path)


def test_a_version_1_file_gains_the_queue_in_place(tmp_path):
    path = tmp_path / "c.db"
    with Store.open(path) as store:
        store.create_run(
            "r1", scenario="s.py", scenario_sha256="", options={}, thresholds=(), created=1.0
        )
    db = sqlite3.connect(path)
    db.execute("DROP TABLE queue")
    db.execute("DROP TABLE bundles")
    db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with Store.open(path) as store:
        assert [r.id for r in store.list_runs()] == ["r1"]
        store.put_bundle("b1", filename="s.py", kind="python", data=b"x", created=2.0)
        assert store.bundle("b1").data == b"x"
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("2",)
    db.close()


def test_not_sqlite_names_the_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_bytes(b"this is not a database, it is a text file\n" * 100)
    with pytest.raises(StorageError, match=f"{re.escape(str(path))}: not an SQLite database"):
        Store.open(path)


def test_another_programs_sqlite_is_refused(tmp_path):
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE things (x)")
    db.commit()
    db.close()
    with pytest.raises(StorageError, match="not cannonade's"):
        Store.open(path)


def test_missing_directory_or_a_directory(tmp_path):
    with pytest.raises(StorageError, match="does not exist"):
        Store.open(tmp_path / "nope" / "c.db")
    with pytest.raises(StorageError, match="is a directory"):
        Store.open(tmp_path)
    with pytest.raises(StorageError, match="no database at"):
        Store.open(tmp_path / "c.db", create=False)
    assert not (tmp_path / "c.db").exists()


def test_unwritable_directory(tmp_path):
    import os
    from pathlib import Path

    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    # root writes anywhere but into /proc
    path = Path("/proc/cannonade.db") if os.geteuid() == 0 else ro / "c.db"
    if not path.parent.is_dir():
        pytest.skip("no directory this user cannot write")
    try:
        with pytest.raises(
            StorageError, match=f"database {re.escape(str(path))}: .*is its directory writable"
        ):
            Store.open(path)
    finally:
        ro.chmod(0o700)
