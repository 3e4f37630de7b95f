"""CURVE between a real HQ (`cannonade run`) and real agents, over loopback.

Each test starts its own HQ on free ports (`--publisher-port 0`; the ports are read
from the HQ's "waiting for" line) and its agents as separate processes. Every process
gets a marker in its environment, inherited by the agents' cannons, so the test can
prove none of them outlived it.
"""

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import Proc, run_command

from cannonade.transport.security import generate

pytestmark = pytest.mark.e2e

MARK_ENV = "CANNONADE_E2E_CURVE_MARK"
GET_ROOT = """
from cannonade import scenario

@scenario
async def root(vu):
    await vu.http.get("/")
"""
PORTS = re.compile(r"--publisher-port (\d+) --results-port (\d+)")


class Cluster:
    """The processes of one test: an HQ, its agents, their logs and keys."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.keys = root / "keys"
        self.allow = root / "allow"
        self.allow.mkdir()
        for name in ("hq", "agent", "rogue", "other-hq"):
            generate(self.keys, name)
        # Only `agent` is admitted; `rogue` is a valid key pair nobody allowed.
        (self.allow / "agent.key").write_bytes((self.keys / "agent.key").read_bytes())
        self.mark = uuid.uuid4().hex
        self.env = dict(os.environ, **{MARK_ENV: self.mark})
        self.procs: list[Proc] = []
        self.hqs = 0

    def _spawn(self, name: str, argv: list[str], export: Path | None = None) -> Proc:
        out, err = self.root / f"{name}.out", self.root / f"{name}.err"
        with out.open("wb") as o, err.open("wb") as e:
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=o, stderr=e, env=self.env
            )
        proc = Proc(name, popen, out, err, export)
        self.procs.append(proc)
        return proc

    def hq(self, *args: str, listen: str = "127.0.0.1", curve: bool = True) -> Proc:
        self.hqs += 1
        d = self.root / f"hq{self.hqs}"
        d.mkdir()
        scenario = d / "scenario.py"
        scenario.write_text(GET_ROOT)
        export = d / "summary.json"
        security = ["--curve-key", str(self.keys / "hq.key_secret")] if curve else []
        security += ["--curve-allow", str(self.allow)] if curve else []
        argv = run_command(
            scenario,
            export,
            "--local-agents",
            "0",
            "--listen",
            listen,
            "--publisher-port",
            "0",
            *security,
            *args,
        )
        return self._spawn(f"hq{self.hqs}", argv, export)

    def ports(self, hq: Proc, timeout: float = 20.0) -> tuple[int, int]:
        """The HQ's ports, from the line it prints once it is bound."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = PORTS.search(hq.stderr())
            if m:
                return int(m.group(1)), int(m.group(2))
            if hq.popen.poll() is not None:
                pytest.fail(f"the HQ exited ({hq.popen.returncode}) before binding:\n{hq.stderr()}")
            time.sleep(0.05)
        pytest.fail(f"the HQ did not bind within {timeout:g}s:\n{hq.stderr()}")

    def agent(self, name: str, key: str, ports: tuple[int, int], hq_key: str = "hq") -> Proc:
        argv = [
            sys.executable,
            "-m",
            "cannonade",
            "agent",
            "--hq",
            "127.0.0.1",
            "--publisher-port",
            str(ports[0]),
            "--results-port",
            str(ports[1]),
            "--cannons",
            "1",
            "--name",
            name,
            "--curve-key",
            str(self.keys / f"{key}.key_secret"),
            "--curve-hq",
            str(self.keys / f"{hq_key}.key"),
        ]
        return self._spawn(name, argv)

    def survivors(self) -> list[str]:
        """Processes still alive with this test's marker: agents, cannons, HQs."""
        needle = f"{MARK_ENV}={self.mark}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile, or not ours to read
            if needle in environ.split(b"\0"):
                argv = cmdline.replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name}: {argv}")
        return found

    def finish(self) -> None:
        """Stop what is still running (agents), then: clean exits, no crash, no orphan."""
        for p in self.procs:
            code = p.stop()
            assert code == 0 or p.name.startswith("hq"), f"{p.name} exited {code}:\n{p.stderr()}"
            assert "Traceback" not in p.stderr(), f"{p.name}:\n{p.stderr()}"
        deadline = time.monotonic() + 5.0
        while self.survivors() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.survivors() == []

    def kill_all(self) -> None:
        for p in self.procs:
            if p.popen.poll() is None:
                p.popen.kill()
                p.popen.wait(10)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.kill_all()  # only if the test failed before finish(); a no-op otherwise


def agent_names(summary: dict) -> list[str]:
    return [a["name"] for a in summary["cannonade"]["agents"]]


# -- admitted -----------------------------------------------------------------------------
def test_an_allowed_agent_runs_and_the_counts_are_exact(cluster, target):
    hq = cluster.hq(
        "--min-agents", "1", "--wait-agents", "5s", "-u", "2", "--hits", "3", "--host", target.url
    )
    agent = cluster.agent("curve-agent", "agent", cluster.ports(hq))
    code = hq.wait(60)
    assert str(agent.popen.pid) in "\n".join(cluster.survivors())  # the scan sees ours
    assert code == 0, hq.stderr()
    summary = hq.summary()
    stats = target.stats()
    assert summary["metrics"]["iterations"]["count"] == 6
    assert summary["metrics"]["http_reqs"]["count"] == stats["requests"] == 6
    assert agent_names(summary) == ["curve-agent"]
    (agent,) = summary["cannonade"]["agents"]
    assert agent["problems"] == []
    assert agent["intervals"] == agent["expected_intervals"]
    assert summary["cannonade"]["degraded"] is False
    assert summary["cannonade"]["notes"] == []  # nothing refused, nothing rejected
    cluster.finish()


