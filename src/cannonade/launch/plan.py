"""A run's plan: the command-line options checked and turned into everything a run
needs before any load starts (the engine options, thresholds, the bundle that travels to
the agents, where the HQ listens). ``cannonade run`` and the HTTP API's queue both plan
runs here, so an option means the same and is refused the same way in both.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import secrets
import shlex
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cannonade.config import Cycles, EngineOptions, model_duration, parse_duration
from cannonade.errors import ConfigError
from cannonade.launch.cluster import check_port, hq_curve
from cannonade.launch.options import build_options
from cannonade.model.thresholds import Threshold, parse_threshold
from cannonade.plans.compile import is_plan, load_plan
from cannonade.plans.model import Plan
from cannonade.scenarios.bundle import Bundle
from cannonade.scenarios.loader import LoadedScenario, load_path
from cannonade.transport.security import Curve


@dataclass(frozen=True, slots=True)
class Cluster:
    listen: str
    publisher_port: int
    results_port: int
    curve: Curve | None
    db: str
    local_agents: int
    cannons: int
    min_agents: int
    wait_agents: float


@dataclass(frozen=True, slots=True)
class Prepared:
    scenario: LoadedScenario | None  # None: an HQ for OCT turrets with their own scripts
    options: EngineOptions
    thresholds: tuple[Threshold, ...]
    bundle: Bundle | None
    cluster: Cluster
    expressions: tuple[str, ...] = ()
    exec_args: tuple[str, ...] | None = None  # --exec: the program's arguments
    runner: dict[str, Any] | None = None  # --test-runner: argv, hits, duration
    legacy: str | None = None  # a loads-style MODULE.Class.test_method
    entry: str | None = None  # an archive bundle: the file in it to run
    tag_index: dict[str, Any] | None = None  # a YAML plan's scenario/group tags
    plan_tags: dict[str, Any] | None = None  # its tags: blocks as written


def build_cluster(a: argparse.Namespace) -> Cluster:
    if a.local_agents not in (0, 1):
        raise ConfigError(f"--local-agents is 0 or 1, got {a.local_agents}")
    cannons = a.cannons if a.cannons is not None else (os.cpu_count() or 1)
    if cannons < 1:
        raise ConfigError(f"--cannons must be at least 1, got {cannons}")
    if a.cannons is not None and a.local_agents == 0:
        raise ConfigError(
            "--cannons sets the local agent's cannons; there is none with --local-agents 0"
        )
    min_agents = a.min_agents if a.min_agents is not None else max(1, a.local_agents)
    if min_agents < max(1, a.local_agents):
        raise ConfigError(f"--min-agents must be at least {max(1, a.local_agents)}")
    # Agents from elsewhere need known ports (OCT's); a run on its own takes free ones.
    remote = min_agents > a.local_agents
    pub = a.publisher_port if a.publisher_port is not None else (5000 if remote else 0)
    res = a.results_port if a.results_port is not None else (pub + 1 if pub else 0)
    check_port(pub, "--publisher-port")
    check_port(res, "--results-port")
    return Cluster(
        listen=a.listen,
        publisher_port=pub,
        results_port=res,
        curve=hq_curve(a),
        db=a.db,
        local_agents=a.local_agents,
        cannons=cannons,
        min_agents=min_agents,
        wait_agents=parse_duration(a.wait_agents, "--wait-agents"),
    )


def prepare(
    args: argparse.Namespace, load: Callable[[str], LoadedScenario] = load_path
) -> Prepared:
    """Everything that can be wrong with the input is found here, before any load.
    ``load`` imports a Python scenario (the HTTP API does it in a child process)."""
    options = build_options(args)
    cluster = build_cluster(args)
    if args.test_runner is not None:
        return _prepare_runner(args, options, cluster)
    if args.exec is not None:
        return _prepare_exec(args, options, cluster)
    if args.scenario is None:
        # OCT's `oct run`: turrets bring their scripts; the HQ sets the time.
        if cluster.local_agents:
            raise ConfigError(
                "without a scenario, cannonade run is an HQ for OCT turrets: "
                "add --local-agents 0 (and --min-agents N)"
            )
        if args.duration is None:
            raise ConfigError("an HQ for OCT turrets needs --duration")
        exprs = tuple(args.threshold)
        thresholds = tuple(parse_threshold(e) for e in exprs)
        return Prepared(None, options, thresholds, None, cluster, exprs)
    if _is_legacy_target(args.scenario):
        return _prepare_legacy(args, options, cluster)
    if is_plan(args.scenario):
        return _prepare_plan(args, options, cluster)
    scenario = load(args.scenario)
    bundle = Bundle.from_path(args.scenario)
    exprs = (*args.threshold, *scenario.thresholds)
    return Prepared(
        scenario, options, tuple(parse_threshold(e) for e in exprs), bundle, cluster, exprs
    )


_LOAD_FLAGS = (
    ("--users", "users"),
    ("--duration", "duration"),
    ("--hits", "hits"),
    ("--rampup", "rampup"),
    ("--stages", "stages"),
    ("--iterations", "iterations"),
    ("--rate", "rate"),
    ("--rate-stages", "rate_stages"),
)


def _prepare_plan(args: argparse.Namespace, options: EngineOptions, cluster: Cluster) -> Prepared:
    """A YAML plan: its scenarios are the load (one lane each); its files travel with it."""
    for flag, attr in _LOAD_FLAGS:
        if getattr(args, attr, None) is not None:
            raise ConfigError(f"{flag}: a plan's scenarios set its load; change the plan instead")
    plan = load_plan(args.scenario)
    http = plan.http
    if args.host is not None:
        http = dataclasses.replace(http, base_url=args.host)
    if options.http.headers:
        http = dataclasses.replace(http, headers=(*http.headers, *options.http.headers))
    lanes = tuple(s.lane for s in plan.scenarios)
    opts = dataclasses.replace(options, http=http, model=lanes[0].model, lanes=lanes)
    exprs = (*args.threshold, *plan.thresholds)
    thresholds = tuple(parse_threshold(e) for e in exprs)
    bundle, entry = plan_bundle(Path(args.scenario), plan)
    scenario = LoadedScenario(path=args.scenario, sha256=bundle.sha256, scenarios=())
    return Prepared(
        scenario,
        opts,
        thresholds,
        bundle,
        cluster,
        exprs,
        entry=entry,
        tag_index=plan.tag_index,
        plan_tags=plan.tags or None,
    )


def plan_bundle(path: Path, plan: Plan) -> tuple[Bundle, str | None]:
    """The plan alone, or with the files it reads (CSV data, request bodies) as a
    .tar.gz whose entry is the plan: the agents need those files too."""
    files = [Path(src.path) for src in plan.data.values()] + [Path(f) for f in plan.files]
    if not files:
        return Bundle.from_path(path), None
    base = path.resolve().parent
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for f in [path, *files]:
            full = f.resolve()
            if base not in full.parents and full != base:
                raise ConfigError(
                    f"{f}: a file the plan reads must be in the plan's folder ({base}) "
                    "so that it can travel to the agents"
                )
            tar.add(full, arcname=full.relative_to(base).as_posix(), recursive=False)
    return Bundle.from_bytes(path.stem + ".tar.gz", buf.getvalue()), path.name


def _is_legacy_target(name: str) -> bool:
    return not name.endswith(".py") and not Path(name).exists() and name.count(".") >= 2


def _prepare_legacy(args: argparse.Namespace, options: EngineOptions, cluster: Cluster) -> Prepared:
    """``pkg.module.Class.test_x``: checked here (imported once), shipped as the module."""
    from cannonade.runners.legacy import find_module_file, load_test, split_target

    module, cls_name, method = split_target(args.scenario)
    path = find_module_file(module, Path.cwd())
    load_test(path, cls_name, method)
    bundle = Bundle.from_path(path)
    exprs = tuple(args.threshold)
    thresholds = tuple(parse_threshold(e) for e in exprs)
    return Prepared(None, options, thresholds, bundle, cluster, exprs, legacy=args.scenario)


def _prepare_runner(args: argparse.Namespace, options: EngineOptions, cluster: Cluster) -> Prepared:
    if args.exec is not None:
        raise ConfigError("give --test-runner or --exec, not both")
    if args.scenario is None:
        raise ConfigError("--test-runner needs the test to run (it replaces {test})")
    model = options.model
    if not isinstance(model, Cycles):
        raise ConfigError("--test-runner runs loads' user cycles: -u 10:20 with --hits or -d")
    try:
        argv = [a.replace("{test}", args.scenario) for a in shlex.split(args.test_runner)]
    except ValueError as e:
        raise ConfigError(f"--test-runner {args.test_runner!r}: {e}") from None
    if not argv:
        raise ConfigError("--test-runner needs a command")
    # Each runner makes all of its user's hits, or runs for the step's duration itself:
    # one runner per user per step, as loads does. A runner that ends early is not
    # started again; the step ends when every runner has, or when its duration is up.
    once = dataclasses.replace(model, hits=1)
    runner = {"argv": argv, "hits": model.hits, "duration": model.duration}
    # Nothing to ship but the command: the runner must exist on the agents.
    bundle = Bundle.from_bytes("test-runner.json", json.dumps(runner).encode())
    exprs = tuple(args.threshold)
    thresholds = tuple(parse_threshold(e) for e in exprs)
    opts = dataclasses.replace(options, model=once)
    return Prepared(None, opts, thresholds, bundle, cluster, exprs, None, runner)


def _prepare_exec(args: argparse.Namespace, options: EngineOptions, cluster: Cluster) -> Prepared:
    if args.scenario is not None:
        raise ConfigError("give a scenario file or --exec, not both")
    try:
        argv = shlex.split(args.exec)
    except ValueError as e:
        raise ConfigError(f"--exec {args.exec!r}: {e}") from None
    if not argv:
        raise ConfigError("--exec needs a program")
    program = Path(argv[0])
    if not program.is_file() or not os.access(program, os.X_OK):
        raise ConfigError(f"--exec: {program} is not an executable file")
    # The program travels to the agents like a scenario: bytes and sha256.
    bundle = Bundle.from_path(program)
    exprs = tuple(args.threshold)
    thresholds = tuple(parse_threshold(e) for e in exprs)
    return Prepared(None, options, thresholds, bundle, cluster, exprs, tuple(argv[1:]))


def describe_options(options: EngineOptions) -> dict[str, object]:
    """The run's options as plain values, for the summary export and reports."""
    model = options.model
    out: dict[str, object] = {"model": type(model).__name__}
    out.update(dataclasses.asdict(model))
    out["host"] = options.http.base_url
    out["graceful_stop"] = options.graceful_stop
    out["max_duration"] = options.max_duration
    out["timeout"] = options.http.timeout
    return out


