"""Size and render time of the HTML report of a one-hour run.

    .venv/bin/python bench/report_size.py [--seconds 3600] [--keep FILE]

Builds a synthetic run through the real pipeline (a Recorder per cannon, each
second's delta into the Aggregator and the Store's writer, as the HQ stores a run):
two agents of two cannons, twenty request names, checks, VUs, dropped iterations,
loads tests with tracebacks, sockets and WebSocket sessions, OCT transactions and
custom timers, agents' timelines with a loss and an abort. Then it reads the run as
``render_stored_report`` does, times ``render_html`` and checks the page stays
bounded: charts are downsampled to at most 600 points whatever the run's length.

Targets: under 2 MB of HTML and under 5 s to render. The store read is timed and
printed apart, not judged: it is the store's work (a histogram per second and name
for the latency chart), the same for ``cannonade show``. Exit status 0 when both
targets are met, 1 otherwise. Nothing is written to docs (the browser load time is measured by
tests/e2e/test_report_browser.py and noted in docs/performance.md by hand).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

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
    WS_MSGS_RECEIVED,
    WS_MSGS_SENT,
    WS_SESSIONS,
    Key,
    Kind,
    SourceId,
)
from cannonade.model.recorder import Recorder
from cannonade.report.html import load_for_report, render_html
from cannonade.report.stored import stored_summary
from cannonade.storage import Store

MAX_BYTES = 2_000_000
MAX_SECONDS = 5.0
T0 = 1_700_000_000
RUN_ID = "hour0000000000000000"
NAMES = tuple(f"/api/item/{i}" for i in range(20))
AGENTS = (("agent-a", 2), ("agent-b", 2))


def _second(rec: Recorder, s: int, cannon: int, names: int) -> None:
    """One second of one cannon: deterministic, varied enough to fill every section."""
    for i, name in enumerate(NAMES[:names]):
        slot = rec.request_slot(name, "GET" if i % 4 else "POST")
        slot.duration.extend([0.005 + 0.001 * ((s + i) % 50)] * 4)
        slot.status.extend([200, 200, 200, 500 if (s + i) % 97 == 0 else 200])
        slot.received += 4000
        slot.sent += 300
    rec.add(Key(ITERATIONS), 20)
    rec.rate(CHECKS, "status is 200", s % 13 != 0)
    rec.gauge(Key(VUS), 50 + (s // 60) % 10)
    if s % 600 > 540:  # a spell each ten minutes where the arrival rate outran the VUs
        rec.add(Key(DROPPED_ITERATIONS), 3)
    test = f"test_case_{s % 5}"
    rec.add(Key(TESTS_STARTED, test))
    if s % 17 == 0:
        rec.add(Key(TESTS_FAILED, test))
        rec.error(
            "AssertionError",
            f"{test}: expected 200",
            f'Traceback (most recent call last):\n  File "tests.py", line {s % 5 + 10}, in {test}'
            "\n    assert r.status == 200\nAssertionError",
        )
    elif s % 29 == 0:
        rec.add(Key(TESTS_ERRORED, test))
        rec.error("KeyError", "'token'", 'Traceback ...\n  File "auth.py", line 3\nKeyError')
    else:
        rec.add(Key(TESTS_PASSED, test))
    rec.add(Key(SOCKETS_OPENED), 2)
    rec.add(Key(SOCKETS_CLOSED), 2)
    rec.add(Key(SOCKET_MESSAGES), 30)
    rec.add(Key(SOCKET_DATA), 3000)
    rec.add(Key(WS_SESSIONS, "feed"))
    rec.add(Key(WS_MSGS_SENT, "feed"), 5)
    rec.add(Key(WS_MSGS_RECEIVED, "feed"), 25)
    rec.samples(Key(WS_CONNECTING, "feed")).values.append(0.002)
    rec.add(Key(TRANSACTIONS), 3)
    rec.samples(Key(TRANSACTION_DURATION)).values.extend([0.2, 0.25, 0.3 + cannon * 0.01])
    if s % 31 == 0:
        rec.add(Key(TRANSACTION_ERRORS))
    for timer in ("login", "search", "checkout"):
        rec.define(timer, Kind.TREND)
        rec.samples(Key(timer)).values.append(0.05 + 0.0001 * (s % 300))


def build_run(
    db: Path,
    seconds: int = 3600,
    run_id: str = RUN_ID,
    *,
    agents: tuple[tuple[str, int], ...] = AGENTS,
    names: int = len(NAMES),
) -> str:
    """Store a synthetic run of ``seconds`` in the database ``db``; its id. ``agents``
    (name, cannons) and ``names`` (request names) set how much each second holds."""
    with Store.open(db) as store:
        store.create_run(
            run_id,
            scenario="shop.py",
            scenario_sha256="0" * 64,
            options={"users": 200, "duration": f"{seconds}s", "host": "http://127.0.0.1:9"},
            thresholds=("http_req_duration:p(95)<500", "checks:rate>0.9"),
            created=T0,
        )
        live = Aggregator()
        w = store.writer(run_id)
        recorders = [
            (Recorder(SourceId(agent, c)), c) for agent, cannons in agents for c in range(cannons)
        ]
        for s in range(seconds):
            for rec, cannon in recorders:
                _second(rec, s, cannon, names)
                d = rec.flush(T0 + s, final=s == seconds - 1)
                live.add(d)
                w.add(d)
            if s % 50 == 0:
                w.flush()
        w.flush()
        w.record_sources(live.sources)
        timelines: dict[str, tuple[tuple[float, str], ...]] = {
            "agent-a": ((T0 - 2.0, "Ready"), (T0, "Running"), (T0 + seconds, "Stopped")),
            "agent-b": (
                (T0 - 2.0, "Ready"),
                (T0, "Running"),
                (T0 + seconds / 3, "missing"),
                (T0 + seconds / 3 + 20, "Running"),
                (T0 + seconds * 0.9, "Aborted"),
            ),
        }
        for agent, cannons in agents:
            info = {"cannons": cannons, "script": "shop.py", "rampup": "30", "hostname": agent}
            for at, status in timelines[agent]:
                store.record_agent(run_id, agent, name=agent, status=status, at=at, info=info)
        store.event(run_id, T0 + seconds / 3, "agent_missing", "agent agent-b missing")
        store.set_status(run_id, "finished", at=T0 + seconds, started=T0, ended=T0 + seconds)
    return run_id


def measure(db: Path, run_id: str) -> tuple[str, float, float]:
    """The report's HTML, the seconds reading the store took (as
    ``render_stored_report`` reads it) and the seconds rendering it took."""
    with Store.open(db, create=False) as store:
        t = time.perf_counter()
        stored = load_for_report(store, run_id)
        loaded = time.perf_counter()
        html = render_html(stored, stored_summary(stored))
        return html, loaded - t, time.perf_counter() - loaded


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=int, default=3600)
    p.add_argument("--keep", type=Path, help="also write the report to this file")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "runs.db"
        t = time.perf_counter()
        run_id = build_run(db, args.seconds)
        built = time.perf_counter() - t
        html, load, took = measure(db, run_id)
    size = len(html.encode())
    if args.keep:
        args.keep.write_text(html)
    ok_size, ok_time = size < MAX_BYTES, took < MAX_SECONDS
    print(f"run: {args.seconds} s stored in {built:.1f} s")
    print(f"html: {size:,} bytes ({'PASS' if ok_size else 'MISS'}: < {MAX_BYTES:,})")
    print(f"render: {took:.2f} s ({'PASS' if ok_time else 'MISS'}: < {MAX_SECONDS:g} s)")
    # Not judged: the store's reader, not the report, builds a histogram per second
    # and request name for the latency chart; most of this time is spent there.
    print(f"store read: {load:.2f} s (load + render: {load + took:.2f} s)")
    print(f"charts: {html.count('<polyline')} lines, {html.count('<figure')} charts")
    return 0 if ok_size and ok_time else 1


if __name__ == "__main__":
    sys.exit(main())
