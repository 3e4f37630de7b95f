"""From command-line arguments to frozen, validated :class:`EngineOptions`."""

from __future__ import annotations

import argparse
import urllib.parse

from cannonade.config import (
    MAX_USERS,
    ArrivalRate,
    Cycles,
    EngineOptions,
    HttpOptions,
    LoadModel,
    RampingVus,
    SharedIterations,
    parse_duration,
    parse_rate,
    parse_stages,
    parse_users,
)
from cannonade.errors import ConfigError
from cannonade.launch.cluster import add_hq_arguments


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    load = p.add_argument_group("load model (closed: users; open: --rate)")
    load.add_argument("-u", "--users", default=None, help="user cycles, e.g. 10 or 10:50:100")
    load.add_argument("-d", "--duration", default=None, help="per cycle / total, e.g. 30s, 1m")
    load.add_argument("--hits", type=int, default=None, help="iterations per user per cycle")
    load.add_argument("--rampup", default=None, help="start each cycle's users over SECONDS")
    load.add_argument("--stages", default=None, help="ramp VUs, e.g. 30s:100,1m:100,10s:0")
    load.add_argument("--iterations", type=int, default=None, help="shared iteration total")
    load.add_argument("--rate", default=None, help="open model: arrivals per second, 500/s")
    load.add_argument("--rate-stages", default=None, help="ramp the rate, e.g. 30s:100/s")
    load.add_argument("--max-vus", type=int, default=0, help="open model: VU cap")
    load.add_argument("--pre-vus", type=int, default=0, help="open model: VUs made upfront")
    load.add_argument("--graceful-stop", default="30s", help="time running iterations get")
    load.add_argument("--max-duration", default="10m", help="bound for --hits/--iterations")
    load.add_argument("--seed", type=int, default=None, help="seed for scenario choice")

    http = p.add_argument_group("HTTP")
    http.add_argument("--host", default=None, help="base URL relative URLs resolve against")
    http.add_argument("--timeout", default="60s", help="total time a request may take")
    http.add_argument("--connect-timeout", default="10s", help="TCP + TLS connect time")
    http.add_argument("--follow-redirects", action="store_true")
    http.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    http.add_argument(
        "-H", "--header", action="append", default=[], help="'Name: value', repeatable"
    )

    runner = p.add_argument_group("runners in other languages")
    runner.add_argument(
        "--exec",
        default=None,
        metavar="'PROGRAM [ARGS]'",
        help="run a program per iteration and read its JSON result lines (go-lo format)",
    )

    runner.add_argument(
        "--test-runner",
        default=None,
        metavar="'COMMAND {test}'",
        help="loads external runner per user and cycle step; the scenario argument is the test",
    )

    out = p.add_argument_group("results")
    out.add_argument(
        "--threshold",
        action="append",
        default=[],
        help="e.g. 'http_req_duration:p(95)<200' (repeatable)",
    )
    out.add_argument("--summary-export", default=None, help="write k6-style summary JSON")
    out.add_argument(
        "--out",
        action="append",
        default=[],
        metavar="KIND=PATH",
        help="json=FILE (k6-like metric lines) or csv=DIR (Locust-like CSVs); repeatable",
    )
    out.add_argument("--junit", default=None, metavar="FILE", help="thresholds as JUnit XML")
    report = out.add_mutually_exclusive_group()
    report.add_argument(
        "--report", default=None, metavar="FILE", help="HTML report (default: DB-RUN_ID.html)"
    )
    report.add_argument("--no-report", action="store_true", help="write no HTML report")
    out.add_argument("-q", "--quiet", action="store_true", help="no live progress")

    add_hq_arguments(p, ports_default=None)
    dist = p.add_argument_group("agents")
    dist.add_argument(
        "--cannons", type=int, default=None, help="cannons of the local agent (default: cores)"
    )
    dist.add_argument("--local-agents", type=int, default=1, help="agents started here (0 or 1)")
    dist.add_argument("--min-agents", type=int, default=None, help="agents to wait for")
    dist.add_argument("--wait-agents", default="2m", help="how long to wait for them")


def _positive(value: int | None, option: str) -> None:
    if value is not None and value < 1:
        raise ConfigError(f"{option}: must be at least 1, got {value}")


def _refuse(a: argparse.Namespace, model: str, *options: str) -> None:
    """An option the chosen model would ignore is an error, never silently dropped."""
    for option in options:
        if getattr(a, option.lstrip("-").replace("-", "_")) not in (None, 0):
            raise ConfigError(f"{option} has no meaning with {model}")


