"""Runners in other languages push loads and OCT messages straight to a live HQ: they
land in the run's metrics and storage, and bad frames are counted, never fatal."""

import json
import sqlite3
import subprocess
import sys
import time

import pytest
import zmq
from conftest import run_command
from test_cluster import free_port_pair, path_count

pytestmark = pytest.mark.e2e

SCENARIO = """
from cannonade import scenario

@scenario
async def hit(vu):
    await vu.http.get("/bytes/9")
    await vu.sleep(0.05)
"""

# The wire samples of ../shared/wire-samples.md, as real runners sent them.
LOADS_JS = [
    {
        "data_type": "startTest",
        "agent_id": "vm-1",
        "run_id": "",
        "loads_status": [2, 2, 1, 1],
        "test": "testHomepage",
    },
    {
        "data_type": "add_hit",
        "agent_id": "vm-1",
        "run_id": "",
        "loads_status": [2, 2, 1, 1],
        "url": "http://127.0.0.1:28080/",
        "method": "GET",
        "status": 200,
        "started": "2026-11-22T01:30:03.071Z",
        "elapsed": 0.01,
    },
    {
        "data_type": "addSuccess",
        "agent_id": "vm-1",
        "run_id": "",
        "loads_status": [2, 2, 1, 1],
        "test": "testHomepage",
    },
    {
        "data_type": "stopTest",
        "agent_id": "vm-1",
        "run_id": "",
        "loads_status": [2, 2, 1, 1],
        "test": "testHomepage",
    },
    {
        "data_type": "addFailure",
        "agent_id": "vm-1",
        "run_id": "",
        "loads_status": [2, 2, 1, 1],
        "test": "testBroken",
        "exc_info": ["JSError", "{}", ""],
    },
]
LOADS_PY_BATCH = {
    "data_type": "batch",
    "agent_id": "vm-11448",
    "hostname": "vm",
    "run_id": "",
    "counts": {
        "startTestRun": [{}],
        "startTest": [{"test": "test_fail (example.TestWebSite)", "loads_status": [2, 2, 1, 0]}],
        "add_hit": [
            {
                "status": 404,
                "loads_status": [2, 2, 1, 1],
                "started": "2026-11-22T01:27:40.669591",
                "elapsed": 0.027797,
                "url": "http://127.0.0.1:28080/nope",
                "method": "GET",
            }
        ],
        "addFailure": [
            {
                "test": "test_fail (example.TestWebSite)",
                "exc_info": [
                    "<type 'exceptions.AssertionError'>",
                    "404 != 200",
                    '  File "example.py", line 9, in test_fail\n',
                ],
                "loads_status": [2, 2, 1, 1],
            }
        ],
        "stopTestRun": [{}],
    },
}
SOCKETS = [
    {"data_type": "socket_open", "agent_id": "vm-1"},
    {"data_type": "socket_message", "agent_id": "vm-1", "size": 120},
    {"data_type": "socket_close", "agent_id": "vm-1"},
    {"data_type": "logins", "agent_id": "vm-1"},  # a custom counter
]
OCT_RESULT = {
    "elapsed": 1.254225492477417,
    "epoch": 1795310784.0,
    "scriptrun_time": 0.2504160404205322,
    "error": "boom 3",
    "custom_timers": {"a timer": 0.050168752670288086},
}
BAD = [
    b"\xff\xfe not utf-8",
    b'{"data_type": "add_hit", "url": ',  # truncated
    b'{"data_type": "add_hit", "url": "/", "method": "GET", "status": "two hundred"}',
    b"[" * 3000 + b"]" * 3000,
    b'{"data_type": 7}',
    b'{"what": "is this"}',
    b'{"data_type": "add_hit", "method": "GET", "status": 200, "elapsed": 0.1}',  # no url
]
OVERSIZED = b'{"data_type": "add_hit", "url": "' + b"x" * (16 * 1024 * 1024) + b'"}'


