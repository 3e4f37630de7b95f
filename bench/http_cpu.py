"""Client CPU per HTTP request: wrk, cannonade, Locust (and molotov) side by side.

    .venv/bin/python bench/http_cpu.py [--requests N] [--quick] [--tools wrk,cannonade]

One private nginx (pinned to the first CPU) serves a tiny ``GET /``; each client in
turn (pinned to the second CPU) loads it with 64 connections/users for about the same
number of requests. The figure that matters is the client's CPU time (user + sys of its
whole process tree, from ``wait4``) divided by the requests it completed: on a shared
2-core machine that is stable where req/s is not. Results go to a table on stdout and to
``docs/performance.md`` between the ``http_cpu`` markers.

Exit status: 0 when the harness ran (targets print PASS/MISS but never fail the run),
1 on a harness error (nginx would not start, output could not be parsed, ...),
130 when interrupted. Every process started here is stopped on every exit path.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import datetime as dt
import http.client
import itertools
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DOCS = REPO / "docs" / "performance.md"
LOCUST_VENV = BENCH_DIR / ".venv-locust"
PROJECT_BIN = Path(sys.executable).parent
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Client CPU per request measured on this machine kind before any cannonade code existed.
# They only size each run's duration so every tool serves about its share of requests.
REFERENCE_US = {
    "wrk": 12.4,
    "cannonade": 30.0,
    "locust-fast": 325.0,
    "locust-http": 931.0,
    "molotov": 300.0,
}


class HarnessError(Exception):
    """The bench itself could not do its job (as opposed to a tool missing a target)."""


class Interrupted(Exception):
    """SIGTERM arrived; unwinds like Ctrl-C so every ``finally`` stops its processes."""


# --------------------------------------------------------------------------- machine


@dataclass(frozen=True, slots=True)
class Machine:
    nproc: int
    cpu_model: str
    kernel: str
    python: str
    date: str
    commit: str

    def describe(self) -> str:
        return (
            f"{self.nproc} CPUs ({self.cpu_model}), Linux {self.kernel}, "
            f"Python {self.python}, cannonade commit {self.commit}"
        )


def cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("model name", "Model", "Hardware"):
            return " ".join(value.split())
    return "unknown CPU"


def machine_info() -> Machine:
    try:
        model = cpu_model(Path("/proc/cpuinfo").read_text())
    except OSError:
        model = "unknown CPU"
    commit = "unknown"
    git = shutil.which("git")
    if git:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            commit = subprocess.run(
                [git, "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout.strip()
    return Machine(
        nproc=os.cpu_count() or 1,
        cpu_model=model,
        kernel=platform.release(),
        python=platform.python_version(),
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        commit=commit,
    )


def pick_cpus() -> tuple[int, int, str]:
    """(target CPU, client CPU, note). Two distinct CPUs when the machine has them."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        return cpus[0], cpus[1], ""
    return cpus[0], cpus[0], "only one CPU available: nginx and the clients share it"


# --------------------------------------------------------------------------- installs


