"""``cannonade report``: a stored run as a self-contained HTML file; and the report
``cannonade run`` and ``cannonade demo`` write at the end of every run.

The report is built from the store, like ``cannonade show``: a run's report written
later from the same database has the same numbers as the one written when it ended.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cannonade.cli.history import EXIT_ERROR, EXIT_OK
from cannonade.errors import CannonadeError
from cannonade.model.summary import Summary
from cannonade.report.html import load_for_report, write_html_report
from cannonade.report.stored import stored_summary
from cannonade.storage import DEFAULT_PATH, Store


def add_report_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="write a stored run's report as one HTML file")
    p.add_argument("run_id", metavar="RUN_ID", help="a run id, or a unique prefix of one")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="the HTML file")
    p.add_argument("--db", default=DEFAULT_PATH, metavar="FILE", help="default: %(default)s")


def default_report_path(db: str | os.PathLike[str], run_id: str) -> Path:
    """``<db stem>-<run id>.html`` beside the database: runs.db -> runs-RUN_ID.html."""
    p = Path(db)
    return p.with_name(f"{p.stem}-{run_id}.html")


def write_report(
    store: Store, prefix: str, output: str | os.PathLike[str], summary: Summary | None = None
) -> Path:
    """Write the report of the run ``prefix`` names; ``summary`` is the one already
    printed for it (else it is rebuilt as ``show`` does). Raises CannonadeError for an
    unknown or ambiguous run, OSError if the file cannot be written."""
    stored = load_for_report(store, store.resolve(prefix))  # with the timers' series
    write_html_report(stored, summary if summary is not None else stored_summary(stored), output)
    return Path(output)


def report_command(args: argparse.Namespace) -> int:
    path = Path(args.db)
    if not path.exists():
        print(f"error: no database at {path}", file=sys.stderr)
        return EXIT_ERROR
    try:
        with Store.open(path, create=False) as store:
            out = write_report(store, args.run_id, args.output)
    except CannonadeError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as e:
        print(f"error: {args.output}: {e.strerror}", file=sys.stderr)
        return EXIT_ERROR
    print(f"report: {out}", file=sys.stderr)
    return EXIT_OK


def write_run_report(
    db: str, run_id: str, output: str | None, summary: Summary | None = None
) -> Path | None:
    """The report at the end of ``cannonade run`` (at ``output``, default beside the
    database), announced on stderr; None, with the reason on stderr, if it failed."""
    out = Path(output) if output else default_report_path(db, run_id)
    try:
        with Store.open(db, create=False) as store:
            write_report(store, run_id, out, summary)
    except CannonadeError as e:
        print(f"error: report: {e}", file=sys.stderr)
        return None
    except OSError as e:
        print(f"error: report {out}: {e.strerror}", file=sys.stderr)
        return None
    print(f"report: {out}", file=sys.stderr)
    return out
