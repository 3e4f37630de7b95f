"""A run request from the HTTP API, checked exactly as ``cannonade run`` checks its
command line: the request becomes that command line and goes through the same parser
and :func:`cannonade.launch.plan.prepare`, so every option means the same in both places
and is refused with the same message.

The one difference: the HQ never imports an uploaded scenario into itself. A Python
scenario is imported in a short-lived child process (:mod:`cannonade.service.inspect`)
that reports its thresholds or its error; one that hangs or exits at import is
contained there.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from cannonade.errors import ConfigError, ScenarioError
from cannonade.launch.options import add_run_arguments
from cannonade.launch.plan import Prepared, prepare
from cannonade.scenarios.loader import LoadedScenario

INSPECT_TIMEOUT = 30.0
KINDS = ("python", "yaml", "exec", "archive")


class RunRequest(BaseModel):
    """Every option of ``cannonade run`` (#2–#4), by its long name."""

    model_config = ConfigDict(extra="forbid")

    bundle: str = Field(description="an uploaded bundle's id", max_length=100)
    entry: str | None = Field(None, description="the file to run, in an archive bundle")
    name: str | None = Field(None, max_length=200, description="a label for the run")
    users: str | None = Field(None, max_length=1000, description="user cycles: 10 or 10:50:100")
    duration: str | None = Field(None, max_length=100, description="per cycle or total: 30s")
    hits: int | None = Field(None, ge=1, le=10**9)
    rampup: str | None = Field(None, max_length=100)
    stages: str | None = Field(None, max_length=10000, description="30s:100,1m:100,10s:0")
    iterations: int | None = Field(None, ge=1, le=10**12)
    rate: str | None = Field(None, max_length=100, description="arrivals per second: 500/s")
    rate_stages: str | None = Field(None, max_length=10000)
    max_vus: int = Field(0, ge=0, le=10**7)
    pre_vus: int = Field(0, ge=0, le=10**7)
    graceful_stop: str = Field("30s", max_length=100)
    max_duration: str = Field("10m", max_length=100)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    host: str | None = Field(None, max_length=2000)
    timeout: str = Field("60s", max_length=100)
    connect_timeout: str = Field("10s", max_length=100)
    follow_redirects: bool = False
    insecure: bool = False
    headers: list[str] = Field(default_factory=list, max_length=100)
    thresholds: list[str] = Field(default_factory=list, max_length=100)
    min_agents: int = Field(1, ge=1, le=10000)
    test_runner: str | None = Field(
        None, max_length=10000, description="loads external runner: 'node runner.js {test}'"
    )
    test: str | None = Field(None, max_length=1000, description="the test --test-runner runs")
    exec_args: list[str] | None = Field(
        None, max_length=1000, description="an exec bundle's arguments"
    )


def _parser() -> argparse.ArgumentParser:
    p = _RaisingParser(prog="cannonade run", add_help=False)
    p.add_argument("scenario", nargs="?")
    add_run_arguments(p)
    return p


class _RaisingParser(argparse.ArgumentParser):
    # argparse prints and exits on a bad value; an API answers 400 instead.
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def command_line(req: RunRequest, scenario: str | None) -> list[str]:
    """The ``cannonade run`` arguments that mean the same as ``req``."""
    argv: list[str] = [] if scenario is None else [scenario]

    def opt(flag: str, value: object) -> None:
        if value is not None:
            argv.extend([flag, str(value)])

    opt("--users", req.users)
    opt("--duration", req.duration)
    opt("--hits", req.hits)
    opt("--rampup", req.rampup)
    opt("--stages", req.stages)
    opt("--iterations", req.iterations)
    opt("--rate", req.rate)
    opt("--rate-stages", req.rate_stages)
    opt("--max-vus", req.max_vus)
    opt("--pre-vus", req.pre_vus)
    opt("--graceful-stop", req.graceful_stop)
    opt("--max-duration", req.max_duration)
    opt("--seed", req.seed)
    opt("--host", req.host)
    opt("--timeout", req.timeout)
    opt("--connect-timeout", req.connect_timeout)
    if req.follow_redirects:
        argv.append("--follow-redirects")
    if req.insecure:
        argv.append("--insecure")
    for h in req.headers:
        opt("--header", h)
    for t in req.thresholds:
        opt("--threshold", t)
    opt("--test-runner", req.test_runner)
    argv += ["--local-agents", "0", "--min-agents", str(req.min_agents)]
    return argv


def plan(req: RunRequest, kind: str, scenario_file: Path | None) -> Prepared:
    """Check a request against its bundle (written to ``scenario_file``) and prepare it
    as ``cannonade run`` would. Raises CannonadeError with the reason."""
    if req.test_runner is not None:
        if req.test is None:
            raise ConfigError("test_runner needs test, the name it replaces {test} with")
        scenario: str | None = req.test
    elif kind == "exec":
        scenario = None
    else:
        scenario = str(scenario_file)
    argv = command_line(req, scenario)
    if kind == "exec" and req.test_runner is None:
        argv += ["--exec", shlex.join([str(scenario_file), *(req.exec_args or [])])]
    elif req.exec_args is not None:
        raise ConfigError("exec_args is for exec bundles")
    try:
        args = _parser().parse_args(argv)
    except ConfigError as e:
        raise ConfigError(f"run options: {e}") from None
    # The HQ's own listening options are not the request's to set.
    args.listen, args.publisher_port, args.results_port = "127.0.0.1", 0, 0
    args.curve_key = args.curve_allow = None
    args.db, args.cannons, args.wait_agents = ":memory:", None, "0s"
    return prepare(args, load=inspect_scenario)


def inspect_scenario(path: str | Path) -> LoadedScenario:
    """What :func:`load_path` finds in a scenario, found by a child process."""
    try:
        r = subprocess.run(
            [sys.executable, "-m", "cannonade.service.inspect", str(path)],
            capture_output=True,
            timeout=INSPECT_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ScenarioError(
            f"importing the scenario took longer than {INSPECT_TIMEOUT:g} s", Path(path).name
        ) from None
    try:
        found = json.loads(r.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        why = r.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise ScenarioError(
            f"the scenario ended its import process (exit {r.returncode}): {why[0][:300]}",
            Path(path).name,
        ) from None
    if "error" in found:
        raise ScenarioError(str(found["error"]))
    return LoadedScenario(
        path=Path(path).name,
        sha256=str(found["sha256"]),
        scenarios=(),
        thresholds=tuple(str(t) for t in found["thresholds"]),
    )
