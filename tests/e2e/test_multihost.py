"""An HQ and two agents on three "hosts": Linux network namespaces joined by a bridge.

    ns HQ   10.77.0.1 on br0   the HQ (`cannonade run`, CURVE on) and the target
      ├─ veth ── ns A  10.77.0.2   agent-a, 2 cannons
      └─ veth ── ns B  10.77.0.3   agent-b, 2 cannons

Each namespace has its own loopback and its own ports, so nothing can pass over
127.0.0.1: every command, status, delta and HTTP request crosses a network interface,
as between machines. The test makes the namespaces itself (names carry its pid), and
its fixture deletes them whatever happens. It needs root (or CAP_NET_ADMIN); where
namespaces cannot be created it is skipped.
"""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import Proc, run_command

from cannonade.transport.security import generate

pytestmark = pytest.mark.e2e

HQ_ADDR = "10.77.0.1"
AGENTS = {"a": "10.77.0.2", "b": "10.77.0.3"}
TARGET_PORT = 8080
MARK_ENV = "CANNONADE_E2E_NETNS_MARK"
READY = re.compile(r"cannonade target listening on (\S+)")
GET_ROOT = """
from cannonade import scenario

@scenario
async def root(vu):
    await vu.http.get("/")
"""


def ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


def must(*args: str) -> None:
    r = ip(*args)
    assert r.returncode == 0, f"ip {' '.join(args)}: {r.stderr.strip()}"


@dataclass
class Net:
    """Three namespaces (hq, a, b), the processes the test ran in them, and their logs."""

    ns: dict[str, str]
    root: Path
    mark: str = field(default_factory=lambda: uuid.uuid4().hex)
    procs: list[Proc] = field(default_factory=list)

    def inodes(self) -> set[int]:
        out = set()
        for name in self.ns.values():
            with contextlib.suppress(OSError):
                out.add(os.stat(f"/run/netns/{name}").st_ino)
        return out

    def spawn(self, role: str, name: str, argv: list[str]) -> Proc:
        out, err = self.root / f"{name}.out", self.root / f"{name}.err"
        env = dict(os.environ, **{MARK_ENV: self.mark})
        with out.open("wb") as o, err.open("wb") as e:
            popen = subprocess.Popen(
                ["ip", "netns", "exec", self.ns[role], *argv],
                stdin=subprocess.DEVNULL,
                stdout=o,
                stderr=e,
                env=env,
            )
        proc = Proc(name, popen, out, err)
        self.procs.append(proc)
        return proc

    def run_in(self, role: str, code: str, *args: str) -> str:
        """A short Python snippet inside a namespace; its stdout."""
        r = subprocess.run(
            ["ip", "netns", "exec", self.ns[role], sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        assert r.returncode == 0, r.stderr
        return r.stdout

    def survivors(self) -> list[str]:
        """Live processes in one of the namespaces, or carrying this test's marker."""
        nets = {f"net:[{i}]" for i in self.inodes()}
        needle = f"{MARK_ENV}={self.mark}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or entry.name == str(os.getpid()):
                continue
            try:
                in_ns = os.readlink(entry / "ns" / "net") in nets
                marked = needle in (entry / "environ").read_bytes().split(b"\0")
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if (in_ns or marked) and cmdline:  # a zombie has no cmdline: it is dead
                argv = cmdline.replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name}: {argv}")
        return found

    def kill_leftovers(self, namespaces: list[str]) -> None:
        for p in self.procs:
            if p.popen.poll() is None:
                p.popen.kill()
                p.popen.wait(10)
        for name in namespaces:
            # Anything else in our namespaces (a cannon whose agent was killed) is ours.
            r = ip("netns", "pids", name)
            for pid in r.stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)


def _wire(ns: dict[str, str]) -> None:
    hq = ns["hq"]
    for name in ns.values():
        must("-n", name, "link", "set", "lo", "up")
    must("-n", hq, "link", "add", "br0", "type", "bridge")
    must("-n", hq, "addr", "add", f"{HQ_ADDR}/24", "dev", "br0")
    must("-n", hq, "link", "set", "br0", "up")
    for role, addr in AGENTS.items():
        port = f"veth-{role}"
        # Both ends are made inside their namespaces: no name is ever taken on the host.
        must(
            "link",
            "add",
            port,
            "netns",
            hq,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns[role],
        )
        must("-n", hq, "link", "set", port, "master", "br0")
        must("-n", hq, "link", "set", port, "up")
        must("-n", ns[role], "addr", "add", f"{addr}/24", "dev", "eth0")
        must("-n", ns[role], "link", "set", "eth0", "up")


@pytest.fixture
def net(tmp_path):
    tag = f"cnd-{os.getpid()}-{uuid.uuid4().hex[:4]}"  # unique per test, traceable to us
    ns = {role: f"{tag}-{role}" for role in ("hq", "a", "b")}
    net = Net(ns, tmp_path)
    created: list[str] = []
    try:
        for name in ns.values():
            try:
                r = ip("netns", "add", name)
            except FileNotFoundError:
                pytest.skip("cannot create network namespaces: no `ip` command (iproute2)")
            if r.returncode != 0:
                pytest.skip(
                    f"cannot create network namespaces (euid {os.geteuid()}): "
                    f"`ip netns add {name}` failed: {r.stderr.strip()}"
                )
            created.append(name)
        _wire(ns)
        yield net
    finally:
        net.kill_leftovers(created)
        errors = []
        for name in created:
            r = ip("netns", "delete", name)
            if r.returncode != 0:
                errors.append(f"ip netns delete {name}: {r.stderr.strip()}")
        assert not errors, errors


