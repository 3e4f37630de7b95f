"""The reference runners in examples/runners/, run for real against the embedded target
and a real `cannonade run`: a Node.js loads-protocol runner (npm `zeromq`), a Node.js
exec runner printing go-lo lines, and an OCT turret written only from OCT's guide and
docs/protocols.md (pyzmq and the standard library, no cannonade) as a conformance test
of the HQ.

scripts/test.sh installs Node.js, npm and node-loads' node_modules; run alone, pytest
runs `npm ci` itself when node_modules is missing or older than package-lock.json."""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import zmq
from conftest import cannonade_run as run_cannonade
from conftest import descendants, wait_gone
from test_cluster import free_port_pair

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "runners"
NODE_LOADS = EXAMPLES / "node-loads"
NODE_EXEC = EXAMPLES / "node-exec" / "runner.js"
TURRET = EXAMPLES / "oct-turret" / "turret.py"
V_USER = EXAMPLES / "oct-turret" / "v_user.py"
STAMP = "node_modules/.package-lock.sha256"  # written by scripts/test.sh and below
HTTP_500 = "HTTPError: HTTP Error 500: Internal Server Error"


def lock_digest() -> str:
    return hashlib.sha256((NODE_LOADS / "package-lock.json").read_bytes()).hexdigest()


def node_modules_current() -> bool:
    stamp = NODE_LOADS / STAMP
    return stamp.is_file() and stamp.read_text().strip() == lock_digest()


@pytest.fixture(scope="session")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed (scripts/test.sh installs it on Debian)")
    return path


@pytest.fixture(scope="session")
def node_loads(node) -> Path:
    """node-loads with its node_modules (zeromq) installed from package-lock.json."""
    if not node_modules_current():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed (scripts/test.sh installs it on Debian)")
        try:
            r = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=NODE_LOADS,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.skip("npm ci in examples/runners/node-loads took over 300 s")
        if r.returncode != 0:
            pytest.skip(f"npm ci in examples/runners/node-loads failed: {r.stderr[-2000:]}")
        (NODE_LOADS / STAMP).write_text(lock_digest() + "\n")
    assert (NODE_LOADS / "node_modules" / "zeromq").is_dir()
    return NODE_LOADS


def cannonade_run(tmp_path, *args, env=None, timeout=90):
    r, summary = run_cannonade(tmp_path, *args, env=env, timeout=timeout)
    assert r.returncode == 0, r.stderr + logs_of(tmp_path)
    return summary


def logs_of(tmp_path) -> str:
    """What the runners wrote on stdout/stderr (cannon logs), for failure messages."""
    return "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*.log"))


def run_env(tmp_path, target) -> dict[str, str]:
    return dict(os.environ, TARGET=target.url, CANNONADE_LOG_DIR=str(tmp_path / "logs"))


# ---------------------------------------------------------------- Node.js loads runner


def test_node_loads_runner_reports_every_hit_and_test(tmp_path, target, node, node_loads):
    runner = node_loads / "runner.js"
    s = cannonade_run(
        tmp_path,
        "testHomepage,testJson,testBroken",
        "--test-runner",
        f"{node} {runner} {{test}}",
        "-u",
        "2:3",
        "--hits",
        "2",
        "--cannons",
        "2",
        env=run_env(tmp_path, target),
    )
    m = s["metrics"]
    stats = target.stats()
    # Step 1 runs 2 users, step 2 runs 3: 5 runners, each 2 hits of 3 tests, 1 request each.
    assert m["iterations"]["count"] == 5, logs_of(tmp_path)
    assert m["http_reqs"]["count"] == stats["requests"] == 30
    assert stats["paths"] == {"/": 10, "/json": 10, "/nope": 10}
    assert m["tests_started"]["count"] == 30
    assert m["tests_passed"]["count"] == 20
    assert m["tests_failed"]["count"] == 10  # testBroken, every time
    assert "tests_errored" not in m
    assert m["http_req_failed"]["passes"] == 10  # the 404s
    assert m["http_req_failed"]["fails"] == 20
    assert 0 < m["http_req_duration"]["min"] <= m["http_req_duration"]["max"] < 5000
    (error,) = s["cannonade"]["errors"]
    assert (error["kind"], error["message"], error["count"]) == (
        "AssertionError",
        "GET /nope: 404 != 200",
        10,
    )
    assert "runner.js" in error["sample"]  # the JS stack is the traceback
    names = {(x["name"], x["count"]) for x in s["cannonade"]["requests_by_name"]}
    assert names == {(target.url + p, 10) for p in ("/", "/json", "/nope")}