def _run_install(cmd: Sequence[str], timeout: float) -> tuple[bool, str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"{' '.join(cmd)}: {e}"
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
    return done.returncode == 0, f"{' '.join(cmd)}: exit {done.returncode} {tail[0]}"


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin"):
        p = Path(d) / name
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return None


def ensure_apt_binary(name: str, packages: Sequence[str]) -> tuple[str | None, str]:
    """The binary's path, installing the first Debian package that works; else a reason."""
    found = find_binary(name)
    if found:
        return found, ""
    apt = shutil.which("apt-get")
    if apt is None:
        return None, f"{name} not found and there is no apt-get to install it"
    if os.geteuid() != 0:
        return None, f"{name} not found and installing it needs root (apt-get install)"
    reasons: list[str] = []
    for attempt in range(2):
        if attempt == 1:
            print(f"  apt-get update (to install {name})", flush=True)
            _run_install([apt, "update"], timeout=600)
        for pkg in packages:
            print(f"  apt-get install -y {pkg}", flush=True)
            ok, why = _run_install([apt, "install", "-y", "--no-install-recommends", pkg], 900)
            found = find_binary(name)
            if ok and found:
                return found, ""
            reasons.append(why)
    return None, f"could not install {name}: {reasons[-1] if reasons else 'no package'}"


def ensure_locust_venv(with_molotov: bool) -> tuple[Path | None, str, str]:
    """(venv bin dir or None, why Locust is missing, why molotov is missing).

    Locust and molotov live in their own venv so they never touch the project's.
    """
    bindir = LOCUST_VENV / "bin"
    locust, molotov = bindir / "locust", bindir / "molotov"
    if not locust.exists():
        print(f"  creating {LOCUST_VENV.relative_to(REPO)} and installing locust", flush=True)
        ok, why = _run_install([sys.executable, "-m", "venv", str(LOCUST_VENV)], 300)
        if not ok:
            return None, f"could not create the Locust venv: {why}", "no venv"
        # Keep the venv out of git without touching the project's .gitignore.
        (LOCUST_VENV / ".gitignore").write_text("*\n")
        ok, why = _run_install([str(bindir / "pip"), "install", "-q", "locust"], 1200)
        if not ok or not locust.exists():
            return None, f"pip install locust failed: {why}", "no venv"
    molotov_why = ""
    if with_molotov and not molotov.exists():
        print("  installing molotov into the Locust venv", flush=True)
        ok, why = _run_install([str(bindir / "pip"), "install", "-q", "molotov"], 900)
        if not ok or not molotov.exists():
            molotov_why = f"pip install molotov failed: {why}"
    return bindir, "", molotov_why


# --------------------------------------------------------------------------- /proc


def parse_stat(text: str) -> tuple[int, float]:
    """(ppid, CPU seconds of the process and its reaped children) from /proc/PID/stat."""
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): ppid is field 4, utime..cstime are fields 14..17.
    ppid = int(rest[1])
    ticks = sum(int(x) for x in rest[11:15])
    return ppid, ticks / CLK_TCK


def _all_stats() -> dict[int, tuple[int, float]]:
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stats[int(entry.name)] = parse_stat(Path(entry.path, "stat").read_text())
    return stats


def tree_pids(root: int, stats: dict[int, tuple[int, float]] | None = None) -> list[int]:
    """``root`` and its live descendants (``root`` first), from one scan of /proc."""
    stats = _all_stats() if stats is None else stats
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            found.append(pid)
            todo.extend(children.get(pid, ()))
    return found


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of ``root`` and every live descendant (plus what they reaped)."""
    stats = _all_stats()
    return sum(stats[pid][1] for pid in tree_pids(root, stats))


def read_status_kib(pid: int, fields: Sequence[str] = ("VmRSS", "VmHWM")) -> dict[str, int]:
    """Selected ``/proc/PID/status`` fields in KiB (missing when the process is gone)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in fields:
                out[key] = int(value.split()[0])
    return out


# --------------------------------------------------------------------------- processes


def pinned(cmd: Sequence[str], cpu: int) -> list[str]:
    """``cmd`` behind ``taskset -c CPU`` (which execs it, so the pid is the tool's)."""
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(cpu), *cmd] if taskset else list(cmd)


def _pin_late(pid: int, cpu: int) -> None:
    # Without taskset: pin right after the spawn (children forked before this would
    # escape, which none of the tools here do in their first milliseconds).
    if shutil.which("taskset") is None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(pid, {cpu})


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass(slots=True)
class Finished:
    """A client process that ran to its end (or was stopped at its deadline)."""

    returncode: int
    wall: float
    user: float
    sys: float
    maxrss_kib: int
    timed_out: bool
    stdout: str
    stderr: str

    @property
    def cpu(self) -> float:
        return self.user + self.sys

    def last_error_line(self) -> str:
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        return lines[-1].strip()[:200] if lines else ""


