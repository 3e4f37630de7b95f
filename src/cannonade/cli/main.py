"""``cannonade`` command line: one sub-command per module, dispatched here."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from cannonade import __version__

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_THRESHOLDS = 99
EXIT_INTERRUPTED = 130


def _parser() -> argparse.ArgumentParser:
    from cannonade.launch.options import add_run_arguments

    p = argparse.ArgumentParser(
        prog="cannonade", description="Distributed load testing with honest numbers."
    )
    p.add_argument("--version", action="version", version=f"cannonade {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a scenario file and print a summary")
    run.add_argument(
        "scenario",
        nargs="?",
        help="a Python scenario (.py) or YAML plan (.yaml); without one, an HQ for OCT turrets",
    )
    add_run_arguments(run)

    demo = sub.add_parser("demo", help="start the embedded target and load-test it")
    demo.add_argument("-d", "--duration", default="20s")
    demo.add_argument("-u", "--users", default="20")
    demo.add_argument("-q", "--quiet", action="store_true")

    from cannonade.cli.agent import add_agent_parser
    from cannonade.cli.compare import add_compare_parser
    from cannonade.cli.history import add_history_parsers
    from cannonade.cli.hq import add_hq_parser
    from cannonade.cli.keys import add_keys_parser
    from cannonade.cli.plans import add_plan_parsers
    from cannonade.cli.plugin import add_plugin_parser
    from cannonade.cli.report import add_report_parser
    from cannonade.cli.submit import add_submit_parser
    from cannonade.cli.turret import add_turret_parsers

    add_hq_parser(sub)
    add_agent_parser(sub)
    add_history_parsers(sub)
    add_report_parser(sub)
    add_compare_parser(sub)
    add_submit_parser(sub)
    add_keys_parser(sub)
    add_turret_parsers(sub)
    add_plugin_parser(sub)
    add_plan_parsers(sub)

    target = sub.add_parser("target", help="serve the embedded HTTP test target")
    target.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    target.add_argument("--host", default="127.0.0.1")
    target.add_argument("--allow-remote", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    # numpy's OpenBLAS starts a thread per core that spins between BLAS calls; cannonade
    # makes none (it only bins histograms), so those threads would only steal CPU from
    # the event loop. Must be set before numpy is first imported.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    args = _parser().parse_args(argv)
    if args.command == "run":
        from cannonade.cli.run import run_command

        return run_command(args)
    if args.command == "demo":
        from cannonade.cli.demo import demo_command

        return demo_command(args)
    if args.command == "hq":
        from cannonade.cli.hq import hq_command

        return hq_command(args)
    if args.command == "agent":
        from cannonade.cli.agent import agent_command

        return agent_command(args)
    if args.command in ("runs", "show"):
        from cannonade.cli.history import history_command

        return history_command(args)
    if args.command == "compare":
        from cannonade.cli.compare import compare_command

        return compare_command(args)
    if args.command == "submit":
        from cannonade.cli.submit import submit_command

        return submit_command(args)
    if args.command == "report":
        from cannonade.cli.report import report_command

        return report_command(args)
    if args.command == "keys":
        from cannonade.cli.keys import keys_command

        return keys_command(args)
    if args.command == "turret":
        from cannonade.cli.turret import turret_command

        return turret_command(args)
    if args.command == "pack-turret":
        from cannonade.cli.turret import pack_command

        return pack_command(args)
    if args.command == "validate":
        from cannonade.cli.plans import validate_command

        return validate_command(args)
    if args.command == "schema":
        from cannonade.cli.plans import schema_command

        return schema_command(args)
    if args.command == "plugin":
        from cannonade.cli.plugin import plugin_command

        return plugin_command(args)
    if args.command == "target":
        from cannonade.target.server import main as target_main

        forwarded = ["--port", str(args.port), "--host", args.host]
        if args.allow_remote:
            forwarded.append("--allow-remote")
        return target_main(forwarded)
    _parser().print_help()
    return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