# ---------------------------------------------------------------- Node.js exec runner


def test_node_exec_runner_prints_golo_lines(tmp_path, target, node):
    paths = ("/", "/json", "/status/500")
    sizes = {}
    for p in paths:
        try:
            with urllib.request.urlopen(target.url + p, timeout=10) as r:
                sizes[p] = len(r.read())
        except urllib.error.HTTPError as e:
            sizes[p] = len(e.read())
    target.reset()
    s = cannonade_run(
        tmp_path,
        "--exec",
        f"{NODE_EXEC} {' '.join(paths)}",
        "-u",
        "2",
        "--hits",
        "3",
        "--cannons",
        "2",
        env=run_env(tmp_path, target),
    )
    m = s["metrics"]
    stats = target.stats()
    assert m["iterations"]["count"] == 6  # 2 users x 3 hits: 6 runs of the program
    assert m["http_reqs"]["count"] == stats["requests"] == 18, logs_of(tmp_path)
    assert stats["paths"] == {"/": 6, "/json": 6, "/status/500": 6}
    assert m["http_req_failed"]["passes"] == 6  # the 500s
    assert m["data_received"]["count"] == 6 * sum(sizes.values())
    # duration is in nanoseconds on the wire: a loopback request is well under a second.
    assert 0 < m["http_req_duration"]["min"] <= m["http_req_duration"]["max"] < 1000
    assert s["cannonade"]["errors"] == []
    names = {(x["name"], x["count"]) for x in s["cannonade"]["requests_by_name"]}
    assert names == {(target.url + p, 6) for p in paths}


def test_node_exec_runner_reports_a_refused_connection_as_status_0(node):
    r = subprocess.run(
        [node, str(NODE_EXEC), "http://127.0.0.1:1/x"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    (line,) = [json.loads(x) for x in r.stdout.splitlines()]
    assert line["status"] == 0
    assert "ECONNREFUSED" in line["error"]
    assert isinstance(line["duration"], int)
    assert line["timestamp"].endswith("Z")
    assert len(line["timestamp"].split(".")[1]) == 10  # nine digits and the Z


# ---------------------------------------------------------------- OCT turret


def write_config(directory: Path, name: str, pub: int, res: int, cannons=2, rampup=0.5):
    config = {
        "name": name,
        "cannons": cannons,
        "rampup": rampup,
        "script": str(V_USER),
        "hq_address": "127.0.0.1",
        "hq_publisher": pub,
        "hq_rc": res,
    }
    path = directory / f"{name}.json"
    path.write_text(json.dumps(config))
    return path


def start_turret(config: Path, target) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(TURRET), str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TARGET=target.url),
    )


def stop_turrets(turrets):
    """SIGTERM (the turret's kill), then: exit 0, nothing left behind, no Traceback."""
    trees = {t.pid: descendants(t.pid) for t in turrets}
    for t in turrets:
        if t.poll() is None:
            t.terminate()
    for t in turrets:
        try:
            _out, err = t.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            t.kill()
            _out, err = t.communicate(timeout=10)
            pytest.fail(f"turret still running 30 s after SIGTERM: {err}")
        assert "Traceback" not in err, err
        assert t.returncode == 0, err
        assert wait_gone(trees[t.pid]) == []


