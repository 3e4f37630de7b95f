"""``cannonade validate FILE`` and ``cannonade schema``: YAML plans checked before any
load, and the format's JSON Schema for editors."""

from __future__ import annotations

import argparse
import json
import sys

EXIT_OK, EXIT_INVALID = 0, 1


def add_plan_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    v = sub.add_parser("validate", help="check a YAML plan and report every problem")
    v.add_argument("plan", help="a YAML test plan (loadr's format)")
    sub.add_parser("schema", help="print the JSON Schema of the YAML plan format")


def validate_command(args: argparse.Namespace) -> int:
    from cannonade.plans.compile import PlanInvalid, load_plan

    try:
        plan = load_plan(args.plan)
    except PlanInvalid as e:
        for problem in e.problems:
            print(problem, file=sys.stderr)
        n = len(e.problems)
        print(f"{args.plan}: {n} problem{'s' if n != 1 else ''}", file=sys.stderr)
        return EXIT_INVALID
    names = ", ".join(f"{s.name} ({s.executor})" for s in plan.scenarios)
    print(f"{args.plan}: valid — {len(plan.scenarios)} scenario(s): {names}")
    return EXIT_OK


def schema_command(args: argparse.Namespace) -> int:
    from cannonade.plans.schema import plan_schema

    print(json.dumps(plan_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK
