"""--test-runner: loads' external runners, one per user of each cycle step, reporting
over ZeroMQ with the environment loads defines. The runner here imports only pyzmq and
the standard library, as a runner in any other language would."""

import json
import os
import sys

import pytest
from conftest import cannonade_run

pytestmark = pytest.mark.e2e

RUNNER = r"""
import datetime, json, os, sys, time, urllib.request
import zmq

env = os.environ
test = sys.argv[1]
sock = zmq.Context().socket(zmq.PUSH)
sock.connect(env["LOADS_ZMQ_RECEIVER"])
users, user = int(env["LOADS_TOTAL_USERS"]), int(env["LOADS_CURRENT_USER"])
hits = int(env.get("LOADS_TOTAL_HITS", "1"))
common = {"agent_id": env["LOADS_AGENT_ID"], "run_id": env["LOADS_RUN_ID"]}
with open(os.path.join(env["SEEN_DIR"], f"{users}-{user}-{os.getpid()}"), "w") as f:
    json.dump({k: v for k, v in env.items() if k.startswith("LOADS_")}, f)

def send(data_type, **fields):
    sock.send_string(json.dumps({"data_type": data_type, **common, **fields}))

for hit in range(1, hits + 1):
    status = [hits, users, hit, user]
    send("startTest", test=test, loads_status=status)
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.perf_counter()
    with urllib.request.urlopen(env["TARGET"] + "/json") as r:
        r.read()
        code = r.status
    send("add_hit", url=env["TARGET"] + "/json", method="GET", status=code,
         started=started.isoformat(), elapsed=time.perf_counter() - t0, loads_status=status)
    if user == 1 and hit == 1:
        send("addFailure", test=test, loads_status=status,
             exc_info=["AssertionError", "first user fails once", "  File runner.py\n"])
    else:
        send("addSuccess", test=test, loads_status=status)
    send("stopTest", test=test, loads_status=status)
sock.close(linger=2000)
"""


def test_runners_per_user_and_step_report_exact_counts(tmp_path, target):
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    seen = tmp_path / "seen"
    seen.mkdir()
    env = dict(os.environ, SEEN_DIR=str(seen), TARGET=target.url)
    r, s = cannonade_run(
        tmp_path,
        "test_home",
        "--test-runner",
        f"{sys.executable} {runner} {{test}}",
        *("-u", "2:3", "--hits", "2", "--cannons", "2"),
        env=env,
    )
    assert r.returncode == 0, r.stderr
    m = s["metrics"]
    # loads semantics: step 1 runs 2 users, step 2 runs 3, each runner makes 2 hits.
    assert m["iterations"]["count"] == 5  # one runner per user per step
    assert m["http_reqs"]["count"] == target.stats()["requests"] == 10
    assert m["tests_started"]["count"] == 10
    assert m["tests_passed"]["count"] == 8
    assert m["tests_failed"]["count"] == 2  # user 1 of each step
    assert {e["kind"] for e in s["cannonade"]["errors"]} == {"AssertionError"}
    envs = [json.loads(p.read_text()) for p in seen.iterdir()]
    assert sorted((e["LOADS_TOTAL_USERS"], e["LOADS_CURRENT_USER"]) for e in envs) == [
        ("2", "1"),
        ("2", "2"),
        ("3", "1"),
        ("3", "2"),
        ("3", "3"),
    ]
    for e in envs:
        assert e["LOADS_TOTAL_HITS"] == "2"
        assert e["LOADS_CURRENT_HIT"] == "1"
        assert e["LOADS_RUN_ID"] == s["cannonade"]["run_id"]
        assert e["LOADS_ZMQ_RECEIVER"].startswith("ipc://")
        assert e["LOADS_AGENT_ID"]


def test_a_crashing_runner_is_counted_and_the_run_goes_on(tmp_path, target):
    runner = tmp_path / "crash.sh"
    runner.write_text("#!/bin/sh\nkill -9 $$\n")
    runner.chmod(0o755)
    r, s = cannonade_run(
        tmp_path, "t", "--test-runner", f"{runner} {{test}}", "-u", "2", "--hits", "3"
    )
    assert r.returncode == 0, r.stderr
    assert s["metrics"]["iterations"]["count"] == 2
    messages = {e["message"] for e in s["cannonade"]["errors"]}
    assert any("exited with status -9" in msg for msg in messages), messages


