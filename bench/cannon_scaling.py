"""Scaling from one cannon to two: client CPU per request, and throughput.

    .venv/bin/python bench/cannon_scaling.py [--repeats 5] [--quick] [--modes cpu,throughput]

``cannonade run`` is an HQ process, one local agent process and N cannon processes
(one event loop each). This bench runs ``bench/scenarios/get_root.py`` against a private
nginx with ``--cannons 1`` and ``--cannons 2``, interleaved so the cannon count
alternates (1, 2, 1, 2, ...), and reports medians. Two modes:

* ``cpu`` (the headline): fixed open-model arrival rates that nginx serves with most
  of a core to spare: R/2 and R requests/s per cannon (default R = 10,000), i.e. 1
  cannon at R/2 and at R, 2 cannons at R and at 2R in total. What is compared is the
  CPU the cannonade process tree spends per request in the steady middle of the run,
  per process role (HQ, agent, cannons), read from ``/proc/PID/stat``. Scaling
  efficiency = (CPU per request with 1 cannon) / (CPU per request with 2 cannons), at
  the same load per cannon (the headline: what a second cannon adds to capacity) and
  at the same total load (each of the two cannons then runs at half the rate).
* ``throughput``: a closed model, 64 VUs per cannon, no think time; requests per
  second with 1 and 2 cannons, with nginx's CPU beside it. On a 2-core machine two busy
  cannons and nginx share the same two cores, so this ratio is bounded by the machine,
  not by cannonade; the CPU columns show by how much.

Requests are counted twice: by nginx (an access log of one status per line, for the
whole run; ``stub_status`` for the steady window) and by cannonade's
``--summary-export``; the two whole-run counts must match. The CPU that neither
cannonade nor nginx used (``/proc/stat``; the harness and anything else running) is
reported too. Results go to stdout and to ``docs/performance.md`` between the
``cannon_scaling`` markers.

Exit status: 0 when the harness ran (the 90% target prints PASS/MISS but never fails
the run), 1 on a harness error, 130 when interrupted. Every process started here is
stopped on every exit path.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from http_cpu import (
    BENCH_DIR,
    CLK_TCK,
    DOCS,
    PROJECT_BIN,
    REPO,
    HarnessError,
    Interrupted,
    Machine,
    Nginx,
    _killpg,
    ensure_apt_binary,
    free_port,
    machine_info,
    parse_summary_export,
    sigterm_unwinds,
    tool_version,
    tree_pids,
    write_docs_section,
)

SECTION = "cannon_scaling"
SCENARIO = BENCH_DIR / "scenarios" / "get_root.py"
ROLES = ("hq", "agent", "cannon")
TARGET_EFFICIENCY = 0.90
VUS_PER_CANNON = 64
SAMPLE_INTERVAL = 0.5
WARM_UP = 2.0  # seconds after the first request that the steady window skips
COOL_DOWN = 1.0  # seconds before the last request that it skips
MIN_WINDOW = 3.0


# --------------------------------------------------------------------------- /proc


def parse_own_cpu(stat: str) -> float:
    """CPU seconds (utime + stime) of the process itself, from ``/proc/PID/stat``.

    Unlike ``http_cpu.parse_stat`` this leaves out reaped children (cutime, cstime), so
    the agent is not charged for its cannons once they exit.
    """
    rest = stat[stat.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def classify(argv: Sequence[str], *, root: bool) -> str:
    """The role of a process of a ``cannonade run`` tree, from its command line."""
    if root:
        return "hq"
    if "cannonade.agent.cannon" in argv:
        return "cannon"
    if "agent" in argv:
        return "agent"
    return "other"


def parse_proc_stat_busy(text: str) -> float:
    """Busy CPU seconds of the whole machine (all cores) from ``/proc/stat``'s ``cpu`` line.

    Busy is user + nice + system + irq + softirq; idle, iowait and steal are left out.
    """
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in parts[1:8])
            return (user + nice + system + irq + softirq) / CLK_TCK
    raise ValueError("no aggregate 'cpu' line in /proc/stat")


def _machine_busy() -> float | None:
    with contextlib.suppress(OSError, ValueError):
        return parse_proc_stat_busy(Path("/proc/stat").read_text())
    return None


def _read_argv(pid: int) -> list[str]:
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    return []


def _read_own_cpu(pid: int) -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return parse_own_cpu(Path(f"/proc/{pid}/stat").read_text())
    return None


# --------------------------------------------------------------------------- target


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
    log_format status_only '$status';
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
            access_log {dir}/access.log status_only buffer=256k flush=200ms;
            return 200 "ok\\n";
        }}
        location = /__nginx_status {{
            stub_status;
        }}
    }}
}}
"""


