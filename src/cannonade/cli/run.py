"""``cannonade run``: a one-shot HQ. It starts a local agent (unless told not to),
drives one run through it and any other agents that joined, stores it, prints the
summary computed from the store, and exits with the verdict.

There is one code path: a laptop run goes through the same HQ, agent and cannon
processes as a run over twenty machines, only over loopback.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING

from cannonade.cli.report import write_run_report
from cannonade.config import options_duration
from cannonade.errors import CannonadeError
from cannonade.launch.plan import (
    Prepared,
    new_run_id,
    options_view,
    prepare,
    scenario_name,
    wire_options,
)
from cannonade.model.summary import AgentLine, RunInfo, Summary, compute_summary
from cannonade.report.export import write_summary_export
from cannonade.report.outputs import parse_outputs, write_run_outputs
from cannonade.report.text import render_summary

if TYPE_CHECKING:
    from cannonade.hq.run import Controller, RunSpec
    from cannonade.hq.server import HQ, Interrupts, RunOutcome
    from cannonade.model.aggregate import Aggregator

EXIT_OK, EXIT_ERROR, EXIT_THRESHOLDS, EXIT_INTERRUPTED = 0, 1, 99, 130
AGENT_EXIT_WAIT = 15.0


def run_command(args: argparse.Namespace) -> int:
    try:
        outputs = parse_outputs(args.out)  # a bad --out fails now, not after the run
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
    if not write_run_outputs(prepared.cluster.db, outcome.run_id, outputs, args.junit, summary):
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
        bound=model_bound(options_duration(opts), opts.max_duration),
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

    total = options_duration(prepared.options)
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