def _events(tmp_path, run_id):
    from cannonade.storage.store import Store

    store = Store.open(tmp_path / "runs.db")
    try:
        return store.load(run_id).events
    finally:
        store.close()


def test_with_a_duration_each_user_runs_its_runner_once_per_step(tmp_path):
    # loads: a runner told LOADS_DURATION runs for it itself; one that ends early is
    # not started again, and the step ends when every runner has.
    seen = tmp_path / "seen"
    seen.mkdir()
    runner = tmp_path / "quick.sh"
    runner.write_text('#!/bin/sh\necho "$LOADS_DURATION" > "$SEEN_DIR/$LOADS_CURRENT_USER-$$"\n')
    runner.chmod(0o755)
    env = dict(os.environ, SEEN_DIR=str(seen))
    r, s = cannonade_run(
        tmp_path, "t", "--test-runner", f"{runner} {{test}}", "-u", "2:3", "-d", "20s", env=env
    )
    assert r.returncode == 0, r.stderr
    assert s["metrics"]["iterations"]["count"] == 5
    assert sorted(p.read_text() for p in seen.iterdir()) == ["20\n"] * 5
    assert s["cannonade"]["duration_s"] < 15  # the steps did not wait out 20 s each
    # The agent told the HQ when its runners' test run began and ended, as loads does.
    marks = [e.message for e in _events(tmp_path, s["cannonade"]["run_id"]) if e.kind == "test_run"]
    assert len(marks) == 2
    assert marks[0].startswith("startTestRun from external:")
    assert marks[1].startswith("stopTestRun from external:")


def test_a_runner_that_overruns_its_duration_is_stopped(tmp_path):
    runner = tmp_path / "hang.sh"
    runner.write_text("#!/bin/sh\nexec sleep 60\n")
    runner.chmod(0o755)
    r, s = cannonade_run(
        tmp_path,
        "t",
        *("--test-runner", f"{runner} {{test}}", "-u", "2", "-d", "1s"),
        *("--graceful-stop", "1s"),
    )
    assert r.returncode == 0, r.stderr
    assert s["cannonade"]["duration_s"] < 10
    assert s["metrics"]["interrupted_iterations"]["count"] == 2


BAD_RUNNER = r"""
import json, os, zmq
ctx = zmq.Context()
sock = ctx.socket(zmq.PUSH)
sock.connect(os.environ["LOADS_ZMQ_RECEIVER"])
ids = {"agent_id": os.environ["LOADS_AGENT_ID"], "run_id": os.environ["LOADS_RUN_ID"]}
sock.send(b"\xff\xfe not utf-8")
sock.send(b"[" * 3000 + b"]" * 3000)
sock.send(b'{"data_type": "add_hit", "url": "/x"}')  # missing fields
sock.send(b'{"data_type": "add_hit", "url": "' + b"x" * (16 * 1024 * 1024) + b'"}')
sock.send_multipart([b"two", b"frames"])
sock.send_string(json.dumps({"data_type": "addSuccess", "test": "t", **ids}))
sock.close(linger=5000)
ctx.term()  # waits for the big frame to leave
"""


def test_bad_runner_messages_are_counted_and_what_was_measured_is_kept(tmp_path):
    runner = tmp_path / "bad.py"
    runner.write_text(BAD_RUNNER)
    r, s = cannonade_run(
        tmp_path, "t", "--test-runner", f"{sys.executable} {runner} {{test}}", "-u", "1"
    )
    assert r.returncode == 0, r.stderr
    assert s["metrics"]["tests_passed"]["count"] == 1
    errors = {e["message"]: e for e in s["cannonade"]["errors"]}
    over = [e for e in s["cannonade"]["errors"] if e["kind"] == "runner message over the size cap"]
    assert [e["count"] for e in over] == [1], errors
    unparsable = [e for e in s["cannonade"]["errors"] if e["kind"] == "unparsable runner message"]
    assert sum(e["count"] for e in unparsable) == 4, errors  # the multipart one included
    # Each names where it was pushed (the agent and cannon whose runners sent it).
    assert all(e["sample"].startswith("pushed to agent ") for e in [*over, *unparsable])