def build_model(a: argparse.Namespace) -> LoadModel:
    duration = parse_duration(a.duration, "--duration") if a.duration is not None else None
    _positive(a.hits, "--hits")
    _positive(a.iterations, "--iterations")
    if a.rate is not None or a.rate_stages is not None:
        closed = (("--hits", a.hits), ("--stages", a.stages), ("--iterations", a.iterations))
        for opt, val in closed:
            if val is not None:
                raise ConfigError(f"{opt} belongs to a closed model; it cannot go with --rate")
        rate = parse_rate(a.rate, "--rate") if a.rate is not None else 0.0
        stages = parse_stages(a.rate_stages, "--rate-stages", rate=True) if a.rate_stages else ()
        if not stages and duration is None:
            raise ConfigError("--rate needs --duration (or --rate-stages)")
        if not stages and rate <= 0:
            raise ConfigError("--rate must be above 0")
        if a.max_vus < 0 or a.pre_vus < 0:
            raise ConfigError("--max-vus and --pre-vus must be >= 0")
        if a.max_vus and a.pre_vus > a.max_vus:
            raise ConfigError("--pre-vus cannot exceed --max-vus")
        _refuse(a, "--rate (VUs come from --pre-vus/--max-vus)", "--users", "--rampup")
        if stages:
            _refuse(a, "--rate-stages (the stages set the length)", "--duration")
        return ArrivalRate(rate, stages, duration or 0.0, a.pre_vus, a.max_vus)
    _refuse(a, "a closed model (they go with --rate)", "--max-vus", "--pre-vus")
    if a.stages is not None:
        if a.hits is not None or a.iterations is not None:
            raise ConfigError("--stages cannot go with --hits or --iterations")
        _refuse(a, "--stages (the stages set the length and the ramp)", "--duration", "--rampup")
        start_users = parse_users(a.users, "--users") if a.users else (0,)
        if len(start_users) > 1:
            raise ConfigError("--users with --stages is one starting VU count, not cycles")
        start = start_users[0]
        return RampingVus(parse_stages(a.stages, "--stages"), start)
    users = parse_users(a.users) if a.users is not None else (1,)
    if a.iterations is not None:
        if len(users) > 1 or a.hits is not None:
            raise ConfigError("--iterations takes one user count (-u N) and no --hits")
        _refuse(a, "--iterations (bound it with --max-duration)", "--duration", "--rampup")
        return SharedIterations(users[0], a.iterations)
    if duration is not None and a.hits is not None:
        raise ConfigError("give --duration or --hits, not both")
    rampup = parse_duration(a.rampup, "--rampup") if a.rampup is not None else 0.0
    if duration is None and a.hits is None:
        # k6's default: one iteration per user. A run is always bounded.
        return Cycles(users, None, 1, rampup)
    return Cycles(users, duration, a.hits, rampup)


def _check_host(host: str) -> None:
    if not host.startswith(("http://", "https://")):
        raise ConfigError(f"--host {host!r} must start with http:// or https://")
    try:
        parts = urllib.parse.urlsplit(host)
        port = parts.port  # raises on a port out of range or not a number
    except ValueError as e:
        raise ConfigError(f"--host {host!r} is not a valid URL: {e}") from None
    if not parts.hostname:
        raise ConfigError(f"--host {host!r} has no host name")
    del port


def build_options(a: argparse.Namespace) -> EngineOptions:
    headers: list[tuple[str, str]] = []
    for h in a.header:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"--header {h!r} must look like 'Name: value'")
        if any(c in h for c in "\r\n\0"):
            raise ConfigError(f"--header {h!r} must not contain CR, LF or NUL")
        headers.append((name.strip(), value.strip()))
    if a.host is not None:
        _check_host(a.host)
    timeout = parse_duration(a.timeout, "--timeout")
    connect_timeout = parse_duration(a.connect_timeout, "--connect-timeout")
    for option, value in (("--timeout", timeout), ("--connect-timeout", connect_timeout)):
        if value <= 0:
            raise ConfigError(f"{option}: must be above 0")
    if a.max_vus > MAX_USERS or a.pre_vus > MAX_USERS:
        raise ConfigError(f"--max-vus/--pre-vus: at most {MAX_USERS:,}")
    return EngineOptions(
        model=build_model(a),
        http=HttpOptions(
            base_url=a.host,
            timeout=timeout,
            connect_timeout=connect_timeout,
            follow_redirects=a.follow_redirects,
            verify_tls=not a.insecure,
            headers=tuple(headers),
        ),
        graceful_stop=parse_duration(a.graceful_stop, "--graceful-stop"),
        max_duration=parse_duration(a.max_duration, "--max-duration"),
        seed=a.seed,
    )
