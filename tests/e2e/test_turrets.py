"""OCT turrets with their own scripts under a cannonade HQ: `cannonade run` without a
scenario waits for N turrets, starts them, stops them after the duration, and reports
their transactions and custom timers; a packed turret runs in one command."""

import json
import subprocess
import sys
import time

import pytest
from conftest import descendants, wait_gone
from test_cluster import free_port_pair

pytestmark = pytest.mark.e2e

SCRIPT = """
import random
import time

from cannonade.runners.turret import timer


class Transaction:
    def __init__(self):
        self.custom_timers = {}
        self.n = 0

    def setup(self):
        self.rng = random.Random(7)

    def run(self):
        self.n += 1
        with timer(self, "think"):
            time.sleep(0.02)
        self.custom_timers["by hand"] = 0.001
        if self.n % 5 == 0:
            raise ValueError("every fifth")
"""


def turret_dir(root, name, pub, res, cannons=2):
    d = root / name
    d.mkdir()
    (d / "v_user.py").write_text(SCRIPT)
    config = {
        "name": name,
        "cannons": cannons,
        "rampup": 0.5,
        "script": "v_user.py",
        "hq_address": "127.0.0.1",
        "hq_publisher": pub,
        "hq_rc": res,
    }
    (d / "turret.json").write_text(json.dumps(config))
    return d


def cannonade(*args):
    return [sys.executable, "-m", "cannonade", *args]


def test_two_turrets_fire_for_the_duration_and_report(tmp_path):
    pub, res = free_port_pair()
    export = tmp_path / "summary.json"
    hq = subprocess.Popen(
        cannonade(
            "run",
            "--quiet",
            "--local-agents",
            "0",
            "--min-agents",
            "2",
            "-d",
            "3s",
            "--publisher-port",
            str(pub),
            "--results-port",
            str(res),
            "--db",
            str(tmp_path / "runs.db"),
            "--summary-export",
            str(export),
            "--wait-agents",
            "30s",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    a = turret_dir(tmp_path, "navigation", pub, res)
    b = turret_dir(tmp_path, "checkout", pub, res)
    packed = subprocess.run(
        cannonade("pack-turret", str(b)), capture_output=True, text=True, timeout=60, check=False
    )
    assert packed.returncode == 0, packed.stderr
    turrets = [
        subprocess.Popen(
            cannonade("turret", "--config", str(a / "turret.json")),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
        subprocess.Popen(
            cannonade("turret", "--tar", str(tmp_path / "checkout.tar.gz")),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
    ]
    try:
        _out, err = hq.communicate(timeout=60)
        assert hq.returncode == 0, err
        assert "Traceback" not in err
        s = json.loads(export.read_text())
        m = s["metrics"]
        n = m["transactions"]["count"]
        assert n > 20  # 2 turrets x 2 cannons x ~3 s at ~20 ms a transaction
        assert m["transaction_errors"]["count"] == pytest.approx(n / 5, abs=4)
        # Custom timers are trends of their own (milliseconds in the export).
        assert 20.0 <= m["think"]["min"] <= m["think"]["avg"] < 60.0
        assert m["by hand"]["avg"] == pytest.approx(1.0)
        assert sorted(x["name"] for x in s["cannonade"]["agents"]) == ["checkout", "navigation"]
        assert ("ValueError: every fifth") in {e["message"] for e in s["cannonade"]["errors"]}
        # Stopped by the HQ, the turrets are ready for the next run.
        time.sleep(0.5)
        for t in turrets:
            assert t.poll() is None
    finally:
        for t in turrets:
            tree = descendants(t.pid)
            t.terminate()
            _o, terr = t.communicate(timeout=30)
            assert "Traceback" not in terr, terr
            assert wait_gone(tree) == []


def test_a_turret_config_missing_a_key_is_named(tmp_path):
    (tmp_path / "turret.json").write_text(json.dumps({"name": "x", "cannons": 1}))
    r = subprocess.run(
        cannonade("turret", "--config", str(tmp_path / "turret.json")),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1
    assert "missing key 'rampup'" in r.stderr


def test_an_hq_for_turrets_needs_local_agents_0_and_a_duration(tmp_path):
    r = subprocess.run(
        cannonade("run", "--db", str(tmp_path / "r.db"), "-d", "1s"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1
    assert "--local-agents 0" in r.stderr


# A turret as OCT's guide describes one, in plain pyzmq: it joins, fires a little when
# told to start, then dies, reporting Aborted first (as an OCT turret does on a crash).
DYING_TURRET = r"""
import json, sys, time, uuid, zmq
pub, res, stamp = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
me = str(uuid.uuid4())
ctx = zmq.Context()
sub = ctx.socket(zmq.SUB)
for topic in ("", me):
    sub.setsockopt_string(zmq.SUBSCRIBE, topic)
sub.connect(f"tcp://127.0.0.1:{pub}")
push = ctx.socket(zmq.PUSH)
push.connect(f"tcp://127.0.0.1:{res}")
def status(s):
    push.send_json({"turret": "dying", "status": s, "uuid": me, "rampup": 0,
                    "script": "v_user.py", "cannons": 1})
deadline = time.time() + 60
started = False
while not started and time.time() < deadline:
    status("ready")
    if sub.poll(500):
        frame = sub.recv().decode()
        started = '"start"' in frame
status("running")
for _ in range(3):
    push.send_json({"turret_name": "dying", "elapsed": 0.1, "epoch": time.time(),
                    "scriptrun_time": 0.01, "error": "", "custom_timers": {}})
    time.sleep(0.2)
with open(stamp, "w") as f:
    f.write(str(time.time()))
status("Aborted")
push.close(linger=2000)
ctx.term()
"""


def test_a_turret_that_aborts_is_reported_with_the_time_it_died(tmp_path):
    pub, res = free_port_pair()
    export = tmp_path / "summary.json"
    hq = subprocess.Popen(
        cannonade(
            *("run", "--quiet", "--local-agents", "0", "--min-agents", "2", "-d", "4s"),
            *("--publisher-port", str(pub), "--results-port", str(res)),
            *("--db", str(tmp_path / "runs.db"), "--summary-export", str(export)),
            *("--wait-agents", "30s"),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    healthy = turret_dir(tmp_path, "healthy", pub, res, cannons=1)
    script = tmp_path / "dying.py"
    script.write_text(DYING_TURRET)
    stamp = tmp_path / "died_at"
    turrets = [
        subprocess.Popen(
            cannonade("turret", "--config", str(healthy / "turret.json")),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
        subprocess.Popen(
            [sys.executable, str(script), str(pub), str(res), str(stamp)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ),
    ]
    try:
        _out, err = hq.communicate(timeout=60)
        assert "Traceback" not in err
        s = json.loads(export.read_text())
        agents = {a["name"]: a for a in s["cannonade"]["agents"]}
        dying, alive = agents["dying"], agents["healthy"]
        assert dying["status"].lower() == "aborted"
        died_at = float(stamp.read_text())
        assert 0 <= dying["lost_at"] - died_at < 1.0
        assert alive["lost_at"] is None
        assert s["cannonade"]["degraded"] is True
        assert hq.returncode == 0, err
        # Its results up to then are in the run, beside the healthy turret's.
        assert s["metrics"]["transactions"]["count"] > 3
    finally:
        for t in turrets:
            tree = descendants(t.pid)
            if t.poll() is None:
                t.terminate()
            t.communicate(timeout=30)
            assert wait_gone(tree) == []