def run_measured(
    cmd: Sequence[str],
    *,
    cpu: int,
    timeout: float,
    workdir: Path,
    env: dict[str, str] | None = None,
    sample: Callable[[int], None] | None = None,
    interval: float = 0.5,
) -> Finished:
    """Run ``cmd`` pinned to ``cpu`` in its own process group and reap it with ``wait4``.

    ``wait4`` gives the CPU time of the process and every descendant it waited for, so
    nothing outside the client is counted. ``sample(pid)`` runs every ``interval``
    seconds while it lives. The group is killed at ``timeout`` and on any exception.
    """
    out_path, err_path = workdir / "stdout.txt", workdir / "stderr.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            pinned(cmd, cpu),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
            cwd=REPO,
            start_new_session=True,
        )
    _pin_late(proc.pid, cpu)
    reaped: tuple[int, int, resource.struct_rusage] | None = None
    timed_out = False
    next_sample = t0
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                reaped = (pid, status, usage)
                break
            now = time.perf_counter()
            if now - t0 > timeout:
                timed_out = True
                _killpg(proc.pid, signal.SIGTERM)
                grace = now + 5.0
                while time.perf_counter() < grace:
                    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                    if pid:
                        reaped = (pid, status, usage)
                        break
                    time.sleep(0.05)
                break
            if sample is not None and now >= next_sample:
                sample(proc.pid)
                next_sample = now + interval
            time.sleep(0.02)
    finally:
        if reaped is None:
            _killpg(proc.pid, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            reaped = (proc.pid, status, usage)
        # The leader is gone; take any straggler of its group with it.
        _killpg(proc.pid, signal.SIGKILL)
        proc.returncode = os.waitstatus_to_exitcode(reaped[1])
    wall = time.perf_counter() - t0
    usage = reaped[2]
    return Finished(
        returncode=proc.returncode,
        wall=wall,
        user=usage.ru_utime,
        sys=usage.ru_stime,
        maxrss_kib=usage.ru_maxrss,
        timed_out=timed_out,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )


def tool_version(cmd: Sequence[str]) -> str:
    """First line a ``--version``-style command prints (wrk prints it with its usage)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30, check=False)
        for line in (done.stdout + "\n" + done.stderr).splitlines():
            if line.strip():
                return line.strip()[:80]
    return "?"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- nginx


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server_tokens off;
    default_type text/plain;

    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location = / {{
            return 200 "ok\\n";
        }}
{status}
    }}
}}
"""

STATUS_LOCATION = """\
        location = /__nginx_status {
            stub_status;
        }"""


def parse_stub_status(text: str) -> int:
    """Total requests nginx has handled, from its ``stub_status`` page."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.split()[:3] == ["server", "accepts", "handled"] and i + 1 < len(lines):
            return int(lines[i + 1].split()[2])
    raise ValueError(f"not a stub_status page: {text[:80]!r}")


class Nginx:
    """A private nginx on 127.0.0.1, pinned to one CPU, stopped by ``close``."""

    def __init__(self, binary: str, cpu: int, workdir: Path) -> None:
        self.binary = binary
        self.cpu = cpu
        self.dir = workdir
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.has_status = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        version = subprocess.run(
            [self.binary, "-V"], capture_output=True, text=True, timeout=10, check=False
        )
        self.has_status = "http_stub_status_module" in version.stderr + version.stdout
        self.port = free_port()
        conf = self.dir / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                dir=self.dir,
                port=self.port,
                # As root the workers would drop to "nobody"; they need nothing, but
                # keeping them root keeps every file in the temp dir reachable.
                user="user root;" if os.geteuid() == 0 else "",
                status=STATUS_LOCATION if self.has_status else "",
            )
        )
        log = (self.dir / "stderr.txt").open("wb")
        cmd = [self.binary, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log")]
        self.proc = subprocess.Popen(
            pinned(cmd, self.cpu),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        _pin_late(self.proc.pid, self.cpu)
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"nginx exited at start: {self._log_tail()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        raise HarnessError(f"nginx did not listen on port {self.port}: {self._log_tail()}")

    def _log_tail(self) -> str:
        parts = []
        for name in ("stderr.txt", "error.log"):
            with contextlib.suppress(OSError):
                parts.append((self.dir / name).read_text(errors="replace").strip()[-400:])
        return " | ".join(p for p in parts if p) or "(no log)"

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.proc.pid) if self.proc else 0.0

    def requests(self) -> int | None:
        """Requests nginx has handled so far, or None without stub_status."""
        if not self.has_status:
            return None
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2.0)
        try:
            conn.request("GET", "/__nginx_status")
            return parse_stub_status(conn.getresponse().read().decode())
        except (OSError, ValueError, http.client.HTTPException):
            return None
        finally:
            conn.close()

    def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            _killpg(self.proc.pid, signal.SIGTERM)  # master and worker: fast shutdown
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                _killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        _killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None


# --------------------------------------------------------------------------- parsing

_WRK_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h),", re.MULTILINE)
_WRK_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True, slots=True)
class Counted:
    """What a client says it did: requests completed, failures among them, seconds."""

    requests: int
    errors: int
    seconds: float | None = None


def parse_wrk(stdout: str) -> Counted:
    m = _WRK_TOTAL.search(stdout)
    if m is None:
        raise ValueError("no 'N requests in T' line in wrk output")
    errors = 0
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", stdout
    )
    if sock:
        errors += sum(int(g) for g in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", stdout)
    if non2xx:
        errors += int(non2xx.group(1))
    return Counted(int(m.group(1)), errors, float(m.group(2)) * _WRK_UNITS[m.group(3)])


def _number(node: object, *keys: str) -> float | None:
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


def parse_summary_export(text: str) -> Counted:
    """cannonade's k6-style ``--summary-export``: ``metrics.http_reqs.count``.

    Also accepts k6's newer ``metrics.<name>.values.count`` shape.
    """
    doc = json.loads(text)
    metrics = doc.get("metrics") if isinstance(doc, dict) else None
    if not isinstance(metrics, dict):
        raise ValueError("summary export has no 'metrics' object")
    count = _number(metrics, "http_reqs", "count")
    if count is None:
        count = _number(metrics, "http_reqs", "values", "count")
    if count is None:
        raise ValueError("summary export has no metrics.http_reqs.count")
    failed = _number(metrics, "http_req_failed", "passes")  # k6: passes = failed requests
    if failed is None:
        rate = _number(metrics, "http_req_failed", "value")
        if rate is None:
            rate = _number(metrics, "http_req_failed", "values", "rate")
        failed = round(rate * count) if rate is not None else 0
    seconds = None
    rate_per_s = _number(metrics, "http_reqs", "rate")
    if rate_per_s is None:
        rate_per_s = _number(metrics, "http_reqs", "values", "rate")
    if rate_per_s:
        seconds = count / rate_per_s
    return Counted(int(count), int(failed), seconds)


def parse_locust_stats(text: str) -> Counted:
    """The ``Aggregated`` row of Locust's ``PREFIX_stats.csv``."""
    for row in csv.DictReader(text.splitlines()):
        if row.get("Name") == "Aggregated":
            requests = int(row["Request Count"])
            errors = int(row["Failure Count"])
            rps = float(row.get("Requests/s") or 0.0)
            return Counted(requests, errors, requests / rps if rps > 0 else None)
    raise ValueError("no 'Aggregated' row in Locust stats CSV")


def parse_molotov(stdout: str) -> Counted:
    found = re.findall(r"SUCCESSES: (\d+) \| FAILURES: (\d+)", stdout)
    if not found:
        raise ValueError("no 'SUCCESSES: N | FAILURES: M' line in molotov output")
    ok, failed = (int(x) for x in found[-1])
    return Counted(ok + failed, failed)


# --------------------------------------------------------------------------- tools


@dataclass(frozen=True, slots=True)
class RunContext:
    url: str
    connections: int
    seconds: int
    workdir: Path


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    label: str
    share: float  # fraction of --requests this tool is sized for
    command: Callable[[RunContext], list[str]]
    count: Callable[[RunContext, Finished], Counted]
    env: Callable[[RunContext], dict[str, str]] = lambda ctx: dict(os.environ)
    ok_exit: frozenset[int] = frozenset({0})


def _wrk_tool(wrk: str) -> Tool:
    return Tool(
        name="wrk",
        label="wrk -t1 (C)",
        share=1.0,
        command=lambda c: [wrk, "-t1", f"-c{c.connections}", f"-d{c.seconds}s", c.url + "/"],
        count=lambda c, f: parse_wrk(f.stdout),
    )


def _cannonade_tool(exe: str) -> Tool:
    def command(c: RunContext) -> list[str]:
        return [
            exe,
            "run",
            str(BENCH_DIR / "scenarios" / "get_root.py"),
            "--host",
            c.url,
            "-u",
            str(c.connections),
            "--duration",
            f"{c.seconds}s",
            "--quiet",
            "--cannons",
            "1",
            "--db",
            str(c.workdir / "runs.db"),
            "--summary-export",
            str(c.workdir / "summary.json"),
        ]

    def count(c: RunContext, f: Finished) -> Counted:
        path = c.workdir / "summary.json"
        if not path.exists():
            raise ValueError("cannonade wrote no --summary-export file")
        return parse_summary_export(path.read_text())

    return Tool(
        name="cannonade",
        label="cannonade (1 cannon)",
        share=1.0,
        command=command,
        count=count,
        ok_exit=frozenset({0, 99}),  # 99: a threshold failed, the numbers still count
    )


def _locust_tool(bindir: Path, name: str, label: str, locustfile: str, share: float) -> Tool:
    def command(c: RunContext) -> list[str]:
        return [
            str(bindir / "locust"),
            "-f",
            str(BENCH_DIR / "locustfiles" / locustfile),
            "--headless",
            "-u",
            str(c.connections),
            "-r",
            str(c.connections),
            "-t",
            f"{c.seconds}s",
            "--host",
            c.url,
            "--csv",
            str(c.workdir / "locust"),
            "--only-summary",
            "--loglevel",
            "WARNING",
            "--exit-code-on-error",
            "0",
        ]

    def env(c: RunContext) -> dict[str, str]:
        return {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}

    return Tool(
        name=name,
        label=label,
        share=share,
        command=command,
        count=lambda c, f: parse_locust_stats((c.workdir / "locust_stats.csv").read_text()),
        env=env,
    )


def _molotov_tool(bindir: Path) -> Tool:
    return Tool(
        name="molotov",
        label="molotov (aiohttp)",
        share=0.1,
        command=lambda c: [
            str(bindir / "molotov"),
            "-w",
            str(c.connections),
            "-d",
            str(c.seconds),
            "-c",
            "--force-shutdown",
            str(BENCH_DIR / "scenarios" / "molotov_get_root.py"),
        ],
        count=lambda c, f: parse_molotov(f.stdout),
        env=lambda c: {**os.environ, "CANNONADE_BENCH_HOST": c.url},
        ok_exit=frozenset({0, 1}),
    )


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class Sample:
    t: float
    client_cpu: float
    nginx_cpu: float
    nginx_requests: int | None


@dataclass(slots=True)
class Row:
    tool: str
    label: str
    seconds_asked: int = 0
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    client_cpu: float = 0.0
    client_user: float = 0.0
    wall: float = 0.0
    nginx_cpu: float = 0.0
    steady_us: float | None = None
    steady_nginx_share: float | None = None
    skipped: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def us_per_req(self) -> float | None:
        return self.client_cpu / self.requests * 1e6 if self.requests else None

    @property
    def user_sys(self) -> str:
        """User and sys µs per request, e.g. ``17.1 / 8.2``: the tool's own code vs the kernel."""
        if not self.requests:
            return "–"
        user = self.client_user / self.requests * 1e6
        sys_ = (self.client_cpu - self.client_user) / self.requests * 1e6
        return f"{user:.1f} / {sys_:.1f}"

    @property
    def client_share(self) -> float:
        return self.client_cpu / self.wall if self.wall > 0 else 0.0

    @property
    def nginx_share(self) -> float:
        return self.nginx_cpu / self.wall if self.wall > 0 else 0.0


def steady_state(samples: Sequence[Sample]) -> tuple[float | None, float | None]:
    """(client CPU µs per request, nginx CPU share) over the run's steady middle.

    Drops the intervals before the first request and the first two with requests
    (interpreter start-up, ramp) and the last one (shutdown). ``stub_status`` requests
    made by the sampler itself (one per sample) are subtracted. None when too short.
    """
    steps = []
    for a, b in itertools.pairwise(samples):
        if a.nginx_requests is None or b.nginx_requests is None:
            return None, None
        steps.append(
            (
                b.t - a.t,
                b.client_cpu - a.client_cpu,
                b.nginx_cpu - a.nginx_cpu,
                b.nginx_requests - a.nginx_requests - 1,
            )
        )
    first = next((i for i, s in enumerate(steps) if s[3] > 0), None)
    if first is None:
        return None, None
    middle = steps[first + 2 : -1]
    if len(middle) < 2:
        return None, None
    secs = sum(s[0] for s in middle)
    cpu = sum(s[1] for s in middle)
    nginx_cpu = sum(s[2] for s in middle)
    reqs = sum(s[3] for s in middle)
    if reqs <= 0 or secs <= 0:
        return None, None
    return cpu / reqs * 1e6, nginx_cpu / secs


def duration_for(requests: float, est_rate: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, math.ceil(requests / max(est_rate, 1.0)))))