def parse_dropped(text: str) -> int:
    """``metrics.dropped_iterations.count`` of a ``--summary-export`` (0 when absent).

    Open-model arrivals still queued when the run ended: the schedule had slipped.
    """
    doc = json.loads(text)
    node = doc.get("metrics", {}).get("dropped_iterations", {}) if isinstance(doc, dict) else {}
    if not isinstance(node, dict):
        return 0
    count = node.get("count", node.get("values", {}).get("count", 0))
    return int(count) if isinstance(count, int | float) and not isinstance(count, bool) else 0


def parse_access_log(text: str) -> tuple[int, int]:
    """(requests, non-2xx among them) from an access log of one status per line."""
    total = bad = 0
    for line in text.splitlines():
        status = line.strip()
        if not status:
            continue
        total += 1
        if not status.startswith("2"):
            bad += 1
    return total, bad


class CountingNginx(Nginx):
    """``http_cpu.Nginx`` (unpinned), logging one status per ``GET /`` to count them."""

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        version = subprocess.run(
            [self.binary, "-V"], capture_output=True, text=True, timeout=10, check=False
        )
        if "http_stub_status_module" not in version.stderr + version.stdout:
            raise HarnessError(f"{self.binary} has no stub_status module (need nginx-light)")
        self.has_status = True
        self.port = free_port()
        conf = self.dir / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                dir=self.dir,
                port=self.port,
                user="user root;" if os.geteuid() == 0 else "",
            )
        )
        log = (self.dir / "stderr.txt").open("wb")
        cmd = [self.binary, "-p", str(self.dir), "-c", str(conf), "-e", str(self.dir / "error.log")]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise HarnessError(f"nginx exited at start: {self._log_tail()}")
            if self.requests() is not None:
                return
            time.sleep(0.05)
        raise HarnessError(f"nginx did not answer on port {self.port}: {self._log_tail()}")

    @property
    def access_log(self) -> Path:
        return self.dir / "access.log"

    def log_size(self) -> int:
        try:
            return self.access_log.stat().st_size
        except FileNotFoundError:
            return 0

    def logged_since(self, offset: int, settle: float = 0.6, limit: float = 6.0) -> tuple[int, int]:
        """(requests, non-2xx) logged after byte ``offset``, once the log stops growing."""
        deadline = time.monotonic() + limit
        size = self.log_size()
        while time.monotonic() < deadline:
            time.sleep(settle)
            now = self.log_size()
            if now == size:
                break
            size = now
        with self.access_log.open("rb") as f:
            f.seek(offset)
            return parse_access_log(f.read().decode(errors="replace"))

    def warnings(self) -> list[str]:
        """Distinct warning texts in nginx's error log (e.g. worker_connections)."""
        seen: list[str] = []
        with contextlib.suppress(OSError):
            for line in (self.dir / "error.log").read_text(errors="replace").splitlines():
                text = line.split(": ", 1)[-1].strip()
                if text and text not in seen:
                    seen.append(text)
        return seen


# --------------------------------------------------------------------------- samples


@dataclass(slots=True)
class Snap:
    """One sample: target counters and the own CPU of every process in the tree."""

    t: float  # seconds since the launch
    served: int | None  # nginx's stub_status request counter (our polls included)
    polls: int  # stub_status polls made so far, this one included
    nginx_cpu: float
    cpu: dict[int, float] = field(default_factory=dict)
    machine: float | None = None  # busy CPU seconds of the whole machine


@dataclass(frozen=True, slots=True)
class Window:
    """The steady middle of a run, between two samples."""

    seconds: float
    requests: int
    role_cpu: dict[str, float]
    nginx_cpu: float
    machine_cpu: float | None = None  # every process on the machine, ours included

    @property
    def other_cpu(self) -> float | None:
        """CPU seconds neither cannonade nor nginx used: the harness and everyone else."""
        if self.machine_cpu is None:
            return None
        return max(0.0, self.machine_cpu - self.client_cpu - self.nginx_cpu)

    @property
    def client_cpu(self) -> float:
        return sum(self.role_cpu.values())

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def us_per_req(self, role: str | None = None) -> float | None:
        if self.requests <= 0:
            return None
        cpu = self.client_cpu if role is None else self.role_cpu.get(role, 0.0)
        return cpu / self.requests * 1e6


def _requests_between(a: Snap, b: Snap) -> int | None:
    if a.served is None or b.served is None:
        return None
    return (b.served - a.served) - (b.polls - a.polls)


def activity(snaps: Sequence[Snap]) -> tuple[int, int] | None:
    """Indices of the first sample that saw requests and the last one that saw more."""
    first = last = None
    for i in range(1, len(snaps)):
        n = _requests_between(snaps[i - 1], snaps[i])
        if n is None:
            return None
        if n > 0:
            if first is None:
                first = i
            last = i
    if first is None or last is None:
        return None
    return first, last


