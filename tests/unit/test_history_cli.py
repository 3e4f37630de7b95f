import argparse
import json

import pytest

from cannonade.cli.history import add_history_parsers, history_command
from cannonade.model.aggregate import Aggregator
from cannonade.model.metrics import CHECKS, VUS, Key, SourceId
from cannonade.model.recorder import Recorder
from cannonade.model.summary import RunInfo, compute_summary
from cannonade.model.thresholds import parse_threshold
from cannonade.report.text import render_summary
from cannonade.storage import Store

T0 = 1_700_000_000
THRESHOLDS = ("http_req_duration:p(95)<200", "checks:rate>0.5")


def parse(*argv):
    p = argparse.ArgumentParser(prog="cannonade")
    sub = p.add_subparsers(dest="command")
    add_history_parsers(sub)
    return p.parse_args(argv)


def run(capsys, *argv):
    code = history_command(parse(*argv))
    out, err = capsys.readouterr()
    return code, out, err


def sample_deltas(cannons=2, seconds=3):
    """Per cannon and second: /login POST 10 x 20 ms (one a 500), /home GET 5 x 1 ms,
    two checks, vus = 3, one user error; by second, then cannon, as an HQ receives them."""
    recorders = [Recorder(SourceId("agent-1", c)) for c in range(cannons)]
    out = []
    for s in range(seconds):
        for rec in recorders:
            login = rec.request_slot("/login", "POST")
            login.duration.extend([0.020] * 10)
            login.status.extend([200] * 9 + [500])
            home = rec.request_slot("/home", "GET")
            home.duration.extend([0.001] * 5)
            home.status.extend([200] * 5)
            rec.rate(CHECKS, "status is 200", True)
            rec.rate(CHECKS, "body has token", s == 0)
            rec.gauge(Key(VUS), 3)
            rec.error("KeyError", "'token'", "Traceback ...\nKeyError: 'token'")
            out.append(rec.flush(T0 + s, final=s == seconds - 1))
    return out


def store_run(store, run_id, *, status="finished", thresholds=THRESHOLDS, created=T0):
    """A run stored as the HQ stores one; returns the live aggregator of the same deltas."""
    store.create_run(
        run_id,
        scenario="login.py",
        scenario_sha256="0" * 64,
        options={"users": 3},
        thresholds=thresholds,
        created=created,
    )
    live = Aggregator()
    w = store.writer(run_id)
    for d in sample_deltas():
        live.add(d)
        w.add(d)
        w.flush()
    w.record_sources(live.sources)
    store.set_status(run_id, status, at=created + 4, started=created, ended=created + 3)
    return live


@pytest.fixture
def db(tmp_path):
    return tmp_path / "runs.db"


def test_runs_lists_newest_first(capsys, db):
    with Store.open(db) as store:
        store_run(store, "aaa111", created=T0)
        store_run(store, "bbb222", status="interrupted", created=T0 + 100)
        store.create_run(
            "ccc333", scenario="", scenario_sha256="", options={}, thresholds=(), created=T0 + 200
        )
        store.set_status("aaa111", "finished", at=T0 + 5, verdict="passed")
    code, out, err = run(capsys, "runs", "--db", str(db))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID", "STATUS", "VERDICT", "SCENARIO", "STARTED", "DURATION", "REQUESTS", "P95"
    ]  # fmt: skip
    assert [line.split()[:4] for line in lines[1:]] == [
        ["ccc333", "queued", "-", "-"],
        ["bbb222", "interrupted", "-", "login.py"],
        ["aaa111", "finished", "passed", "login.py"],
    ]
    cells = lines[3].split()
    assert cells[-3:] == ["3s", "90", "20ms"]  # duration, 2 cannons x 3 s x 15 requests, p95
    assert "\x1b" not in out


