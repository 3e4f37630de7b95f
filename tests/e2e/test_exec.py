"""--exec: any executable is a scenario; its stdout lines (go-lo's format, or one loads
message a line) are the measurements; noise, crashes and hangs are counted, not fatal."""

import os
import stat
import subprocess
import time

import pytest
from conftest import cannonade_run

pytestmark = pytest.mark.e2e

GOLO = """#!/bin/sh
echo '{"sequenceID":"a","url":"http://t/","method":"GET","status":200,"size":563,"timestamp":"2026-11-22T01:33:02.828507474Z","duration":2430457,"error":null}'
echo '{"sequenceID":"b","url":"http://t/a?id=7","method":"GET","status":500,"size":10,"timestamp":"2026-11-22T01:33:02.838507474Z","duration":1000000,"error":null}'
echo 'this is not json'
echo '{"data_type":"logins","agent_id":"x"}'
echo "stderr of vu $CANNONADE_VU" >&2
"""
CRASH = """#!/bin/sh
echo '{"sequenceID":"a","url":"http://t/","method":"GET","status":200,"size":1,"timestamp":"2026-11-22T01:33:02Z","duration":1000,"error":null}'
kill -9 $$
"""
HANG = """#!/bin/sh
echo '{"sequenceID":"a","url":"http://t/","method":"GET","status":200,"size":1,"timestamp":"2026-11-22T01:33:02Z","duration":1000,"error":null}'
exec sleep 600
"""


def program(tmp_path, name, body):
    p = tmp_path / name
    p.write_text(body)
    p.chmod(p.stat().st_mode | stat.S_IXUSR)
    return p


def run(tmp_path, *args):
    env = dict(os.environ, CANNONADE_LOG_DIR=str(tmp_path / "logs"))
    return cannonade_run(tmp_path, *args, env=env)


def test_golo_lines_become_requests_and_noise_is_counted(tmp_path):
    exe = program(tmp_path, "golo.sh", GOLO)
    r, s = run(tmp_path, "--exec", str(exe), "-u", "2", "--hits", "2", "--cannons", "2")
    assert r.returncode == 0, r.stderr
    m = s["metrics"]
    assert m["iterations"]["count"] == 4  # 2 users x 2 hits: 4 runs of the program
    assert m["http_reqs"]["count"] == 8
    assert m["http_req_failed"]["passes"] + m["http_req_failed"]["fails"] == 8
    assert m["logins"]["count"] == 4
    names = {x["name"] for x in s["cannonade"]["requests_by_name"]}
    assert names == {"http://t/", "http://t/a"}
    errors = {e["kind"]: e for e in s["cannonade"]["errors"]}
    assert errors["unparsable output"]["count"] == 4
    assert errors["unparsable output"]["sample"].strip() == "this is not json"
    logs = list((tmp_path / "logs" / "cannonade-logs").rglob("*.log"))
    assert logs
    assert "stderr of vu" in "".join(p.read_text() for p in logs)


def test_a_crashing_program_is_an_iteration_error(tmp_path):
    exe = program(tmp_path, "crash.sh", CRASH)
    r, s = run(tmp_path, "--exec", str(exe), "-u", "1", "--hits", "3", "--cannons", "1")
    assert r.returncode == 0, r.stderr
    assert s["metrics"]["http_reqs"]["count"] == 3  # what it printed before dying counts
    messages = {e["message"] for e in s["cannonade"]["errors"]}
    assert "crash.sh exited with status -9" in messages


def test_a_hanging_program_is_stopped_with_the_run(tmp_path):
    exe = program(tmp_path, "hang.sh", HANG)
    t0 = time.monotonic()
    r, s = run(tmp_path, "--exec", str(exe), "-u", "2", "-d", "2s", "--graceful-stop", "1s")
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 30
    assert s["metrics"]["http_reqs"]["count"] == 2
    leftover = subprocess.run(["pgrep", "-f", "sleep 600"], capture_output=True, check=False)
    assert leftover.stdout == b""


def test_exec_refuses_a_program_that_is_not_executable(tmp_path):
    p = tmp_path / "plain.txt"
    p.write_text("hello")
    r, _ = run(tmp_path, "--exec", str(p), "--hits", "1")
    assert r.returncode == 1
    assert "is not an executable file" in r.stderr
