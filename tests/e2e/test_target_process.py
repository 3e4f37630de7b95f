"""The target as a process: the fixture, /stall, start-up, shutdown, and no orphans."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from cannonade.target.process import READY_PREFIX, TargetProcess, start_target

pytestmark = pytest.mark.e2e


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); look at its state.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _get(url: str) -> bytes:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        body: bytes = response.read()
        return body


def test_fixture_object(target: TargetProcess, cannonade_target: TargetProcess) -> None:
    assert target is cannonade_target
    assert target.url == f"http://127.0.0.1:{target.port}"
    assert _alive(target.pid)
    assert _get(target.url + "/") == b"ok\n"
    assert target.stats()["paths"] == {"/": 1}
    target.reset()
    assert target.stats()["requests"] == 0


def test_target_fixture_starts_each_test_from_zero(target: TargetProcess) -> None:
    # Whatever earlier tests did, this one sees a reset target.
    assert target.stats()["requests"] == 0
    assert target.delays() == []


def test_stall_pauses_every_connection(target: TargetProcess) -> None:
    address = ("127.0.0.1", target.port)
    with (
        socket.create_connection(address, timeout=10) as staller,
        socket.create_connection(address, timeout=10) as other,
    ):
        started = time.monotonic()
        staller.sendall(b"GET /stall?s=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.2)  # the stall is under way
        asked = time.monotonic()
        other.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert other.recv(1000).endswith(b"ok\n")
        waited = time.monotonic() - asked
        assert staller.recv(1000).endswith(b"stalled 1 s\n")
        stalled = time.monotonic() - started
    assert stalled >= 0.9
    assert waited >= 0.5  # blocked behind the stall, though it asked 0.2 s after it began
    stats = target.stats()
    assert stats["stalls"] == {"count": 1, "sum_ms": 1000.0}
    assert stats["paths"] == {"/stall": 1, "/": 1}


def test_stall_is_capped(target: TargetProcess) -> None:
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        _get(target.url + "/stall?s=31")
    assert excinfo.value.code == 400
    excinfo.value.close()


def test_start_and_stop_leave_nothing_behind() -> None:
    process = start_target()
    pid = process.pid
    try:
        assert _get(process.url + "/") == b"ok\n"
    finally:
        process.stop()
    assert process.terminate() == 0  # SIGTERM is a clean exit
    assert not _alive(pid)


def test_exactly_one_line_on_stdout_and_clean_sigint() -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "cannonade.target", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith(READY_PREFIX + "http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        assert _get(f"http://127.0.0.1:{port}/") == b"ok\n"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert out == ""
    assert err == ""
    assert child.returncode == 0


def test_remote_address_needs_allow_remote() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cannonade.target", "--port", "0", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert "--allow-remote" in result.stderr


def test_no_orphan_when_the_parent_dies_without_cleaning_up() -> None:
    # The middle process starts a target the way the fixture does, then exits abruptly.
    script = (
        "import os\n"
        "from cannonade.target.process import start_target\n"
        "t = start_target()\n"
        "print(t.pid, flush=True)\n"
        "os._exit(0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )
    pid = int(result.stdout.strip())
    assert _wait_gone(pid, 5), f"target {pid} outlived its parent"