def start_target(net: Net) -> str:
    target = net.spawn(
        "hq",
        "target",
        [
            sys.executable,
            "-m",
            "cannonade.target",
            "--host",
            HQ_ADDR,
            "--port",
            str(TARGET_PORT),
            "--allow-remote",
        ],
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        m = READY.search(target.stdout())
        if m:
            return m.group(1)
        if target.popen.poll() is not None:
            break
        time.sleep(0.05)
    pytest.fail(f"the target did not start:\n{target.stdout()}\n{target.stderr()}")


STATS = """
import json, sys, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
with opener.open(sys.argv[1] + "/__stats", timeout=5) as r:
    print(json.dumps(json.loads(r.read())))
"""

REACH = """
import socket, sys
port = int(sys.argv[1])
for host in sys.argv[2:]:
    try:
        socket.create_connection((host, port), timeout=2).close()
        print(host, "open")
    except OSError:
        print(host, "closed")
"""


def target_stats(net: Net, url: str) -> dict:
    return json.loads(net.run_in("hq", STATS, url))


def test_the_namespaces_are_separate_hosts(net):
    """The harness itself: an agent's namespace reaches the HQ's address over the
    bridge, and its own loopback is not the HQ's."""
    url = start_target(net)
    assert url == f"http://{HQ_ADDR}:{TARGET_PORT}"
    for role in AGENTS:
        seen = net.run_in(role, REACH, str(TARGET_PORT), HQ_ADDR, "127.0.0.1").split("\n")
        assert seen[:2] == [f"{HQ_ADDR} open", "127.0.0.1 closed"], (role, seen)
    assert target_stats(net, url)["requests"] == 0
    # The orphan scan sees a live process in the namespaces (so its empty answer means
    # something), and nothing of the test once it is stopped.
    (target,) = net.procs
    assert [s.split(":")[0] for s in net.survivors()] == [str(target.popen.pid)]
    assert target.stop() == 0
    assert "Traceback" not in target.stderr()
    assert net.survivors() == []


def test_hq_and_two_agents_on_three_hosts(net):
    keys, allow = net.root / "keys", net.root / "allow"
    allow.mkdir()
    generate(keys, "hq")
    for role in AGENTS:
        generate(keys, f"agent-{role}")
        (allow / f"agent-{role}.key").write_bytes((keys / f"agent-{role}.key").read_bytes())

    url = start_target(net)
    scenario = net.root / "scenario.py"
    scenario.write_text(GET_ROOT)
    export = net.root / "summary.json"
    hq = net.spawn(
        "hq",
        "hq",
        run_command(
            scenario,
            export,
            "--local-agents",
            "0",
            "--min-agents",
            "2",
            "--wait-agents",
            "10s",
            "--listen",
            HQ_ADDR,
            "--publisher-port",
            "5000",
            "--results-port",
            "5001",
            "--curve-key",
            str(keys / "hq.key_secret"),
            "--curve-allow",
            str(allow),
            "-u",
            "2:3",
            "--hits",
            "2",
            "--host",
            url,
        ),
    )
    agents = [
        net.spawn(
            role,
            f"agent-{role}",
            [
                sys.executable,
                "-m",
                "cannonade",
                "agent",
                "--hq",
                HQ_ADDR,
                "--publisher-port",
                "5000",
                "--results-port",
                "5001",
                "--cannons",
                "2",
                "--name",
                f"agent-{role}",
                "--curve-key",
                str(keys / f"agent-{role}.key_secret"),
                "--curve-hq",
                str(keys / "hq.key"),
            ],
        )
        for role in AGENTS
    ]

    code = hq.wait(60)
    stats = target_stats(net, url)
    for p in [*agents, *net.procs[:1]]:  # the agents, then the target
        assert p.stop() == 0, f"{p.name}:\n{p.stderr()}"
    for p in net.procs:
        assert "Traceback" not in p.stderr(), f"{p.name}:\n{p.stderr()}"
    deadline = time.monotonic() + 5.0
    while net.survivors() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert net.survivors() == []

    assert code == 0, hq.stderr()
    summary = json.loads(export.read_text())
    metrics = summary["metrics"]
    assert metrics["iterations"]["count"] == 10  # 2 users x 2 hits, then 3 x 2
    assert metrics["http_reqs"]["count"] == stats["requests"] == 10
    by_name = {a["name"]: a for a in summary["cannonade"]["agents"]}
    assert sorted(by_name) == ["agent-a", "agent-b"]
    for a in by_name.values():
        assert a["cannons"] == 2
        assert a["problems"] == []
        assert a["losses"] == 0
        assert a["intervals"] == a["expected_intervals"]
    assert summary["cannonade"]["degraded"] is False
