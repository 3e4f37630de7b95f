"""``cannonade demo``: the embedded target in its own process, then a real load test."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cannonade.cli.report import write_run_report
from cannonade.cli.run import EXIT_ERROR, exit_code, run_prepared
from cannonade.errors import CannonadeError
from cannonade.launch.options import add_run_arguments
from cannonade.launch.plan import prepare
from cannonade.report.text import render_summary
from cannonade.target.process import start_target


def find_quickstart() -> Path | None:
    here = Path(__file__).resolve()
    for base in (Path.cwd(), *here.parents):
        candidate = base / "examples" / "quickstart.py"
        if candidate.is_file():
            return candidate
    return None


def demo_command(args: argparse.Namespace) -> int:
    quickstart = find_quickstart()
    if quickstart is None:
        print("error: examples/quickstart.py not found (run from the repository)", file=sys.stderr)
        return EXIT_ERROR
    with start_target() as target:
        print(f"embedded target: {target.url}")
        run_args = argparse.ArgumentParser(add_help=False)
        run_args.add_argument("scenario")
        add_run_arguments(run_args)
        argv = [
            str(quickstart),
            "--host",
            target.url,
            "-u",
            args.users,
            "-d",
            args.duration,
            "--rampup",
            "2s",
        ]
        if args.quiet:
            argv.append("--quiet")
        ns = run_args.parse_args(argv)
        try:
            prepared = prepare(ns)
        except CannonadeError as e:
            print(f"error: {e}", file=sys.stderr)
            return EXIT_ERROR
        print(f"running {quickstart.name}: {args.users} users for {args.duration}")
        outcome = run_prepared(prepared, quiet=args.quiet)
        summary = outcome.summary
        print(render_summary(summary))
        served = target.stats()["requests"]
        sent = int(summary.totals.requests)
        verdict = "they match" if served == sent else "MISMATCH"
        print(f"requests reported: {sent}; requests the target served: {served} ({verdict})")
    if not ns.no_report:
        write_run_report(prepared.cluster.db, outcome.run_id, ns.report, summary)
    return exit_code(summary)
