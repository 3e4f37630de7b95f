"""HQ and agents as separate processes on loopback: exact counts, lost agents, a lost HQ,
and no process left behind on any way out."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
from conftest import descendants, wait_gone

pytestmark = pytest.mark.e2e

# Each agent's VUs hit a path of their own (the agent's environment names it), so the
# target's per-path counts say what each agent's cannons sent.
PER_AGENT = """
import os
from cannonade import scenario

PATH = "/bytes/" + os.environ.get("CANNONADE_TEST_BYTES", "8")

@scenario
async def hit(vu):
    await vu.http.get(PATH, name="hit")
"""


def free_port_pair():
    """Two free TCP ports on loopback (a race is possible, but not within one test)."""
    socks = [socket.socket() for _ in range(2)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def cannonade(*args):
    return [sys.executable, "-m", "cannonade", *args]


class Cluster:
    """Processes started by one test; whatever is left is killed at the end."""

    def __init__(self, tmp_path, target):
        self.tmp = tmp_path
        self.target = target
        self.procs = []
        self.pub, self.res = free_port_pair()
        self.db = tmp_path / "runs.db"
        self.export = tmp_path / "summary.json"

    def start(self, argv, env=None, **kw):
        p = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            **kw,
        )
        self.procs.append(p)
        return p

    def hq_run(self, *args, scenario=PER_AGENT, agents=2):
        path = self.tmp / "scenario.py"
        path.write_text(scenario)
        return self.start(
            cannonade(
                "run",
                str(path),
                "--quiet",
                "--local-agents",
                "0",
                "--min-agents",
                str(agents),
                "--publisher-port",
                str(self.pub),
                "--results-port",
                str(self.res),
                "--db",
                str(self.db),
                "--summary-export",
                str(self.export),
                "--host",
                self.target.url,
                "--wait-agents",
                "60s",
                *args,
            )
        )

    def agent(self, name, tag, cannons=2):
        agent_id = str(uuid.uuid4())
        p = self.start(
            cannonade(
                "agent",
                "--hq",
                "127.0.0.1",
                "--publisher-port",
                str(self.pub),
                "--results-port",
                str(self.res),
                "--cannons",
                str(cannons),
                "--name",
                name,
                "--uuid",
                agent_id,
            ),
            env={"CANNONADE_TEST_BYTES": tag},
        )
        p.agent_id = agent_id
        return p

    def summary(self):
        return json.loads(self.export.read_text())

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.communicate(timeout=30)


@pytest.fixture
def cluster(tmp_path, target):
    c = Cluster(tmp_path, target)
    yield c
    c.close()


def finish(proc, timeout=90):
    out, err = proc.communicate(timeout=timeout)
    assert "Traceback (most recent call last)" not in err, err
    return proc.returncode, out, err


def stop_agent(proc):
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc, timeout=30)
    assert code == 0, err


def path_count(target, tag):
    return target.stats()["paths"].get(f"/bytes/{tag}", 0)


def wait_for_load(target, tag, timeout=30.0):
    deadline = time.monotonic() + timeout
    while path_count(target, tag) == 0:
        assert time.monotonic() < deadline, f"no load reached /bytes/{tag}"
        time.sleep(0.05)


def test_two_agents_two_cannons_each_count_exactly(cluster, target):
    hq = cluster.hq_run("-u", "8", "-d", "3s")
    a = cluster.agent("alpha", "10")
    b = cluster.agent("beta", "11")
    wait_for_load(target, "10")
    tree = descendants(a.pid) + descendants(b.pid)
    assert len(tree) == 4  # two cannons each
    code, _, err = finish(hq)
    assert code == 0, err
    s = cluster.summary()
    stats = target.stats()
    assert s["metrics"]["http_reqs"]["count"] == stats["requests"] > 0
    # The 8 VUs were split over 4 cannons of 2 agents: both agents' paths were hit.
    assert path_count(target, "10") > 0
    assert path_count(target, "11") > 0
    names = sorted(x["name"] for x in s["cannonade"]["agents"])
    assert names == ["alpha", "beta"]
    for agent in s["cannonade"]["agents"]:
        assert agent["cannons"] == 2
        assert agent["problems"] == []
        assert agent["intervals"] == agent["expected_intervals"]
    assert not s["cannonade"]["degraded"]
    # The agents stay up for the next run, and their cannons are gone.
    assert a.poll() is None
    assert b.poll() is None
    assert wait_gone(tree) == []
    for p in (a, b):
        stop_agent(p)


def test_user_cycles_and_hits_are_exact_across_agents(cluster, target):
    # loads' semantics: cycle 1 runs 2 users, cycle 2 runs 3, each user 2 hits.
    hq = cluster.hq_run("-u", "2:3", "--hits", "2")
    a = cluster.agent("alpha", "10")
    b = cluster.agent("beta", "11")
    code, _, err = finish(hq)
    assert code == 0, err
    s = cluster.summary()
    assert s["metrics"]["iterations"]["count"] == 10
    assert s["metrics"]["http_reqs"]["count"] == target.stats()["requests"] == 10
    for p in (a, b):
        stop_agent(p)


def test_a_killed_agent_degrades_the_run_and_the_survivor_counts_exactly(cluster, target):
    hq = cluster.hq_run("-u", "4", "-d", "10s")
    a = cluster.agent("alpha", "10")
    b = cluster.agent("beta", "11")
    wait_for_load(target, "11")
    time.sleep(1.5)
    b_cannons = descendants(b.pid)
    killed_at = time.time()
    b.kill()  # SIGKILL: no goodbye, no last interval
    code, out, err = finish(hq)
    assert code == 0, err
    s = cluster.summary()
    assert s["cannonade"]["degraded"]
    agents = {x["name"]: x for x in s["cannonade"]["agents"]}
    lost = agents["beta"]
    assert lost["losses"] == 1
    assert 0 < lost["lost_at"] - killed_at <= 4.0
    assert lost["intervals"] > 0
    assert agents["alpha"]["losses"] == 0
    assert agents["alpha"]["problems"] == []
    # The survivor's numbers are exact; the dead agent's stop at its last interval.
    by_name = {(r["name"]): r for r in s["cannonade"]["requests_by_name"]}
    total = by_name["hit"]["count"]
    survivor = path_count(target, "10")
    dead_served = path_count(target, "11")
    assert total - survivor <= dead_served
    assert total >= survivor
    assert "DEGRADED: agent beta" in out
    # Its cannons died with it.
    assert wait_gone(b_cannons, timeout=5) == []
    stop_agent(a)


def test_a_restarted_hq_readopts_its_agents(cluster, target):
    hq = cluster.hq_run("-u", "2", "-d", "60s", agents=1)
    a = cluster.agent("alpha", "10", cannons=1)
    wait_for_load(target, "10")
    hq.kill()
    hq.communicate(timeout=10)
    cannons = descendants(a.pid)
    hq2 = cluster.start(
        cannonade(
            "hq",
            "--api",
            "127.0.0.1:0",
            "--publisher-port",
            str(cluster.pub),
            "--results-port",
            str(cluster.res),
            "--db",
            str(cluster.db),
        )
    )
    up = None
    joined = None
    while joined is None:
        line = hq2.stderr.readline()
        assert line, "the restarted HQ exited"
        if line.startswith("cannonade hq:"):
            up = time.monotonic()
        if a.agent_id in line and "joined" in line:
            joined = time.monotonic()
    assert up is not None
    assert joined - up <= 2.0
    # The run it was doing belongs to no HQ now: it is released, its cannons exit, and
    # the agent is ready for the next run without a restart.
    assert wait_gone(cannons, timeout=15) == []
    assert a.poll() is None
    hq2.send_signal(signal.SIGINT)
    code, _, err = finish(hq2, timeout=30)
    assert code == 0, err
    listing = subprocess.run(
        cannonade("runs", "--db", str(cluster.db)),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "interrupted" in listing.stdout, listing.stdout + listing.stderr
    stop_agent(a)


def test_killing_cannonade_run_leaves_no_process_behind(tmp_path, target):
    scenario = tmp_path / "s.py"
    scenario.write_text(PER_AGENT)
    run = subprocess.Popen(
        cannonade(
            "run",
            str(scenario),
            "--quiet",
            "--db",
            str(tmp_path / "runs.db"),
            "--host",
            target.url,
            "-u",
            "2",
            "-d",
            "60s",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while target.stats()["requests"] == 0:
            assert time.monotonic() < deadline, "no load arrived"
            time.sleep(0.1)
        tree = descendants(run.pid)
        assert len(tree) >= 2  # the local agent and its cannons
        run.kill()
        run.wait(timeout=10)
        assert wait_gone(tree, timeout=5) == []
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def test_a_scenario_that_hogs_its_cannon_does_not_lose_the_agent(run_cli, target):
    # User code runs in the cannons; the agent's heartbeat thread is elsewhere, so
    # five seconds of a busy loop in every VU is slow, not a lost agent.
    body = """
    import time
    from cannonade import scenario

    @scenario
    async def hog(vu):
        until = time.monotonic() + 5
        while time.monotonic() < until:
            pass
        await vu.http.get("/")
    """
    r = run_cli(body, "--host", target.url, "-u", "2", "--hits", "1", "--cannons", "2")
    assert r.code == 0, r.stderr
    assert not r.summary["cannonade"]["degraded"]
    assert [a["losses"] for a in r.summary["cannonade"]["agents"]] == [0]
    assert r.metric("http_reqs")["count"] == target.stats()["requests"] == 2


def test_an_agent_serves_run_after_run_with_fresh_cannons(cluster, target, tmp_path):
    # Cannons are started ahead of each run, and a run never reuses a process that
    # imported the previous run's scenario.
    pids = tmp_path / "pids"
    pids.mkdir()
    body = PER_AGENT + (
        f"\nimport pathlib\npathlib.Path({str(pids)!r}, str(os.getpid())).touch()\n"
    )
    a = cluster.agent("alpha", "10")
    for expected in (3, 6):
        hq = cluster.hq_run("-u", "3", "--hits", "2", scenario=body, agents=1)
        code, _, err = finish(hq)
        assert code == 0, err
        s = cluster.summary()
        assert s["metrics"]["iterations"]["count"] == 6
        assert len(list(pids.iterdir())) == expected  # the HQ checks it, 2 cannons run it
    stop_agent(a)