def hq_for_turrets(tmp_path, pub, res, *, turrets: int, duration: str):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cannonade",
            "run",
            "--quiet",
            "--local-agents",
            "0",
            "--min-agents",
            str(turrets),
            "-d",
            duration,
            "--publisher-port",
            str(pub),
            "--results-port",
            str(res),
            "--wait-agents",
            "30s",
            "--db",
            str(tmp_path / "runs.db"),
            "--summary-export",
            str(tmp_path / "summary.json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_oct_turrets_written_from_the_spec_run_under_the_hq(tmp_path, target):
    pub, res = free_port_pair()
    hq = hq_for_turrets(tmp_path, pub, res, turrets=2, duration="3s")
    turrets = [
        start_turret(write_config(tmp_path, name, pub, res), target)
        for name in ("navigation", "checkout")
    ]
    try:
        _out, err = hq.communicate(timeout=60)
        assert "Traceback" not in err, err
        assert hq.returncode == 0, err
        s = json.loads((tmp_path / "summary.json").read_text())
        m = s["metrics"]
        stats = target.stats()
        n = m["transactions"]["count"]
        # One request per transaction, and every transaction reported: exact.
        assert n == stats["requests"]
        assert set(stats["paths"]) == {"/", "/status/500"}
        assert m["transaction_errors"]["count"] == stats["paths"]["/status/500"]
        assert n > 20  # 2 turrets x 2 cannons x ~3 s at ~25 ms a transaction
        # Every fifth transaction of each of the 4 cannons fails.
        assert (n - 4 * 4) / 5 <= m["transaction_errors"]["count"] <= n / 5
        assert {(e["kind"], e["message"]) for e in s["cannonade"]["errors"]} == {
            ("transaction", HTTP_500)
        }
        # scriptrun_time and custom timers are seconds (milliseconds in the export).
        assert m["transaction_duration"]["min"] >= 20.0  # v_user.py thinks 20 ms
        assert m["transaction_duration"]["max"] < 5000
        assert 0 < m["home_page"]["min"] <= m["home_page"]["max"] < 5000
        agents = sorted((a["name"], a["cannons"], a["status"]) for a in s["cannonade"]["agents"])
        assert agents == [("checkout", 2, "ready"), ("navigation", 2, "ready")]
        assert not s["cannonade"]["degraded"]
        # Stopped by the HQ, the turrets are ready for another run.
        time.sleep(0.5)
        assert [t.poll() for t in turrets] == [None, None]
    finally:
        if hq.poll() is None:
            hq.kill()
            hq.communicate(timeout=30)
        stop_turrets(turrets)


class FakeHQ:
    """The HQ's two sockets, driven by the test: PUB for commands, PULL for the rest."""

    def __init__(self):
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.PUB)
        self.pull = self.ctx.socket(zmq.PULL)
        self.pub_port = self.pub.bind_to_random_port("tcp://127.0.0.1")
        self.pull_port = self.pull.bind_to_random_port("tcp://127.0.0.1")
        self.statuses: list[dict] = []
        self.results: list[dict] = []

    def send(self, frame: bytes):
        self.pub.send(frame)

    def receive(self, timeout: float):
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0 and self.pull.poll(left * 1000):
            msg = json.loads(self.pull.recv())
            (self.statuses if "uuid" in msg else self.results).append(msg)
            return msg
        return None

    def wait_status(self, status: str, timeout: float = 10.0, poke: bytes = b"") -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if poke:
                self.send(poke)
            msg = self.receive(0.2)
            if msg is not None and msg.get("status") == status:
                return msg
        pytest.fail(f"no {status!r} status in {timeout:g}s; statuses: {self.statuses[-5:]}")

    def close(self):
        self.ctx.destroy(linger=0)


def command(name, msg=None, channel=""):
    return f"{channel} {json.dumps({'command': name, 'msg': msg})}".encode()


