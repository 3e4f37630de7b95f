"""`cannonade submit` and `cannonade runs --hq` against a real `cannonade hq --api` with a
real agent and the embedded target: exact counts, exit codes, Ctrl-C, the token.

Every process a test starts is stopped in a ``finally`` (SIGTERM, a wait, then SIGKILL
for whatever is left under it)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import descendants, wait_gone

from cannonade.cli.history import RUNS_HEADER

pytestmark = pytest.mark.e2e

TOKEN = "submit-e2e-token-0123456789"
API_LINE = re.compile(r"API on (http://\S+) ")
PORTS_LINE = re.compile(r"commands on \S+:(\d+), results on \S+:(\d+)")
HTTP_REQS = re.compile(r"^  http_reqs \.+ ([\d,]+) ", re.MULTILINE)

SCENARIO = """
from cannonade import scenario

@scenario
async def hit(vu):
    await vu.http.get("/bytes/8", name="hit")
"""


def cannonade(*args):
    return [sys.executable, "-m", "cannonade", *args]


def flags(**options):
    """Command-line options from keywords: graceful_stop="2s" is --graceful-stop 2s,
    wait=True is --wait."""
    out = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        out += [flag] if value is True else [flag, str(value)]
    return out


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "CANNONADE_TOKEN"}
    return {**env, **extra}


class Service:
    """`cannonade hq --api 127.0.0.1:0` on free ports, and optionally one agent."""

    def __init__(self, tmp: Path, *hq_args: str) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.hq_err = tmp / "hq.err"
        self.hq = self._start(
            "hq",
            "hq",
            *flags(api="127.0.0.1:0", db=tmp / "hq.db", publisher_port=0, results_port=0),
            *hq_args,
        )
        self.url, self.ports = self._wait_ready()

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        with (self.tmp / f"{name}.out").open("wb") as o, (self.tmp / f"{name}.err").open("wb") as e:
            p = subprocess.Popen(
                cannonade(*args), stdin=subprocess.DEVNULL, stdout=o, stderr=e, env=clean_env()
            )
        self.procs.append(p)
        return p

    def _wait_ready(self, timeout: float = 20.0) -> tuple[str, tuple[str, str]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.hq_err.read_text(errors="replace")
            api, ports = API_LINE.search(text), PORTS_LINE.search(text)
            if api and ports:
                return api.group(1), (ports.group(1), ports.group(2))
            assert self.hq.poll() is None, text
            time.sleep(0.05)
        pytest.fail(f"the HQ did not start:\n{self.hq_err.read_text()}")

    def add_agent(self) -> None:
        pub, res = self.ports
        self._start(
            "agent",
            "agent",
            *flags(hq="127.0.0.1", publisher_port=pub, results_port=res, cannons=1, name="a1"),
        )

    def stop(self) -> None:
        # Agents first: an HQ stopped first would leave them looking for it.
        pids = [d for p in self.procs for d in descendants(p.pid)]
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        for pid in wait_gone(pids, 5.0):
            os.kill(pid, signal.SIGKILL)

    def logs(self) -> str:
        return "\n".join(f.read_text(errors="replace") for f in sorted(self.tmp.glob("*.err")))


@pytest.fixture
def service(tmp_path):
    made: list[Service] = []

    def start(*hq_args: str, agent: bool = True) -> Service:
        s = Service(tmp_path, *hq_args)
        made.append(s)
        if agent:
            s.add_agent()
        return s

    try:
        yield start
    finally:
        for s in made:
            s.stop()


@pytest.fixture
def scenario(tmp_path) -> Path:
    path = tmp_path / "scenario.py"
    path.write_text(SCENARIO)
    return path


def cli(*args: str, timeout: float = 45, env=None) -> subprocess.CompletedProcess:
    r = subprocess.run(
        cannonade(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env or clean_env(),
        stdin=subprocess.DEVNULL,
    )
    assert "Traceback (most recent call last)" not in r.stderr, r.stderr
    return r


def test_submit_wait_exit_codes_counts_and_the_remote_list(service, scenario, target, tmp_path):
    hq = service()
    export = tmp_path / "summary.json"
    passed = cli(
        "submit",
        str(scenario),
        *flags(
            hq=hq.url, users=2, duration="2s", host=target.url, wait=True, summary_export=export
        ),
    )
    assert passed.returncode == 0, passed.stdout + passed.stderr + hq.logs()
    first_id, *summary = passed.stdout.splitlines()
    assert re.fullmatch(r"[\w-]+", first_id)
    reported = int(HTTP_REQS.search(passed.stdout).group(1).replace(",", ""))
    assert reported > 0
    assert reported == target.stats()["requests"]
    assert "requests" in passed.stderr  # progress lines while it ran
    assert f"run {first_id}: finished, passed" in summary
    assert export.exists()

    failing = cli(
        "submit",
        str(scenario),
        *flags(
            hq=hq.url,
            users=1,
            duration="1s",
            host=target.url,
            wait=True,
            quiet=True,
            threshold="http_req_duration: p(95)<0",
        ),
    )
    assert failing.returncode == 99, failing.stdout + failing.stderr
    second_id = failing.stdout.splitlines()[0]
    assert "✗ http_req_duration: p(95)<0" in failing.stdout
    assert failing.stderr == ""  # -q: no progress lines

    listed = cli("runs", "--hq", hq.url)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert tuple(lines[0].split()) == RUNS_HEADER
    # STARTED is two words (date, time): REQUESTS is the 8th.
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows[first_id][1:4] == ["finished", "passed", "scenario.py"]
    assert rows[first_id][7] == f"{reported:,}"
    assert rows[second_id][1:3] == ["finished", "failed"]
    newest = cli("runs", "--hq", hq.url, "--status", "finished", "--limit", "1")
    assert [line.split()[0] for line in newest.stdout.splitlines()[1:]] == [second_id]


def test_ctrl_c_stops_the_remote_run_and_exits_130(service, scenario, target, tmp_path):
    hq = service()
    err = tmp_path / "submit.err"
    with err.open("wb") as e:
        submit = subprocess.Popen(
            cannonade(
                "submit",
                str(scenario),
                *flags(
                    hq=hq.url,
                    users=1,
                    duration="40s",
                    host=target.url,
                    graceful_stop="2s",
                    wait=True,
                ),
            ),
            stdout=subprocess.PIPE,
            stderr=e,
            stdin=subprocess.DEVNULL,
            env=clean_env(),
            text=True,
        )
    try:
        deadline = time.monotonic() + 25
        while "requests" not in err.read_text() and time.monotonic() < deadline:
            assert submit.poll() is None, err.read_text() + hq.logs()
            time.sleep(0.1)
        assert "requests" in err.read_text(), err.read_text() + hq.logs()
        submit.send_signal(signal.SIGINT)
        out, _ = submit.communicate(timeout=25)
    finally:
        if submit.poll() is None:
            submit.kill()
            submit.wait(5)
    text = err.read_text()
    assert submit.returncode == 130, out + text + hq.logs()
    assert "Traceback" not in text
    run_id = out.splitlines()[0]
    assert f"stopping run {run_id}" in text
    assert f"run {run_id}: interrupted" in out
    listed = cli("runs", "--hq", hq.url)
    assert listed.stdout.splitlines()[1].split()[:2] == [run_id, "interrupted"]


def test_a_token_hq_refuses_submit_without_the_token(service, scenario, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    hq = service("--token-file", str(token_file), agent=False)

    refused = cli("submit", str(scenario), "--hq", hq.url, "-u", "1")
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr == "error: a valid token is needed (Authorization: Bearer TOKEN)\n"
    wrong = cli("runs", "--hq", hq.url, env=clean_env(CANNONADE_TOKEN="x" * 20))
    assert (wrong.returncode, wrong.stderr) == (1, refused.stderr)

    by_file = cli("submit", str(scenario), "--hq", hq.url, "--token-file", str(token_file))
    assert by_file.returncode == 0, by_file.stderr
    in_url = hq.url.replace("http://", f"http://cannonade:{TOKEN}@")
    by_url = cli("submit", str(scenario), "--hq", in_url, "--name", "via-url")
    assert by_url.returncode == 0, by_url.stderr
    by_env = cli("runs", "--hq", hq.url, "--status", "queued", env=clean_env(CANNONADE_TOKEN=TOKEN))
    assert by_env.returncode == 0, by_env.stderr
    ids = [line.split()[0] for line in by_env.stdout.splitlines()[1:]]
    assert sorted(ids) == sorted([by_file.stdout.strip(), by_url.stdout.strip()])
    assert "via-url" in by_env.stdout


def test_submit_checks_a_yaml_plan_and_sends_it_with_its_data(service, target, tmp_path):
    plans = Path(__file__).parent.parent / "plans"
    for name in ("login.yaml", "users.csv"):
        (tmp_path / name).write_bytes((plans / name).read_bytes())
    hq = service()
    ran = cli(
        "submit",
        str(tmp_path / "login.yaml"),
        *flags(hq=hq.url, host=target.url, wait=True, quiet=True),
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr + hq.logs()
    stats = target.stats()["paths"]
    assert stats["/login"] == stats["/private"] == 8
    # A broken plan is refused here, with every problem, before anything is sent.
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenarios:\n  a: { executor: warp, flow: [] }\n")
    refused = cli("submit", str(bad), *flags(hq=hq.url))
    assert refused.returncode == 1
    assert f"{bad}:2:18:" in refused.stderr
    assert "cycles" not in refused.stderr.split("is not one of")[0]
    assert "warp" in refused.stderr
