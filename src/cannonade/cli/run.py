"""``cannonade run``: a one-shot HQ. It starts a local agent (unless told not to),
drives one run through it and any other agents that joined, stores it, prints the
summary computed from the store, and exits with the verdict.

There is one code path: a laptop run goes through the same HQ, agent and cannon
processes as a run over twenty machines, only over loopback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from cannonade.cli.cluster import check_port, hq_curve
from cannonade.cli.options import build_options
from cannonade.cli.report import write_run_report
from cannonade.config import Cycles, EngineOptions, model_duration, parse_duration
from cannonade.errors import CannonadeError, ConfigError
from cannonade.model.summary import AgentLine, RunInfo, Summary, compute_summary
from cannonade.model.thresholds import Threshold, parse_threshold
from cannonade.report.export import write_summary_export
from cannonade.report.text import render_summary
from cannonade.scenarios.bundle import Bundle
from cannonade.scenarios.loader import LoadedScenario, load_path
from cannonade.transport.security import Curve

if TYPE_CHECKING:
    from cannonade.hq.run import Controller, RunSpec
    from cannonade.hq.server import HQ, Interrupts, RunOutcome
    from cannonade.model.aggregate import Aggregator

EXIT_OK, EXIT_ERROR, EXIT_THRESHOLDS, EXIT_INTERRUPTED = 0, 1, 99, 130
AGENT_EXIT_WAIT = 15.0


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
    scenario = load(args.scenario)
    bundle = Bundle.from_path(args.scenario)
    exprs = (*args.threshold, *scenario.thresholds)
    return Prepared(
        scenario, options, tuple(parse_threshold(e) for e in exprs), bundle, cluster, exprs
    )


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


def run_command(args: argparse.Namespace) -> int:
    try:
        prepared = prepare(args)
    except CannonadeError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    try:
        outcome = run_prepared(prepared, quiet=args.quiet)
    except CannonadeError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    summary = outcome.summary
    print(render_summary(summary))
    if outcome.setup_failed:
        print("error: @setup failed (its error is listed above); no load was run", file=sys.stderr)
    elif outcome.error:
        print(f"error: {outcome.error}", file=sys.stderr)
    print(f"run {outcome.run_id} stored in {prepared.cluster.db}", file=sys.stderr)
    if args.summary_export:
        try:
            write_summary_export(summary, args.summary_export)
        except OSError as e:
            print(f"error: --summary-export {args.summary_export}: {e.strerror}", file=sys.stderr)
            return EXIT_ERROR
    if not args.no_report and not write_run_report(
        prepared.cluster.db, outcome.run_id, args.report, summary
    ):
        return EXIT_ERROR
    if outcome.setup_failed or (outcome.error and not summary.interrupted):
        return EXIT_ERROR
    return exit_code(summary)


def exit_code(summary: Summary) -> int:
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if not summary.passed:
        return EXIT_THRESHOLDS
    return EXIT_OK


@dataclass(frozen=True, slots=True)
class Outcome:
    summary: Summary
    run_id: str = ""
    setup_failed: bool = False
    error: str = ""


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
    return wire


def options_view(prepared: Prepared) -> dict[str, object]:
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


def run_prepared(prepared: Prepared, *, quiet: bool) -> Outcome:
    from cannonade.hq.run import RunSpec
    from cannonade.hq.server import HQ, HQConfig, Interrupts, model_bound
    from cannonade.storage import Store

    c = prepared.cluster
    store = Store.open(c.db)
    try:
        hq = HQ(HQConfig(c.listen, c.publisher_port, c.results_port, c.curve), store)
    except BaseException:
        store.close()
        raise
    agents: list[subprocess.Popen[bytes]] = []
    opts = prepared.options
    spec = RunSpec(
        run_id=new_run_id(),
        bundle=prepared.bundle,
        options=wire_options(prepared),
        min_agents=c.min_agents,
        wait_agents=c.wait_agents,
        bound=model_bound(model_duration(opts.model), opts.max_duration),
        graceful_stop=opts.graceful_stop,
    )
    if c.min_agents > c.local_agents:
        print(
            f"waiting for {c.min_agents - c.local_agents} agent(s): "
            f"cannonade agent --hq HOST --publisher-port {hq.publisher_port} "
            f"--results-port {hq.results_port}",
            file=sys.stderr,
            flush=True,
        )
    interrupts = Interrupts()
    previous = _install_signals(interrupts)
    try:
        if c.local_agents:
            agents.append(_start_local_agent(hq.publisher_port, hq.results_port, c.cannons))
        outcome = _execute(hq, spec, prepared, interrupts, quiet)
    finally:
        _restore_signals(previous)
        _stop_agents(agents)
        hq.close()
    try:
        stored = store.load(outcome.run_id)
        info = RunInfo(
            started=outcome.started,
            ended=outcome.ended,
            interrupted=outcome.status == "interrupted" or interrupts.level > 0,
            options=options_view(prepared),
            scenario=scenario_name(prepared),
            run_id=outcome.run_id,
            agents=tuple(
                AgentLine(
                    a.name,
                    a.uuid,
                    a.cannons,
                    a.status,
                    a.lost_at,
                    a.losses,
                    a.intervals,
                    a.expected,
                    a.discrepancies,
                )
                for a in outcome.agents
            ),
            notes=_notes(outcome.rejected),
            error="" if outcome.setup_failed else outcome.error,
        )
        summary = compute_summary(stored.aggregator, info, prepared.thresholds)
        store.set_status(outcome.run_id, outcome.status, at=time.time(), verdict=summary.verdict)
    finally:
        store.close()
    return Outcome(summary, outcome.run_id, outcome.setup_failed, outcome.error)


def _notes(rejected: dict[str, int]) -> tuple[str, ...]:
    # Duplicates are the agents' re-sends after a lost ack: expected, and harmless.
    return tuple(
        f"{n} rejected: {why}"
        for why, n in sorted(rejected.items())
        if n and why != "duplicate delta"
    )


def _execute(
    hq: HQ, spec: RunSpec, prepared: Prepared, interrupts: Interrupts, quiet: bool
) -> RunOutcome:
    from cannonade.report.live import LiveProgress, snapshot_from

    total = model_duration(prepared.options.model)
    live = LiveProgress(enabled=LiveProgress.should_enable(quiet, sys.stdout), total=total)

    def progress(aggregator: Aggregator, run: Controller) -> None:
        if run.start_at is None:
            return
        now = time.time()
        elapsed = max(0.0, now - run.start_at)
        live.update(snapshot_from(aggregator, int(now) - 1, elapsed=elapsed, total=total))

    with live:
        return hq.execute(
            spec,
            scenario=scenario_name(prepared),
            thresholds=prepared.expressions,
            options_view=options_view(prepared),
            interrupts=interrupts,
            progress=progress,
        )


_Handler = Callable[[int, FrameType | None], object] | int | None


def _install_signals(interrupts: Interrupts) -> dict[int, _Handler]:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        # First Ctrl-C: graceful stop. Second: cancel running iterations now. Either way
        # the summary of what ran is printed. A third gives up waiting on anything.
        interrupts.level += 1
        if interrupts.level == 1:
            print("\nstopping gracefully (Ctrl-C again to stop now)", file=sys.stderr)
        elif interrupts.level == 2:
            print("stopping now", file=sys.stderr)

    previous: dict[int, _Handler] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, on_signal)
    return previous


def _restore_signals(previous: dict[int, _Handler]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _start_local_agent(
    publisher_port: int, results_port: int, cannons: int
) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "cannonade",
        "agent",
        "--hq",
        "127.0.0.1",
        "--publisher-port",
        str(publisher_port),
        "--results-port",
        str(results_port),
        "--cannons",
        str(cannons),
        "--name",
        "local",
        "--exit-with-parent",
        str(os.getpid()),
    ]
    return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)


def _stop_agents(agents: list[subprocess.Popen[bytes]]) -> None:
    for p in agents:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + AGENT_EXIT_WAIT
    for p in agents:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