def _fmt(x: float | None, spec: str, none: str = "–") -> str:
    return none if x is None else format(x, spec)


@dataclass(frozen=True, slots=True)
class Target:
    text: str
    verdict: str  # PASS, MISS or n/a
    detail: str


def _steady_ratio(a: Row, b: Row) -> str:
    if a.steady_us and b.steady_us:
        return f"; steady state {a.steady_us / b.steady_us:.2f}x"
    return ""


def evaluate_targets(rows: Sequence[Row]) -> list[Target]:
    """The two targets, judged on whole-run CPU per request (start-up included)."""
    by = {r.tool: r for r in rows if r.us_per_req is not None}
    out: list[Target] = []
    wrk, can, fast = by.get("wrk"), by.get("cannonade"), by.get("locust-fast")
    text = "cannonade client CPU per request <= 2x wrk's"
    if wrk and can and wrk.us_per_req and can.us_per_req:
        ratio = can.us_per_req / wrk.us_per_req
        out.append(
            Target(
                text,
                "PASS" if ratio <= 2.0 else "MISS",
                f"{ratio:.2f}x wrk{_steady_ratio(can, wrk)}",
            )
        )
    else:
        out.append(Target(text, "n/a", "wrk or cannonade did not run"))
    text = "Locust FastHttpUser client CPU per request >= 10x cannonade's"
    if fast and can and fast.us_per_req and can.us_per_req:
        ratio = fast.us_per_req / can.us_per_req
        out.append(
            Target(
                text,
                "PASS" if ratio >= 10.0 else "MISS",
                f"{ratio:.1f}x cannonade{_steady_ratio(fast, can)}",
            )
        )
    else:
        out.append(Target(text, "n/a", "Locust FastHttpUser or cannonade did not run"))
    return out