def test_loads_and_oct_messages_pushed_to_the_hq_are_counted_and_stored(tmp_path, target):
    pub, res = free_port_pair()
    scenario = tmp_path / "s.py"
    scenario.write_text(SCENARIO)
    export = tmp_path / "summary.json"
    argv = run_command(
        scenario,
        export,
        "--host",
        target.url,
        "-u",
        "1",
        "-d",
        "4s",
        "--cannons",
        "1",
        "--publisher-port",
        str(pub),
        "--results-port",
        str(res),
    )
    hq = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(f"tcp://127.0.0.1:{res}")
    listen = ctx.socket(zmq.SUB)  # what the HQ publishes, as a runner would see it
    listen.setsockopt(zmq.SUBSCRIBE, b"")
    listen.connect(f"tcp://127.0.0.1:{pub}")
    try:
        deadline = time.monotonic() + 30
        while path_count(target, "9") == 0:  # the run has started
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        for msg in [*LOADS_JS, LOADS_PY_BATCH, *SOCKETS, OCT_RESULT, OCT_RESULT]:
            push.send(json.dumps(msg).encode())
        for frame in BAD:
            push.send(frame)
        push.send_multipart([b"two", b"frames"])
        push.send(OVERSIZED)
        _out, err = hq.communicate(timeout=60)
        heard = []
        while listen.poll(0):
            heard.append(listen.recv())
    finally:
        listen.close(linger=0)
        push.close(linger=0)
        ctx.term()
        if hq.poll() is None:
            hq.kill()
    assert hq.returncode == 0, err
    assert "Traceback" not in err
    # Runners that push straight to the HQ get no directed frames (an OCT turret would
    # choke on one): acks go to cannonade agents only.
    assert heard
    assert not [f for f in heard if f.startswith(b"external:")]
    s = json.loads(export.read_text())
    m = s["metrics"]
    # The run's own load is exact; the runners' hits are added to it.
    assert m["http_reqs"]["count"] == target.stats()["requests"] + 2
    assert m["tests_started"]["count"] == 2
    assert m["tests_passed"]["count"] == 1
    assert m["tests_failed"]["count"] == 2
    assert m["sockets_opened"]["count"] == 1
    assert m["socket_messages"]["count"] == 1
    assert m["socket_data"]["count"] == 120
    assert m["logins"]["count"] == 1
    assert m["transactions"]["count"] == 2
    assert m["transaction_errors"]["count"] == 2
    assert m["a timer"]["avg"] == pytest.approx(50.168752670288086)
    by_name = {r["name"]: r for r in s["cannonade"]["requests_by_name"]}
    assert by_name["http://127.0.0.1:28080/nope"]["failures"] == 1
    kinds = {e["kind"] for e in s["cannonade"]["errors"]}
    assert "JSError" in kinds
    assert "transaction" in kinds
    notes = s["cannonade"]["notes"]
    assert "7 rejected: malformed frame" in notes, notes
    assert "1 rejected: multipart or empty frame" in notes, notes
    assert "1 rejected: frame over the 16 MiB cap" in notes, notes
    # The first rejections of each reason are kept as events, naming what was wrong.
    db = sqlite3.connect(tmp_path / "runs.db")
    logged = [m for (m,) in db.execute("SELECT message FROM events WHERE kind = 'rejected'")]
    db.close()
    assert len([m for m in logged if m.startswith("malformed frame")]) == 3
    assert any("status" in m and "add_hit" in m for m in logged), logged
    assert any(m.startswith("multipart or empty frame") for m in logged), logged
    assert f"frame over the 16 MiB cap: {len(OVERSIZED)} bytes" in logged, logged
    # loads' startTestRun/stopTestRun are when that runner's test run began and ended.
    db = sqlite3.connect(tmp_path / "runs.db")
    marks = [m for (m,) in db.execute("SELECT message FROM events WHERE kind = 'test_run'")]
    db.close()
    assert marks == ["startTestRun from external:vm-11448", "stopTestRun from external:vm-11448"]
    # `cannonade show` prints the same numbers from the store.
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "cannonade",
            "show",
            s["cannonade"]["run_id"],
            "--db",
            str(tmp_path / "runs.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "tests_failed" in shown.stdout, shown.stdout + shown.stderr