def steady_window(
    snaps: Sequence[Snap],
    roles: dict[int, str],
    warm: float = WARM_UP,
    cool: float = COOL_DOWN,
    minimum: float = MIN_WINDOW,
) -> Window | None:
    """The window from ``warm`` s after the first request to ``cool`` s before the last.

    Requests come from nginx's counter (minus our own polls); CPU per role from the
    processes seen at both ends. None when the run is too short for ``minimum`` s.
    """
    span = activity(snaps)
    if span is None:
        return None
    first, last = span
    t_from, t_to = snaps[first].t + warm, snaps[last - 1].t - cool
    i = next((k for k in range(first, last) if snaps[k].t >= t_from), None)
    j = next((k for k in range(last - 1, first - 1, -1) if snaps[k].t <= t_to), None)
    if i is None or j is None or j <= i:
        return None
    a, b = snaps[i], snaps[j]
    seconds = b.t - a.t
    requests = _requests_between(a, b)
    if requests is None or seconds < minimum:
        return None
    role_cpu = dict.fromkeys(ROLES, 0.0)
    for pid, end in b.cpu.items():
        start = a.cpu.get(pid)
        role = roles.get(pid, "other")
        if start is not None and role in role_cpu:
            role_cpu[role] += end - start
    machine = None if a.machine is None or b.machine is None else b.machine - a.machine
    return Window(seconds, requests, role_cpu, b.nginx_cpu - a.nginx_cpu, machine)


def cpu_until(snap: Snap, roles: dict[int, str]) -> dict[str, float]:
    """CPU seconds per role up to ``snap`` (e.g. all of start-up, at the first request)."""
    out = dict.fromkeys(ROLES, 0.0)
    for pid, cpu in snap.cpu.items():
        role = roles.get(pid, "other")
        if role in out:
            out[role] += cpu
    return out


# --------------------------------------------------------------------------- runs


@dataclass(slots=True)
class RunResult:
    mode: str
    cannons: int
    rep: int
    rate: int = 0  # cpu mode: the total arrival rate asked for, requests/s
    exported: int = 0
    errors: int = 0
    dropped: int = 0  # open-model arrivals dropped at the end (the schedule slipped)
    export_seconds: float | None = None
    logged: int | None = None
    logged_bad: int = 0
    wall: float = 0.0
    tree_cpu: float = 0.0  # whole tree, start-up and shutdown included (wait4)
    first_request: float | None = None  # launch → first request seen by nginx, s
    last_request: float | None = None
    startup_cpu: dict[str, float] = field(default_factory=dict)
    window: Window | None = None
    failed: str = ""

    @property
    def counts_match(self) -> bool:
        return self.logged is not None and self.logged == self.exported

    @property
    def whole_us(self) -> float | None:
        return self.tree_cpu / self.exported * 1e6 if self.exported else None

    @property
    def shutdown(self) -> float | None:
        return self.wall - self.last_request if self.last_request is not None else None


def scenario_command(
    exe: str, mode: str, cannons: int, url: str, seconds: int, rate: int, workdir: Path
) -> list[str]:
    cmd = [exe, "run", str(SCENARIO), "--host", url, "--cannons", str(cannons)]
    if mode == "cpu":
        vus = VUS_PER_CANNON * cannons
        # max-vus capped: the open model must not add VUs (and connections) when the
        # schedule slips, or the target, not the cannons, becomes the story.
        cmd += ["--rate", f"{rate}/s", "--pre-vus", str(vus), "--max-vus", str(vus)]
    else:
        cmd += ["-u", str(VUS_PER_CANNON * cannons)]
    return [
        *cmd,
        "--duration",
        f"{seconds}s",
        "--quiet",
        "--summary-export",
        str(workdir / "summary.json"),
        "--db",
        str(workdir / "runs.db"),
    ]