# -- refused ------------------------------------------------------------------------------
def test_an_agent_without_the_right_keys_never_joins(cluster, target):
    # Two HQs at once, each with its one intruder: one whose key pair nobody allowed,
    # one with an allowed key that pins another HQ's public key.
    intruders = {"unknown-agent-key": ("rogue", "hq"), "wrong-hq-key": ("agent", "other-hq")}
    hqs, agents = {}, {}
    for name, (key, hq_key) in intruders.items():
        hq = cluster.hq(
            "--min-agents", "1", "--wait-agents", "5s", "--hits", "1", "--host", target.url
        )
        agents[name] = cluster.agent(name, key, cluster.ports(hq), hq_key=hq_key)
        hqs[name] = hq
    t0 = time.monotonic()
    for name, hq in hqs.items():
        code = hq.wait(30)
        assert code == 1, f"{name}: {hq.stderr()}"
        assert "only 0 of 1 agents were ready after 5s" in hq.stderr(), name
        summary = hq.summary()
        assert agent_names(summary) == [], name
        assert name not in hq.stdout() + hq.stderr()
        assert summary["metrics"].get("http_reqs", {}).get("count", 0) == 0, name
        refusals = [n for n in summary["cannonade"]["notes"] if "allow-list" in n]
        # The HQ's gatekeeper sees (and counts) an unknown key; a client that pinned
        # another HQ's key fails the CURVE handshake before any key reaches it.
        assert bool(refusals) == (name == "unknown-agent-key"), (name, refusals)
    assert time.monotonic() - t0 < 15
    assert target.stats()["requests"] == 0
    cluster.finish()
    # Each refused agent says why it never joined, once.
    unknown = agents["unknown-agent-key"].stderr()
    assert unknown.count("the HQ refused this agent's CURVE key") == 1, unknown
    wrong = agents["wrong-hq-key"].stderr()
    assert wrong.count("does --curve-hq hold the HQ's public key?") == 1, wrong


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory, cannonade_target):
    """An HQ with an allowed agent and, knocking since a second before it, a rogue one."""
    cannonade_target.reset()
    cluster = Cluster(tmp_path_factory.mktemp("mixed"))
    try:
        hq = cluster.hq(
            "--min-agents",
            "1",
            "--wait-agents",
            "5s",
            "-u",
            "2",
            "--hits",
            "2",
            "--host",
            cannonade_target.url,
        )
        ports = cluster.ports(hq)
        cluster.agent("rogue-agent", "rogue", ports)
        time.sleep(1.0)
        cluster.agent("good-agent", "agent", ports)
        code = hq.wait(60)
        summary = hq.summary()
        stats = cannonade_target.stats()
        cluster.finish()
        yield code, summary, stats, hq
    finally:
        cluster.kill_all()


def test_only_the_allowed_of_two_agents_takes_part(mixed_run):
    code, summary, stats, hq = mixed_run
    assert code == 0, hq.stderr()
    assert agent_names(summary) == ["good-agent"]
    assert "rogue-agent" not in hq.stdout()
    assert summary["metrics"]["http_reqs"]["count"] == stats["requests"] == 4


def test_refused_handshakes_reach_the_summary(mixed_run):
    code, summary, _stats, hq = mixed_run
    assert code == 0, hq.stderr()
    # The rogue agent's handshakes were counted by the HQ's gatekeeper (one per try:
    # zmq reconnects every 0.1-1 s) and the count is in the summary.
    notes = summary["cannonade"]["notes"]
    refused = [n for n in notes if "not on the allow-list" in n]
    assert len(refused) == 1, notes
    assert int(refused[0].split()[0]) >= 1, notes


# -- binding ------------------------------------------------------------------------------
def test_a_non_loopback_listen_without_curve_is_refused(cluster):
    hq = cluster.hq("--min-agents", "1", "--hits", "1", listen="0.0.0.0", curve=False)
    code = hq.wait(30)
    assert code == 1
    err = hq.stderr()
    assert "error:" in err
    assert "CURVE" in err
    assert "0.0.0.0" in err
    assert not hq.export.exists()  # refused before anything ran
    cluster.finish()


def test_half_a_curve_configuration_is_refused(cluster):
    hq = cluster.hq(
        "--min-agents",
        "1",
        "--hits",
        "1",
        "--curve-key",
        str(cluster.keys / "hq.key_secret"),
        listen="0.0.0.0",
        curve=False,
    )
    assert hq.wait(30) == 1
    assert "--curve-key and --curve-allow go together" in hq.stderr()
    cluster.finish()


def test_a_non_loopback_listen_with_curve_binds(cluster):
    # Accepted: it binds and waits for agents (none come, so it gives up with exit 1).
    hq = cluster.hq("--min-agents", "1", "--wait-agents", "1s", "--hits", "1", listen="0.0.0.0")
    cluster.ports(hq)
    assert hq.wait(30) == 1
    assert "only 0 of 1 agents were ready" in hq.stderr()
    assert "CURVE" not in hq.stderr()
    cluster.finish()
