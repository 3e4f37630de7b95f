"""``cannonade runs`` and ``cannonade show``: stored runs, listed and summarised again.

``show`` recomputes the summary from what the database holds, with the thresholds
as they were written for the run, so it prints what ``cannonade run`` printed (and the
same exit code) for as long as the file is kept.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cannonade.client.connect import add_hq_url_arguments
from cannonade.errors import CannonadeError
from cannonade.report.export import write_summary_export
from cannonade.report.outputs import Output, load_for_outputs, parse_outputs, write_outputs
from cannonade.report.stored import stored_summary
from cannonade.report.text import MISSING, format_count, format_duration, render_summary
from cannonade.storage import ACTIVE_STATUSES, DEFAULT_PATH, RunRow, RunStatus, Store, StoredRun

# As ``cannonade run`` (cli/run.py, which this does not import: it pulls in the engine).
EXIT_OK, EXIT_ERROR, EXIT_THRESHOLDS, EXIT_INTERRUPTED = 0, 1, 99, 130

RUNS_HEADER = ("ID", "STATUS", "VERDICT", "SCENARIO", "STARTED", "DURATION", "REQUESTS", "P95")


def add_history_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runs = sub.add_parser("runs", help="list the runs stored in a database, or on an HQ")
    _add_db(runs)
    add_hq_url_arguments(runs, required=False)
    runs.add_argument("--limit", type=_positive, default=20, metavar="N", help="newest N runs")
    runs.add_argument(
        "--status", choices=[s.value for s in RunStatus], default=None, help="only these"
    )

    show = sub.add_parser("show", help="print a stored run's summary again")
    show.add_argument("run_id", metavar="RUN_ID", help="a run id, or a unique prefix of one")
    _add_db(show)
    show.add_argument("--summary-export", default=None, metavar="FILE")
    show.add_argument("--out", action="append", default=[], metavar="KIND=PATH")
    show.add_argument("--junit", default=None, metavar="FILE")


def _add_db(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", default=DEFAULT_PATH, metavar="FILE", help="default: %(default)s")


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {n}")
    return n


def history_command(args: argparse.Namespace) -> int:
    if args.command == "runs" and args.hq is not None:
        from cannonade.cli.submit import remote_runs_command

        return remote_runs_command(args)
    path = Path(args.db)
    if not path.exists():
        print(
            f"error: no database at {path} (runs are stored by cannonade run/hq with --db)",
            file=sys.stderr,
        )
        return EXIT_ERROR
    try:
        with Store.open(path, create=False) as store:
            if args.command == "runs":
                return _runs(store, args.limit, args.status)
            return _show(
                store, args.run_id, args.summary_export, parse_outputs(args.out), args.junit
            )
    except CannonadeError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR


# -- runs -------------------------------------------------------------------------------------


def _runs(store: Store, limit: int, status: str | None) -> int:
    runs = store.list_runs(limit, status)
    if not runs:
        which = f"{status} runs" if status else "runs"
        print(f"no {which} stored in {store.path}")
        return EXIT_OK
    print_runs([_run_cells(store, run) for run in runs])
    return EXIT_OK


def print_runs(rows: list[tuple[str, ...]]) -> None:
    """The runs table under RUNS_HEADER (``cannonade runs`` with --db or --hq)."""
    table = [RUNS_HEADER, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(RUNS_HEADER))]
    for row in table:
        # Plain, space-aligned columns: greppable, and the same on a terminal or a pipe.
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _run_cells(store: Store, run: RunRow) -> tuple[str, ...]:
    head = store.headline(run.id)
    return (
        run.id,
        run.status,
        run.verdict or MISSING,
        run.scenario or MISSING,
        _local_time(run.started),
        format_duration(_duration(run)),
        format_count(head.requests),
        format_duration(head.p95),
    )


def _local_time(epoch: float | None) -> str:
    if epoch is None:
        return MISSING
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def _duration(run: RunRow) -> float | None:
    if run.started is None or run.ended is None:
        return None
    return max(0.0, run.ended - run.started)


# -- show -------------------------------------------------------------------------------------


def _show(
    store: Store, prefix: str, export: str | None, outputs: tuple[Output, ...], junit: str | None
) -> int:
    # Per-second histograms are for charts (and --out); a summary needs only the totals.
    run_id = store.resolve(prefix)
    stored = (
        load_for_outputs(store, run_id)
        if outputs
        else store.load(run_id, series_trends=frozenset())
    )
    summary = stored_summary(stored)
    print(_header(stored))
    print(render_summary(summary))
    if export:
        try:
            write_summary_export(summary, export)
        except OSError as e:
            print(f"error: --summary-export {export}: {e.strerror}", file=sys.stderr)
            return EXIT_ERROR
    try:
        for path in write_outputs(stored, summary, outputs, junit):
            print(f"output: {path}", file=sys.stderr)
    except OSError as e:
        print(f"error: --out/--junit {e.filename}: {e.strerror}", file=sys.stderr)
        return EXIT_ERROR
    if stored.status == RunStatus.FAILED:
        return EXIT_ERROR
    if summary.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if summary.passed else EXIT_THRESHOLDS


def _header(stored: StoredRun) -> str:
    parts = [f"run {stored.id}", stored.status, stored.scenario or MISSING]
    parts.append(f"started {_local_time(stored.started)}")
    if stored.status == RunStatus.QUEUED or stored.status in ACTIVE_STATUSES:
        parts.append("not finished: the summary covers what is stored so far")
    return ", ".join(parts)
