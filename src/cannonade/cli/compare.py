"""``cannonade compare RUN_A RUN_B``: what changed from a baseline run to another, and
``--fail-if`` conditions that gate a CI pipeline on a regression.

Both summaries are recomputed from the database as ``cannonade show`` does, so the
numbers compared are the numbers each run printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cannonade.errors import CannonadeError
from cannonade.model.regress import parse_conditions
from cannonade.model.summary import Summary
from cannonade.report.compare import compare, comparison_json
from cannonade.report.compare_text import condition_line, render_comparison
from cannonade.report.stored import stored_summary
from cannonade.storage import DEFAULT_PATH, Store

# As ``cannonade run`` (cli/main.py, which imports every command: not imported here).
EXIT_OK, EXIT_ERROR, EXIT_THRESHOLDS = 0, 1, 99


def add_compare_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("compare", help="compare two stored runs; --fail-if gates on regressions")
    p.add_argument("run_a", metavar="RUN_A", help="the baseline: a run id or a unique prefix")
    p.add_argument("run_b", metavar="RUN_B", help="the run compared with it")
    p.add_argument("--db", default=DEFAULT_PATH, metavar="FILE", help="default: %(default)s")
    p.add_argument(
        "--fail-if",
        action="append",
        default=[],
        metavar="EXPR",
        help="exit 99 when B regressed: 'p95 +10%%', 'p99 +5ms', 'rps -5%%', "
        "'error_rate +0.01', 'p95{name:/login} +10%%' (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")


def compare_command(args: argparse.Namespace) -> int:
    try:
        # Expressions first: a typo is reported before any database is read.
        conditions = parse_conditions(args.fail_if)
        a, b = _load(Path(args.db), args.run_a, args.run_b)
    except CannonadeError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_ERROR
    result = compare(a, b, conditions)
    if args.json:
        print(json.dumps(comparison_json(result), indent=2))
        # stdout stays one JSON document; a CI log still says what failed.
        for r in result.failed:
            print(condition_line(r), file=sys.stderr)
    else:
        print(render_comparison(result), end="")
    return EXIT_OK if result.passed else EXIT_THRESHOLDS


def _load(path: Path, run_a: str, run_b: str) -> tuple[Summary, Summary]:
    if not path.exists():
        # Store.open would create an empty database; looking must not.
        raise CannonadeError(
            f"no database at {path} (runs are stored by cannonade run/hq with --db)"
        )
    with Store.open(path, create=False) as store:
        ids = store.resolve(run_a), store.resolve(run_b)
        # Per-second histograms are for charts; a summary needs only the totals.
        a, b = (stored_summary(store.load(i, series_trends=frozenset())) for i in ids)
    return a, b
