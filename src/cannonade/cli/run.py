"""``cannonade run``: one process runs the engine and prints the verdict."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import signal
import sys
import time
from dataclasses import dataclass

from cannonade.cli.options import build_options
from cannonade.config import EngineOptions, model_duration
from cannonade.engine.engine import Engine
from cannonade.errors import CannonadeError
from cannonade.model.aggregate import Aggregator
from cannonade.model.summary import RunInfo, Summary, compute_summary
from cannonade.model.thresholds import Threshold, parse_threshold
from cannonade.report.export import write_summary_export
from cannonade.report.live import LiveProgress, snapshot_from
from cannonade.report.text import render_summary
from cannonade.scenarios.loader import LoadedScenario, load_path

EXIT_OK, EXIT_ERROR, EXIT_THRESHOLDS, EXIT_INTERRUPTED = 0, 1, 99, 130


@dataclass(frozen=True, slots=True)
class Prepared:
    scenario: LoadedScenario
    options: EngineOptions
    thresholds: tuple[Threshold, ...]


def prepare(args: argparse.Namespace) -> Prepared:
    """Everything that can be wrong with the input is found here, before any load."""
    options = build_options(args)
    scenario = load_path(args.scenario)
    exprs = [*args.threshold, *scenario.thresholds]
    return Prepared(scenario, options, tuple(parse_threshold(e) for e in exprs))


def run_command(args: argparse.Namespace) -> int:
    try:
        prepared = prepare(args)
    except CannonadeError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    outcome = run_prepared(prepared, quiet=args.quiet)
    summary = outcome.summary
    print(render_summary(summary))
    if outcome.setup_failed:
        print("error: @setup failed (its error is listed above); no load was run", file=sys.stderr)
    if args.summary_export:
        try:
            write_summary_export(summary, args.summary_export)
        except OSError as e:
            print(f"error: --summary-export {args.summary_export}: {e.strerror}", file=sys.stderr)
            return EXIT_ERROR
    return EXIT_ERROR if outcome.setup_failed else exit_code(summary)


def exit_code(summary: Summary) -> int:
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if not summary.passed:
        return EXIT_THRESHOLDS
    return EXIT_OK


@dataclass(frozen=True, slots=True)
class Outcome:
    summary: Summary
    setup_failed: bool = False


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


def run_prepared(prepared: Prepared, *, quiet: bool) -> Outcome:
    _install_uvloop()
    _tune_gc()
    return asyncio.run(_run(prepared, quiet))


def _tune_gc() -> None:
    # Every request allocates a few short-lived objects (futures, coroutines, the
    # response); with the default threshold of 700 the young-generation collector runs
    # every ~70 requests, about 2,000 instructions a request (callgrind). Collect less
    # often, and move everything alive at start (modules, the scenario) out of the
    # collector's way for good.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # plain asyncio still works, only slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _run(prepared: Prepared, quiet: bool) -> Outcome:
    aggregator = Aggregator()
    engine = Engine(prepared.scenario, prepared.options, aggregator.add)
    loop = asyncio.get_running_loop()
    interrupts = [0]
    main_task = asyncio.current_task()

    def on_signal() -> None:
        # First Ctrl-C: graceful stop. Second: cancel running iterations now. Either way
        # the summary of what ran is printed. A third gives up waiting on anything.
        interrupts[0] += 1
        if interrupts[0] == 1:
            print("\nstopping gracefully (Ctrl-C again to stop now)", file=sys.stderr)
            engine.stop()
        elif interrupts[0] == 2:
            print("stopping now", file=sys.stderr)
            engine.kill()
        elif main_task is not None:
            main_task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    total = model_duration(prepared.options.model)
    started = time.time()
    live = LiveProgress(enabled=LiveProgress.should_enable(quiet, sys.stdout), total=total)
    updater = asyncio.create_task(_update_live(live, aggregator, started, total))
    ended = started
    setup_failed = False
    try:
        with live:
            try:
                result = await engine.run()
                started, ended = result.started, result.ended
                setup_failed = result.setup_failed
            except asyncio.CancelledError:
                ended = time.time()
            finally:
                updater.cancel()
                await asyncio.gather(updater, return_exceptions=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    info = RunInfo(
        started=started,
        ended=ended,
        interrupted=interrupts[0] > 0,
        options=describe_options(prepared.options),
        scenario=prepared.scenario.path,
    )
    return Outcome(compute_summary(aggregator, info, prepared.thresholds), setup_failed)


async def _update_live(
    live: LiveProgress, aggregator: Aggregator, started: float, total: float | None
) -> None:
    while True:
        await asyncio.sleep(1.0)
        now = time.time()
        live.update(snapshot_from(aggregator, int(now) - 1, elapsed=now - started, total=total))