def test_oct_turret_obeys_directed_frames_and_ignores_others(tmp_path, target):
    """The turret alone, under a test HQ: frames directed to its uuid work, frames for
    another uuid, unknown commands and garbage are ignored, kill ends it."""
    hq = FakeHQ()
    config = write_config(tmp_path, "solo", hq.pub_port, hq.pull_port, cannons=1, rampup=0)
    turret = start_turret(config, target)
    try:
        first = hq.wait_status("Initialized")
        assert first == {
            "turret": "solo",
            "status": "Initialized",
            "uuid": first["uuid"],
            "rampup": 0,
            "script": str(V_USER),
            "cannons": 1,
        }
        uuid = first["uuid"]
        # Ready once a frame from the HQ proves its subscription is live.
        hq.wait_status("ready", poke=command("status_request"))
        for frame in (
            command("start", "open fire", "someone-else"),
            command("kill", None, "someone-else"),
            b'{"command": "set_transaction_context", "msg": {"foo": "bar"}}',
            b"not json at all",
            b"",
        ):
            hq.send(frame)
        assert hq.receive(1.5)["status"] == "ready"  # a heartbeat; still idle
        assert hq.results == []
        assert target.stats()["requests"] == 0
        hq.send(command("start", "open fire", uuid))
        hq.wait_status("running")
        t0 = time.time()
        while len(hq.results) < 6:
            assert time.time() - t0 < 20, hq.results
            hq.receive(1.0)
        hq.send(command("stop", "premature stop", uuid))
        hq.wait_status("ready")
        time.sleep(0.3)
        while hq.receive(0.3) is not None:
            pass
        results = hq.results
        assert len(results) == target.stats()["requests"]
        for r in results:
            assert set(r) == {
                "turret_name",
                "elapsed",
                "epoch",
                "scriptrun_time",
                "error",
                "custom_timers",
            }
            assert r["turret_name"] == "solo"
            assert 0 <= r["elapsed"] < 60
            assert abs(r["epoch"] - time.time()) < 60
            assert r["scriptrun_time"] >= 0.02
            if r["error"]:
                assert r["error"] == HTTP_500
                assert r["custom_timers"] == {}
            else:
                assert set(r["custom_timers"]) == {"home_page"}
        errors = sum(1 for r in results if r["error"])
        assert errors == len(results) // 5 == target.stats()["paths"].get("/status/500", 0)
        hq.send(command("kill", None, uuid))
        hq.wait_status("Killed")
        assert turret.wait(10) == 0
    finally:
        stop_turrets([turret])
        hq.close()


def test_oct_turret_aborts_when_its_script_does_not_load(tmp_path, target):
    hq = FakeHQ()
    script = tmp_path / "broken.py"
    script.write_text("raise RuntimeError('no such thing')\n")
    config = {
        "name": "broken",
        "cannons": 1,
        "rampup": 0,
        "script": "broken.py",  # relative to the configuration file
        "hq_address": "",
        "hq_publisher": hq.pub_port,
        "hq_rc": hq.pull_port,
    }
    (tmp_path / "turret.json").write_text(json.dumps(config))
    turret = start_turret(tmp_path / "turret.json", target)
    try:
        hq.wait_status("Aborted")
        assert turret.wait(10) == 1
        assert "RuntimeError: no such thing" in turret.stderr.read()
    finally:
        if turret.poll() is None:
            turret.kill()
        turret.communicate(timeout=10)
        hq.close()


def test_a_second_ctrl_c_kills_the_turrets(tmp_path, target):
    pub, res = free_port_pair()
    hq = hq_for_turrets(tmp_path, pub, res, turrets=1, duration="30s")
    turret = start_turret(write_config(tmp_path, "k", pub, res, cannons=1, rampup=0), target)
    try:
        deadline = time.monotonic() + 30
        while target.stats()["requests"] < 5:
            assert time.monotonic() < deadline, "the turret never fired"
            time.sleep(0.1)
        hq.send_signal(signal.SIGINT)
        time.sleep(0.5)
        hq.send_signal(signal.SIGINT)
        _out, err = hq.communicate(timeout=30)
        assert "Traceback" not in err, err
        # kill: the turret reports Killed and exits by itself.
        try:
            turret.wait(3)
        except subprocess.TimeoutExpired:
            pytest.fail("the turret got no kill after the second Ctrl-C")
        assert turret.returncode == 0
    finally:
        if hq.poll() is None:
            hq.kill()
            hq.communicate(timeout=30)
        stop_turrets([turret])