def measure(
    exe: str,
    mode: str,
    cannons: int,
    rep: int,
    nginx: CountingNginx,
    seconds: int,
    rate: int,
    workdir: Path,
) -> RunResult:
    """One ``cannonade run``: unpinned, own session, sampled, reaped with ``wait4``."""
    workdir.mkdir(parents=True, exist_ok=True)
    res = RunResult(mode, cannons, rep, rate if mode == "cpu" else 0)
    cmd = scenario_command(exe, mode, cannons, nginx.url, seconds, rate, workdir)
    snaps: list[Snap] = []
    roles: dict[int, str] = {}
    polls = 0
    offset = nginx.log_size()
    timeout = seconds + 90.0
    out, err = (workdir / "stdout.txt").open("wb"), (workdir / "stderr.txt").open("wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=REPO, start_new_session=True
    )
    out.close()
    err.close()
    reaped: tuple[int, int, resource.struct_rusage] | None = None
    next_sample = t0
    try:
        while reaped is None:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                reaped = (pid, status, usage)
                break
            now = time.perf_counter()
            if now - t0 > timeout:
                res.failed = f"did not finish within {timeout:.0f}s (stopped)"
                _killpg(proc.pid, signal.SIGTERM)
                time.sleep(3.0)
                break
            if now >= next_sample:
                snap = Snap(now - t0, nginx.requests(), polls + 1, nginx.cpu_seconds())
                snap.machine = _machine_busy()
                polls += 1
                for p in tree_pids(proc.pid):
                    if p not in roles:
                        roles[p] = classify(_read_argv(p), root=p == proc.pid)
                    cpu = _read_own_cpu(p)
                    if cpu is not None:
                        snap.cpu[p] = cpu
                snaps.append(snap)
                next_sample = now + SAMPLE_INTERVAL
            time.sleep(0.02)
    finally:
        if reaped is None:
            _killpg(proc.pid, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            reaped = (proc.pid, status, usage)
        _killpg(proc.pid, signal.SIGKILL)
    res.wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(reaped[1])
    res.tree_cpu = reaped[2].ru_utime + reaped[2].ru_stime
    if not res.failed and code not in (0, 99):
        tail = (workdir / "stderr.txt").read_text(errors="replace").strip().splitlines()
        res.failed = f"exit {code}: {tail[-1][:200] if tail else '(no stderr)'}"
    res.logged, res.logged_bad = nginx.logged_since(offset)
    export = workdir / "summary.json"
    if export.exists():
        try:
            counted = parse_summary_export(export.read_text())
        except ValueError as e:
            raise HarnessError(f"cannot read cannonade's summary export: {e}") from e
        res.exported, res.errors, res.export_seconds = (
            counted.requests,
            counted.errors,
            counted.seconds,
        )
        res.dropped = parse_dropped(export.read_text())
    elif not res.failed:
        res.failed = "cannonade wrote no --summary-export file"
    span = activity(snaps)
    if span is not None:
        res.first_request = snaps[span[0]].t
        res.last_request = snaps[span[1]].t
        res.startup_cpu = cpu_until(snaps[span[0]], roles)
    res.window = steady_window(snaps, roles)
    return res


# --------------------------------------------------------------------------- summary


def median(values: Iterable[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def spread(values: Iterable[float | None]) -> tuple[float, float] | None:
    got = [v for v in values if v is not None]
    return (min(got), max(got)) if got else None


def efficiency_cpu(us_one: float | None, us_two: float | None) -> float | None:
    """CPU scaling efficiency: per-request CPU with 1 cannon over that with 2."""
    if not us_one or not us_two:
        return None
    return us_one / us_two


def efficiency_throughput(rate_one: float | None, rate_two: float | None) -> float | None:
    """Throughput scaling efficiency: (rate with 2 cannons / rate with 1) / 2."""
    if not rate_one or rate_two is None:
        return None
    return rate_two / rate_one / 2.0


def ceiling_rate(client_us: float | None, target_us: float | None, cores: float) -> float | None:
    """The most requests/s ``cores`` CPUs can serve when each request costs the client
    ``client_us`` and the target ``target_us`` µs of CPU (both on the same machine)."""
    if not client_us or target_us is None or cores <= 0:
        return None
    return cores * 1e6 / (client_us + target_us)


def cpu_grid(rate: int) -> list[tuple[int, int]]:
    """(cannons, total rate) of the cpu mode, for ``rate`` requests/s per cannon.

    Run in this order, so the cannon count alternates 1, 2, 1, 2: half the rate on one
    cannon, then split over two; the full rate on one, then on each of two.
    """
    half = max(1, rate // 2)
    return [(1, half), (2, 2 * half), (1, rate), (2, 2 * rate)]


def schedule(modes: Sequence[str], repeats: int, rate: int) -> list[tuple[str, int, int, int]]:
    """(mode, cannons, total rate or 0, repeat) in run order, alternating 1, 2, 1, 2."""
    out = []
    for mode in modes:
        grid = cpu_grid(rate) if mode == "cpu" else [(1, 0), (2, 0)]
        out += [(mode, n, r, rep) for rep in range(repeats) for n, r in grid]
    return out


@dataclass(slots=True)
class Config:
    """All runs of one (mode, cannons, rate) configuration, and their medians."""

    mode: str
    cannons: int
    rate: int  # cpu mode: total requests/s asked for; 0 for throughput
    runs: list[RunResult]

    @property
    def ok(self) -> list[RunResult]:
        return [r for r in self.runs if not r.failed and r.window is not None]

    @property
    def windows(self) -> list[Window]:
        return [r.window for r in self.ok if r.window is not None]

    def us(self, role: str | None = None) -> float | None:
        """Median steady client CPU µs per request (all roles, or one)."""
        return median(w.us_per_req(role) for w in self.windows)

    def range_us(self) -> tuple[float, float] | None:
        return spread(w.us_per_req() for w in self.windows)

    @property
    def steady_rate(self) -> float | None:
        return median(w.rate for w in self.windows)

    @property
    def nginx_us(self) -> float | None:
        return median(w.nginx_cpu / w.requests * 1e6 for w in self.windows if w.requests)

    def cores(self, what: str) -> float | None:
        """Median CPU of ``client``, ``nginx`` or ``other`` over the window's wall time."""

        def one(w: Window) -> float | None:
            cpu = {"client": w.client_cpu, "nginx": w.nginx_cpu, "other": w.other_cpu}[what]
            return cpu / w.seconds if cpu is not None and w.seconds > 0 else None

        return median(one(w) for w in self.windows)

    def role_ms_per_s(self, role: str) -> float | None:
        """Median CPU milliseconds per wall second of one role (10 = 1% of a core)."""
        return median(
            w.role_cpu.get(role, 0.0) / w.seconds * 1e3 for w in self.windows if w.seconds > 0
        )

    @property
    def whole_us(self) -> float | None:
        return median(r.whole_us for r in self.ok)

    @property
    def first_request(self) -> float | None:
        return median(r.first_request for r in self.ok)


def find(configs: Sequence[Config], cannons: int, rate: int) -> Config | None:
    return next((c for c in configs if c.cannons == cannons and c.rate == rate), None)


def all_counts_match(runs: Sequence[RunResult]) -> bool:
    return all(r.counts_match for r in runs if not r.failed)


def _f(x: float | None, spec: str, none: str = "–") -> str:
    return none if x is None or x != x else format(x, spec)


def _counts(r: RunResult) -> str:
    logged = "?" if r.logged is None else f"{r.logged:,}"
    mark = "=" if r.counts_match else "≠"
    return f"{r.exported:,} {mark} {logged}"


def _cannons(n: int) -> str:
    return f"{n} cannon{'s' if n > 1 else ''}"


def _other_cores(w: Window | None) -> float | None:
    if w is None or w.other_cpu is None or w.seconds <= 0:
        return None
    return w.other_cpu / w.seconds


def run_lines(runs: Sequence[RunResult]) -> list[str]:
    """One console line per run, in the order they ran."""
    out = []
    for r in runs:
        load = f"{r.rate:,}/s" if r.mode == "cpu" else f"{VUS_PER_CANNON * r.cannons} VUs"
        head = f"  {r.mode:<10} {_cannons(r.cannons):<9} {load:>9} #{r.rep + 1}"
        if r.failed:
            out.append(f"{head}  FAILED: {r.failed}")
            continue
        w = r.window
        roles = " ".join(f"{k} {_f(w.us_per_req(k), '.2f')}" for k in ROLES) if w else "–"
        nginx_us = w.nginx_cpu / w.requests * 1e6 if w and w.requests else None
        out.append(
            f"{head}  export {_counts(r)} nginx  errors {r.errors}  dropped {r.dropped}"
            f"  steady {_f(w.rate if w else None, ',.0f')} req/s"
            f"  µs/req {_f(w.us_per_req() if w else None, '.2f')} ({roles})"
            f"  nginx {_f(nginx_us, '.2f')}  whole-run {_f(r.whole_us, '.2f')}"
            f"  first request {_f(r.first_request, '.1f')}s  wall {r.wall:.1f}s"
            f"  others {_f(_other_cores(w), '.2f')} cores"
        )
    return out


@dataclass(frozen=True, slots=True)
class Comparison:
    """Two cpu-mode configurations compared: CPU per request with 1 cannon and with 2."""

    label: str
    one: Config
    two: Config

    @property
    def efficiency(self) -> float | None:
        return efficiency_cpu(self.one.us(), self.two.us())

    def text(self) -> str:
        return (
            f"{self.label} ({self.one.rate:,} req/s on 1 cannon vs {self.two.rate:,} on 2): "
            f"{_f(self.one.us(), '.2f')} → {_f(self.two.us(), '.2f')} µs = "
            f"**{_f(self.efficiency, '.0%')}**"
        )


@dataclass(frozen=True, slots=True)
class Result:
    """What the doc section and the console report are made of."""

    cpu: list[Config]
    throughput: tuple[Config, Config] | None
    rate: int  # per cannon
    seconds: dict[str, int]
    repeats: int

    def comparisons(self) -> list[Comparison]:
        """Headline first: the same load per cannon, at the full rate."""
        r, half = self.rate, max(1, self.rate // 2)
        wanted = [
            (f"same load per cannon, {r:,} req/s each", (1, r), (2, 2 * r)),
            (f"same load per cannon, {half:,} req/s each", (1, half), (2, 2 * half)),
            (f"same total load, {r:,} req/s", (1, r), (2, 2 * half)),
        ]
        out = []
        for label, a, b in wanted:
            one, two = find(self.cpu, *a), find(self.cpu, *b)
            if one is not None and two is not None:
                out.append(Comparison(label, one, two))
        return out


def verdict(result: Result) -> tuple[str, str]:
    comps = result.comparisons()
    eff = comps[0].efficiency if comps else None
    if eff is None:
        return "n/a", "the cpu mode gave no steady figures"
    return ("PASS" if eff >= TARGET_EFFICIENCY else "MISS"), f"{eff:.0%}"


def cpu_table(configs: Sequence[Config]) -> list[str]:
    lines = [
        "| cannons | req/s asked (per cannon) | runs | requests: export = nginx "
        "| steady req/s | client CPU µs/req (range) | cannons | agent | HQ | nginx µs/req "
        "| whole-run µs/req | start-up s | others (cores) |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in configs:
        rng = c.range_us()
        rng_s = f" ({rng[0]:.1f}–{rng[1]:.1f})" if rng else ""
        counts = "<br>".join(_counts(r) for r in c.ok) or "–"
        lines.append(
            f"| {c.cannons} | {c.rate:,} ({c.rate // c.cannons:,}) | {len(c.ok)}/{len(c.runs)} "
            f"| {counts} | {_f(c.steady_rate, ',.0f')} | **{_f(c.us(), '.2f')}**{rng_s} "
            f"| {_f(c.us('cannon'), '.2f')} | {_f(c.us('agent'), '.3f')} "
            f"| {_f(c.us('hq'), '.3f')} | {_f(c.nginx_us, '.2f')} | {_f(c.whole_us, '.2f')} "
            f"| {_f(c.first_request, '.1f')} | {_f(c.cores('other'), '.2f')} |"
        )
    return lines


def throughput_table(pair: tuple[Config, Config]) -> list[str]:
    lines = [
        "| cannons | VUs | runs | requests: export = nginx | steady req/s (range) "
        "| client CPU (cores) | nginx CPU (cores) | client µs/req | agent + HQ µs/req "
        "| nginx µs/req | others (cores) |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in pair:
        rates = spread(w.rate for w in c.windows)
        rng_s = f" ({rates[0]:,.0f}–{rates[1]:,.0f})" if rates else ""
        counts = "<br>".join(_counts(r) for r in c.ok) or "–"
        overhead = median(
            (w.us_per_req("agent") or 0) + (w.us_per_req("hq") or 0) for w in c.windows
        )
        lines.append(
            f"| {c.cannons} | {VUS_PER_CANNON * c.cannons} | {len(c.ok)}/{len(c.runs)} "
            f"| {counts} | **{_f(c.steady_rate, ',.0f')}**{rng_s} "
            f"| {_f(c.cores('client'), '.2f')} | {_f(c.cores('nginx'), '.2f')} "
            f"| {_f(c.us(), '.2f')} | {_f(overhead, '.2f')} | {_f(c.nginx_us, '.2f')} "
            f"| {_f(c.cores('other'), '.2f')} |"
        )
    return lines


def _overhead_share(c: Config) -> float | None:
    agent, hq, total = c.us("agent"), c.us("hq"), c.us()
    if agent is None or hq is None or not total:
        return None
    return (agent + hq) / total


def summary_lines(result: Result, ncpu: int) -> list[str]:
    """The figures, as Markdown bullet points (also printed on the console)."""
    out: list[str] = []
    comps = result.comparisons()
    if comps:
        v, detail = verdict(result)
        head = comps[0]
        whole = efficiency_cpu(head.one.whole_us, head.two.whole_us)
        out.append(
            f"**{v}** scaling efficiency from 1 to 2 cannons >= {TARGET_EFFICIENCY:.0%} "
            f"({detail}), judged on steady client CPU per request at the {head.text()} "
            f"(whole run, start-up and shutdown included: {_f(whole, '.0%')})."
        )
        for c in comps[1:]:
            flag = ""
            if c.efficiency is not None and c.efficiency < TARGET_EFFICIENCY:
                flag = f" (below {TARGET_EFFICIENCY:.0%})"
            out.append(f"Also: {c.text()}{flag}.")
        overhead = [
            f"{_cannons(c.cannons)} at {c.rate:,} req/s: agent {_f(c.us('agent'), '.2f')} µs "
            f"+ HQ {_f(c.us('hq'), '.2f')} µs per request, "
            f"{_f(_overhead_share(c), '.1%')} of the client's CPU "
            f"(agent {_f(c.role_ms_per_s('agent'), '.1f')} ms/s, "
            f"HQ {_f(c.role_ms_per_s('hq'), '.1f')} ms/s)"
            for c in result.cpu
        ]
        out.append(
            "Process-model overhead in steady state (CPU ms per wall second in brackets): "
            + "; ".join(overhead)
            + "."
        )
    if result.throughput is not None:
        one, two = result.throughput
        r1, r2 = one.steady_rate, two.steady_rate
        ratio = r2 / r1 if r1 and r2 else None
        others = two.cores("other") or 0.0
        ceiling = ceiling_rate(two.us(), two.nginx_us, ncpu - others)
        bound = min(2.0, ceiling / r1) if ceiling and r1 else None
        used = [(c.cores("client") or 0.0) + (c.cores("nginx") or 0.0) for c in (one, two)]
        out.append(
            f"Throughput, {VUS_PER_CANNON} VUs per cannon: {_f(r1, ',.0f')} → "
            f"{_f(r2, ',.0f')} req/s = {_f(ratio, '.2f')}x "
            f"({_f(efficiency_throughput(r1, r2), '.0%')} efficiency). At the CPU per request "
            f"measured with 2 cannons (client {_f(two.us(), '.1f')} µs + nginx "
            f"{_f(two.nginx_us, '.1f')} µs) the {ncpu - others:.2f} cores not taken by other "
            f"processes serve at most {_f(ceiling, ',.0f')} req/s, i.e. "
            f"{_f(bound, '.2f')}x the 1-cannon rate; the run reached "
            f"{_f(r2 / ceiling if r2 and ceiling else None, '.0%')} of that. cannonade + "
            f"nginx used {used[0]:.2f} and {used[1]:.2f} cores. Client CPU per request "
            f"at this load: {_f(one.us(), '.2f')} → {_f(two.us(), '.2f')} µs "
            f"({_f(efficiency_cpu(one.us(), two.us()), '.0%')})."
        )
    runs = [r for c in (*result.cpu, *(result.throughput or ())) for r in c.runs]
    if runs:
        good = [r for r in runs if not r.failed]
        out.append(
            "Request counts: cannonade's export and nginx's access log "
            f"{'agree on every run' if all_counts_match(good) else 'DISAGREE on some runs'} "
            f"({sum(r.counts_match for r in good)}/{len(good)}); failed runs: "
            f"{len(runs) - len(good)}; errors reported by cannonade: "
            f"{sum(r.errors for r in good):,}, non-2xx logged by nginx: "
            f"{sum(r.logged_bad for r in good):,}; open-model iterations dropped (schedule "
            f"slipped): {sum(r.dropped for r in good):,}."
        )
        boot = {
            n: median(sum(r.startup_cpu.values()) for r in good if r.cannons == n) for n in (1, 2)
        }
        starts = {n: median(r.first_request for r in good if r.cannons == n) for n in (1, 2)}
        out.append(
            f"Start-up: {_f(starts[1], '.1f')} s (1 cannon) / {_f(starts[2], '.1f')} s "
            "(2 cannons) from launch to the first request nginx sees (medians), costing "
            f"{_f(boot[1], '.1f')} / {_f(boot[2], '.1f')} s of CPU across HQ, agent and "
            f"cannons; {_f(median(r.shutdown for r in good), '.1f')} s from the last request "
            "to exit."
        )
    return out


def render_markdown(
    result: Result, machine: Machine, command: str, versions: Sequence[str], notes: Sequence[str]
) -> str:
    lines = [
        f"Measured {machine.date} with `{command}` on {machine.describe()}.",
        *([f"Versions: {'; '.join(versions)}."] if versions else []),
        f"Each configuration ran {result.repeats} times, interleaved so the cannon count "
        "alternates 1, 2, 1, 2, ...; figures are medians, ranges in brackets.",
        "",
    ]
    if result.cpu:
        lines += [
            "**Client CPU per request at a fixed arrival rate** (open model, "
            f"{result.seconds['cpu']} s, {VUS_PER_CANNON} VUs per cannon, `--max-vus` "
            "capped at the same; the headline):",
            "",
            *cpu_table(result.cpu),
            "",
        ]
    if result.throughput is not None:
        lines += [
            f"**Throughput, {VUS_PER_CANNON} VUs per cannon, no think time** "
            f"({result.seconds['throughput']} s; nginx shares the same cores):",
            "",
            *throughput_table(result.throughput),
            "",
        ]
    lines += [f"- {s}" for s in summary_lines(result, machine.nproc)]
    lines += [f"- {n}" for n in notes]
    lines += [
        "",
        "*client CPU µs/req* is the own user+sys CPU of every process of the `cannonade "
        "run` tree (HQ, agent, cannons; `/proc/PID/stat` every 0.5 s) over the steady "
        "window (2 s after the first request to 1 s before the last), divided by the "
        "requests nginx counted in that window (`stub_status`, our polls subtracted); "
        "the *cannons*, *agent* and *HQ* columns split it by process. *whole-run* is "
        "`wait4`'s CPU of the whole tree over the exported count, start-up and shutdown "
        "included. *requests: export = nginx* are `metrics.http_reqs.count` and the lines "
        "nginx logged for `GET /`, one pair per run. *start-up s* is the wall time from "
        "launch to the first request nginx sees. *others (cores)* is the machine's busy "
        "CPU (`/proc/stat`) that neither cannonade nor nginx used during the window: this "
        "harness and whatever else ran on the machine.",
    ]
    return "\n".join(lines)


def render_console(result: Result, ncpu: int) -> str:
    out: list[str] = []
    if result.cpu:
        out += ["", "CPU per request at a fixed rate:", *cpu_table(result.cpu)]
    if result.throughput is not None:
        out += ["", "Throughput:", *throughput_table(result.throughput)]
    out += ["", *[f"- {s}" for s in summary_lines(result, ncpu)]]
    return "\n".join(out).replace("**", "").replace("<br>", " / ")


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--modes", default="cpu,throughput", help="cpu, throughput or both")
    p.add_argument("--repeats", type=int, default=None, help="runs per configuration (5)")
    p.add_argument(
        "--rate", type=int, default=10_000, help="cpu mode: requests/s per cannon (10000)"
    )
    p.add_argument("--cpu-seconds", type=int, default=None, help="cpu mode run length (20)")
    p.add_argument("--tp-seconds", type=int, default=None, help="throughput run length (15)")
    p.add_argument("--quick", action="store_true", help="2 repeats of 8 s, for a smoke check")
    p.add_argument("--no-docs", action="store_true", help="do not touch docs/performance.md")
    p.add_argument(
        "--cannonade",
        type=Path,
        default=PROJECT_BIN / "cannonade",
        help="the cannonade executable (default: the project venv's)",
    )
    args = p.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"cpu", "throughput"}:
        p.error("--modes takes cpu, throughput or cpu,throughput")
    repeats = args.repeats or (2 if args.quick else 5)
    seconds = {
        "cpu": args.cpu_seconds or (8 if args.quick else 20),
        "throughput": args.tp_seconds or (8 if args.quick else 15),
    }
    if repeats < 1 or args.rate < 2 or min(seconds.values()) < 5:
        p.error("--repeats must be >= 1, --rate >= 2, run lengths >= 5 s")
    if not args.cannonade.exists():
        print(f"harness error: {args.cannonade} not found", file=sys.stderr)
        return 1

    machine = machine_info()
    print(f"{machine.date}: {machine.describe()}", flush=True)
    try:
        with sigterm_unwinds(), tempfile.TemporaryDirectory(prefix="cannonade-scaling-") as tmp:
            return _run(args, modes, repeats, seconds, machine, Path(tmp))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Interrupted as e:
        print(f"\ninterrupted by {e}", file=sys.stderr)
        return 130
    except HarnessError as e:
        print(f"harness error: {e}", file=sys.stderr)
        return 1


def dirty_sources() -> list[str]:
    """Files under src/ that differ from the commit the doc names (``git status``)."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return [line[3:].strip() for line in done.stdout.splitlines() if line.strip()]
    return []


def _run(
    args: argparse.Namespace,
    modes: list[str],
    repeats: int,
    seconds: dict[str, int],
    machine: Machine,
    tmp: Path,
) -> int:
    nginx_bin, why = ensure_apt_binary("nginx", ["nginx-light", "nginx"])
    if nginx_bin is None:
        raise HarnessError(f"no target: {why}")
    versions = [tool_version([nginx_bin, "-v"]).removeprefix("nginx version: ")]
    # Fresh bytecode for src/, as an installed wheel has (see http_cpu.py).
    subprocess.run(
        [str(PROJECT_BIN / "python"), "-m", "compileall", "-q", str(REPO / "src")],
        check=False,
        capture_output=True,
        timeout=300,
    )
    exe = str(args.cannonade)
    dirty = dirty_sources()
    nginx = CountingNginx(nginx_bin, 0, tmp / "nginx")
    plan = schedule(modes, repeats, args.rate)
    runs: list[RunResult] = []
    try:
        nginx.start()
        print(f"nginx (unpinned) on {nginx.url}; {len(plan)} runs", flush=True)
        for i, (mode, n, rate, rep) in enumerate(plan):
            what = f"{rate:,} req/s" if mode == "cpu" else f"{VUS_PER_CANNON * n} VUs"
            print(f"→ {i + 1}/{len(plan)} {mode}: {_cannons(n)}, {what}, {seconds[mode]}s")
            r = measure(exe, mode, n, rep, nginx, seconds[mode], rate, tmp / f"run-{i}")
            runs.append(r)
            print("\n".join(run_lines([r])), flush=True)
        warnings = nginx.warnings()
    finally:
        nginx.close()

    def configs(mode: str) -> list[Config]:
        keys = dict.fromkeys((n, r) for m, n, r, _ in plan if m == mode)
        return [
            Config(mode, n, r, [x for x in runs if (x.mode, x.cannons, x.rate) == (mode, n, r)])
            for n, r in keys
        ]

    tp = configs("throughput")
    result = Result(configs("cpu"), (tp[0], tp[1]) if tp else None, args.rate, seconds, repeats)
    notes = [f"nginx warned: {w}" for w in warnings[:3]]
    if dirty:
        notes.append(
            f"src/ had uncommitted changes when the bench started ({', '.join(dirty[:8])}"
            f"{', ...' if len(dirty) > 8 else ''}): the code measured is the working tree."
        )
    print("\nAll runs:")
    print("\n".join(run_lines(runs)))
    print(render_console(result, machine.nproc))
    for n in notes:
        print(f"- {n}")
    if not args.no_docs:
        command = "python bench/cannon_scaling.py" + (" --quick" if args.quick else "")
        if args.repeats:
            command += f" --repeats {args.repeats}"
        if args.modes != "cpu,throughput":
            command += f" --modes {args.modes}"
        if args.rate != 10_000:
            command += f" --rate {args.rate}"
        write_docs_section(SECTION, render_markdown(result, machine, command, versions, notes))
        print(f"\nwrote {DOCS.relative_to(REPO)} ({SECTION} section)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