def render_markdown(
    rows: Sequence[Row],
    targets: Sequence[Target],
    machine: Machine,
    notes: Sequence[str],
    command: str,
    versions: Sequence[str] = (),
) -> str:
    wrk_us = next((r.us_per_req for r in rows if r.tool == "wrk" and r.us_per_req), None)
    lines = [
        f"Measured {machine.date} with `{command}` on {machine.describe()}.",
        *([f"Versions: {'; '.join(versions)}."] if versions else []),
        "",
        "| client | requests | req/s | client CPU % | CPU µs/req | user / sys | "
        "steady µs/req | vs wrk | nginx CPU % | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if r.skipped:
            lines.append(f"| {r.label} | skipped: {r.skipped} | | | | | | | | |")
            continue
        us = r.us_per_req
        ratio = f"{us / wrk_us:.1f}x" if us and wrk_us else "–"
        lines.append(
            f"| {r.label} | {r.requests:,} | {r.rate:,.0f} | {r.client_share:.0%} "
            f"| {_fmt(us, '.1f')} | {r.user_sys} | {_fmt(r.steady_us, '.1f')} | {ratio} "
            f"| {r.nginx_share:.0%} | {r.errors:,} |"
        )
    lines += ["", "Targets:", ""]
    lines += [f"- **{t.verdict}** {t.text} ({t.detail})" for t in targets]
    lines += [
        "",
        "*CPU µs/req* is the client's user+sys CPU time (whole process tree, from "
        "`wait4`, start-up included) divided by the requests it completed; *user / sys* "
        "splits it into the client's own code and the kernel (sockets, wake-ups). "
        "*Steady* is the "
        "same over the middle of the run (start-up, ramp and shutdown cut off), from "
        "`/proc` samples against nginx's own request counter. *client CPU %* and "
        "*nginx CPU %* are CPU time over wall time: nginx near 100% means the target, "
        "not the client, set the pace (the per-request cost stays valid).",
    ]
    if notes:
        lines += ["", *[f"- {n}" for n in notes]]
    return "\n".join(lines)


def render_console(rows: Sequence[Row], targets: Sequence[Target]) -> str:
    wrk_us = next((r.us_per_req for r in rows if r.tool == "wrk" and r.us_per_req), None)
    head = (
        f"{'client':<24}{'requests':>10}{'secs':>7}{'req/s':>9}{'cli%':>6}"
        f"{'µs/req':>9}{'user / sys':>14}{'steady':>9}{'vs wrk':>8}{'nginx%':>8}{'errors':>8}"
    )
    out = [head, "-" * len(head)]
    for r in rows:
        if r.skipped:
            out.append(f"{r.label:<24}skipped: {r.skipped}")
            continue
        us = r.us_per_req
        ratio = f"{us / wrk_us:.1f}x" if us and wrk_us else "–"
        out.append(
            f"{r.label:<24}{r.requests:>10,}{r.seconds:>7.1f}{r.rate:>9,.0f}"
            f"{r.client_share:>6.0%}{_fmt(us, '.1f'):>9}{r.user_sys:>14}"
            f"{_fmt(r.steady_us, '.1f'):>9}"
            f"{ratio:>8}{r.nginx_share:>8.0%}{r.errors:>8,}"
        )
    out.append("")
    out += [f"{t.verdict:<5} {t.text} ({t.detail})" for t in targets]
    return "\n".join(out)


def replace_section(text: str, name: str, body: str) -> str:
    """Put ``body`` between ``<!-- name:begin -->`` and ``<!-- name:end -->``.

    The markers are appended when missing; everything outside them is kept.
    """
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    i = text.find(begin)
    j = text.find(end, i + len(begin)) if i >= 0 else -1
    if i >= 0 and j >= 0:
        return text[:i] + block + text[j + len(end) :]
    sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    return f"{text}{sep}{block}\n"


def write_docs_section(name: str, body: str, path: Path = DOCS) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.exists() else "# Performance\n\n"
    path.write_text(replace_section(old, name, body))


# --------------------------------------------------------------------------- main


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into an exception so ``finally`` blocks stop our processes."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Interrupted(signal.Signals(signum).name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run_tool(
    tool: Tool, nginx: Nginx, seconds: int, connections: int, cpu: int, workdir: Path
) -> Row:
    row = Row(tool.name, tool.label, seconds_asked=seconds)
    ctx = RunContext(nginx.url, connections, seconds, workdir / tool.name)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    samples: list[Sample] = []
    t0 = time.perf_counter()

    def sample(pid: int) -> None:
        samples.append(
            Sample(
                time.perf_counter() - t0,
                tree_cpu_seconds(pid),
                nginx.cpu_seconds(),
                nginx.requests(),
            )
        )

    print(f"→ {tool.label}: {connections} connections, {seconds}s", flush=True)
    nginx_before = nginx.cpu_seconds()
    done = run_measured(
        tool.command(ctx),
        cpu=cpu,
        timeout=seconds + 60.0,
        workdir=ctx.workdir,
        env=tool.env(ctx),
        sample=sample,
    )
    row.nginx_cpu = nginx.cpu_seconds() - nginx_before
    row.wall, row.client_cpu, row.client_user = done.wall, done.cpu, done.user
    if done.timed_out:
        row.skipped = f"did not finish within {seconds + 60}s (stopped)"
        return row
    if done.returncode not in tool.ok_exit:
        row.skipped = f"exit {done.returncode}: {done.last_error_line() or '(no stderr)'}"
        return row
    try:
        counted = tool.count(ctx, done)
    except (OSError, ValueError, KeyError) as e:
        raise HarnessError(f"{tool.name}: cannot read its results: {e}") from e
    row.requests, row.errors = counted.requests, counted.errors
    row.seconds = counted.seconds or float(seconds)
    row.steady_us, row.steady_nginx_share = steady_state(samples)
    return row


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument(
        "--requests",
        type=int,
        default=None,
        help="requests per fast client (default 200000, 50000 with --quick); "
        "Locust/molotov get a tenth or a twentieth",
    )
    p.add_argument("--quick", action="store_true", help="short runs, for a smoke check")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument(
        "--tools",
        default="wrk,cannonade,locust-fast,locust-http,molotov",
        help="comma-separated subset, in run order",
    )
    p.add_argument("--no-docs", action="store_true", help="do not touch docs/performance.md")
    p.add_argument(
        "--cannonade",
        type=Path,
        default=PROJECT_BIN / "cannonade",
        help="the cannonade executable (default: the project venv's)",
    )
    args = p.parse_args(argv)
    requests = args.requests or (50_000 if args.quick else 200_000)
    lo, hi = (3, 8) if args.quick else (5, 20)
    wanted = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = set(wanted) - set(REFERENCE_US)
    if unknown:
        p.error(f"unknown tools: {', '.join(sorted(unknown))} (known: {', '.join(REFERENCE_US)})")

    machine = machine_info()
    target_cpu, client_cpu, cpu_note = pick_cpus()
    notes = [n for n in (cpu_note,) if n]
    print(f"{machine.date}: {machine.describe()}", flush=True)
    print(f"nginx on CPU {target_cpu}, clients on CPU {client_cpu}", flush=True)

    try:
        with sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="cannonade-bench-") as tmp:
            return _run(
                args, wanted, requests, lo, hi, machine, target_cpu, client_cpu, notes, Path(tmp)
            )
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Interrupted as e:
        print(f"\ninterrupted by {e}", file=sys.stderr)
        return 130
    except HarnessError as e:
        print(f"harness error: {e}", file=sys.stderr)
        return 1