def test_runs_limit_and_status(capsys, db):
    with Store.open(db) as store:
        store_run(store, "aaa111", created=T0)
        store_run(store, "bbb222", status="interrupted", created=T0 + 100)
    _, out, _ = run(capsys, "runs", "--db", str(db), "--limit", "1")
    assert [line.split()[0] for line in out.splitlines()] == ["ID", "bbb222"]
    _, out, _ = run(capsys, "runs", "--db", str(db), "--status", "finished")
    assert [line.split()[0] for line in out.splitlines()] == ["ID", "aaa111"]
    code, out, _ = run(capsys, "runs", "--db", str(db), "--status", "failed")
    assert (code, out) == (0, f"no failed runs stored in {db}\n")


def test_runs_rejects_a_bad_limit_or_status(capsys, db):
    for argv in (("--limit", "0"), ("--status", "done")):
        with pytest.raises(SystemExit):
            parse("runs", "--db", str(db), *argv)
    capsys.readouterr()


def test_runs_empty_and_missing_database(capsys, db):
    code, out, err = run(capsys, "runs", "--db", str(db))
    assert code == 1
    assert err == f"error: no database at {db} (runs are stored by cannonade run/hq with --db)\n"
    assert not db.exists()  # looking does not create one
    Store.open(db).close()
    code, out, err = run(capsys, "runs", "--db", str(db))
    assert (code, out, err) == (0, f"no runs stored in {db}\n", "")


def test_runs_on_a_file_that_is_not_a_database(capsys, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\n" * 1000)
    code, _, err = run(capsys, "runs", "--db", str(path))
    assert code == 1
    assert err.startswith(f"error: database {path}: not an SQLite database")


def test_show_prints_the_summary_of_the_stored_data(capsys, db):
    with Store.open(db) as store:
        live = store_run(store, "abc123")
    code, out, err = run(capsys, "show", "abc", "--db", str(db))
    assert (code, err) == (0, "")
    header, _, body = out.partition("\n")
    assert header.startswith("run abc123, finished, login.py, started ")
    info = RunInfo(T0, T0 + 3, options={"users": 3}, scenario="login.py")
    expected = compute_summary(live, info, [parse_threshold(t) for t in THRESHOLDS])
    assert body == render_summary(expected) + "\n"


def test_show_exit_codes(capsys, db):
    with Store.open(db) as store:
        store_run(store, "failing", thresholds=["http_req_duration:p(95)<1"])
        store_run(store, "interrupted", status="interrupted")
        store_run(store, "broken", status="failed")
        store_run(store, "ongoing", status="running")
    assert run(capsys, "show", "failing", "--db", str(db))[0] == 99
    code, out, _ = run(capsys, "show", "interrupted", "--db", str(db))
    assert code == 130
    assert "INTERRUPTED after 3s" in out
    assert run(capsys, "show", "broken", "--db", str(db))[0] == 1
    code, out, _ = run(capsys, "show", "ongoing", "--db", str(db))
    assert code == 0
    assert "not finished" in out.splitlines()[0]


def test_show_unknown_and_ambiguous_ids(capsys, db):
    with Store.open(db) as store:
        store_run(store, "abc123")
        store_run(store, "abd456")
    code, out, err = run(capsys, "show", "zzz", "--db", str(db))
    assert (code, out) == (1, "")
    assert err == f"error: no run 'zzz' in {db}\n"
    code, out, err = run(capsys, "show", "ab", "--db", str(db))
    assert (code, out) == (1, "")
    assert err == "error: run id 'ab' is ambiguous: abc123, abd456\n"
    code, _, err = run(capsys, "show", "abc123", "--db", str(db / "nope"))
    assert code == 1
    assert "no database at" in err


def test_show_summary_export(capsys, db, tmp_path):
    with Store.open(db) as store:
        store_run(store, "abc123")
    export = tmp_path / "summary.json"
    code, _, _ = run(capsys, "show", "abc123", "--db", str(db), "--summary-export", str(export))
    assert code == 0
    data = json.loads(export.read_text())
    assert data["metrics"]["http_reqs"]["count"] == 90
    code, _, err = run(
        capsys, "show", "abc123", "--db", str(db), "--summary-export", str(tmp_path / "no" / "x")
    )
    assert code == 1
    assert "error: --summary-export" in err