def wire_options(prepared: Prepared) -> dict[str, Any]:
    from cannonade.protocol.options import options_to_wire

    wire = options_to_wire(prepared.options)
    if prepared.exec_args is not None:
        wire["exec"] = list(prepared.exec_args)
    if prepared.runner is not None:
        wire["test_runner"] = prepared.runner
    if prepared.legacy is not None:
        wire["legacy"] = prepared.legacy
    if prepared.entry is not None:
        wire["entry"] = prepared.entry
    return wire


def options_view(prepared: Prepared) -> dict[str, object]:
    view = _options_view(prepared)
    if prepared.tag_index is not None:
        # Stored with the run, so thresholds filtered by scenario or group are judged
        # the same when the run is shown or reported later.
        view["tag_index"] = prepared.tag_index
    if prepared.plan_tags:
        view["tags"] = prepared.plan_tags
    return view


def _options_view(prepared: Prepared) -> dict[str, object]:
    if prepared.runner is not None:
        view = describe_options(prepared.options)
        view["test_runner"] = prepared.runner
        return view
    if prepared.legacy is not None:
        return describe_options(prepared.options)
    if prepared.exec_args is not None:
        view = describe_options(prepared.options)
        view["exec"] = [scenario_name(prepared), *prepared.exec_args]
        return view
    if prepared.scenario is None:  # turrets run their own load model
        return {"model": "OCT turrets", "duration": model_duration(prepared.options.model)}
    return describe_options(prepared.options)


def scenario_name(prepared: Prepared) -> str:
    if prepared.scenario is not None:
        return prepared.scenario.path
    if prepared.legacy is not None:
        return prepared.legacy
    if prepared.runner is not None:
        return " ".join(prepared.runner["argv"])
    if prepared.bundle is not None:  # --exec
        return prepared.bundle.filename
    return "(OCT turrets' own scripts)"


def new_run_id() -> str:
    """Sortable by time, unique by its random tail; a prefix is enough to name it."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