def _run(
    args: argparse.Namespace,
    wanted: list[str],
    requests: int,
    lo: int,
    hi: int,
    machine: Machine,
    target_cpu: int,
    client_cpu: int,
    notes: list[str],
    tmp: Path,
) -> int:
    nginx_bin, why = ensure_apt_binary("nginx", ["nginx-light", "nginx"])
    if nginx_bin is None:
        raise HarnessError(f"no target: {why}")
    tools: dict[str, Tool] = {}
    skipped: dict[str, str] = {}
    versions = [tool_version([nginx_bin, "-v"]).removeprefix("nginx version: ")]
    if "wrk" in wanted:
        wrk, why = ensure_apt_binary("wrk", ["wrk"])
        if wrk:
            tools["wrk"] = _wrk_tool(wrk)
            versions.append(tool_version([wrk, "-v"]).split(" Copyright")[0])
        else:
            skipped["wrk"] = why
    if "cannonade" in wanted:
        exe = args.cannonade
        if exe.exists():
            tools["cannonade"] = _cannonade_tool(str(exe))
        else:
            skipped["cannonade"] = f"{exe} not found (run from the project venv)"
    locusts = {"locust-fast", "locust-http", "molotov"} & set(wanted)
    if locusts:
        bindir, why_locust, why_molotov = ensure_locust_venv("molotov" in wanted)
        for name in locusts - {"molotov"}:
            if bindir is None:
                skipped[name] = why_locust
        if bindir is not None:
            versions.append(tool_version([str(bindir / "locust"), "--version"]).split(" from ")[0])
            if "locust-fast" in wanted:
                tools["locust-fast"] = _locust_tool(
                    bindir, "locust-fast", "Locust FastHttpUser", "fast.py", 0.1
                )
            if "locust-http" in wanted:
                tools["locust-http"] = _locust_tool(
                    bindir, "locust-http", "Locust HttpUser", "httpuser.py", 0.05
                )
        if "molotov" in wanted:
            if bindir is not None and not why_molotov:
                tools["molotov"] = _molotov_tool(bindir)
                versions.append("molotov " + tool_version([str(bindir / "molotov"), "--version"]))
            else:
                skipped["molotov"] = why_molotov or why_locust
    for name, why in skipped.items():
        print(f"skipping {name}: {why}", flush=True)
    # Fresh bytecode for cannonade's own modules, as an installed wheel has (Locust's
    # come from pip with theirs); otherwise each run would pay to compile them.
    subprocess.run(
        [str(PROJECT_BIN / "python"), "-m", "compileall", "-q", str(REPO / "src")],
        check=False,
        capture_output=True,
        timeout=300,
    )

    nginx = Nginx(nginx_bin, target_cpu, tmp / "nginx")
    rows: list[Row] = []
    try:
        nginx.start()
        print(f"nginx listening on {nginx.url} (stub_status: {nginx.has_status})", flush=True)
        for name in wanted:
            tool = tools.get(name)
            if tool is None:
                label = name
                rows.append(Row(name, label, skipped=skipped.get(name, "not available")))
                continue
            est_rate = 1e6 / REFERENCE_US[name]  # a client-bound guess; clamped anyway
            seconds = duration_for(requests * tool.share, est_rate, lo, hi)
            row = run_tool(tool, nginx, seconds, args.connections, client_cpu, tmp)
            if row.skipped:
                print(f"  {tool.label} failed: {row.skipped}", flush=True)
            rows.append(row)
    finally:
        nginx.close()

    if any(r.steady_nginx_share is not None and r.steady_nginx_share > 0.9 for r in rows):
        notes.append(
            "nginx was CPU-saturated during some runs (nginx CPU near 100%): those clients "
            "were paced by the target; their CPU per request is still a fair cost figure."
        )
    targets = evaluate_targets(rows)
    print()
    print(render_console(rows, targets))
    if not args.no_docs:
        command = "python bench/http_cpu.py" + (" --quick" if args.quick else "")
        if args.requests:
            command += f" --requests {args.requests}"
        write_docs_section(
            "http_cpu", render_markdown(rows, targets, machine, notes, command, versions)
        )
        print(f"\nwrote {DOCS.relative_to(REPO)} (http_cpu section)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
