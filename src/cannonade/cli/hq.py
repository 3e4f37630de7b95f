"""``cannonade hq``: the long-running HQ that agents join (its runs come from the API)."""

from __future__ import annotations

import argparse
import signal
import sys
import time

from cannonade.cli.cluster import add_hq_arguments, check_port, hq_curve
from cannonade.errors import CannonadeError


def add_hq_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("hq", help="run the HQ that agents join")
    add_hq_arguments(p)


def hq_command(args: argparse.Namespace) -> int:
    from cannonade.hq.membership import Change
    from cannonade.hq.server import HQ, HQConfig, Interrupts
    from cannonade.storage import Store

    try:
        check_port(args.publisher_port, "--publisher-port")
        check_port(args.results_port, "--results-port")
        config = HQConfig(args.listen, args.publisher_port, args.results_port, hq_curve(args))
        store = Store.open(args.db)
        hq = HQ(config, store)
    except CannonadeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    interrupted = store.interrupt_unfinished(time.time())
    for run_id in interrupted:
        print(
            f"run {run_id} was in progress when the HQ stopped: marked interrupted", file=sys.stderr
        )

    def show(change: Change) -> None:
        print(
            f"agent {change.name} ({change.uuid}): {change.what} [{change.status}]",
            file=sys.stderr,
            flush=True,
        )

    hq.on_change = show
    hq.on_reject = lambda text: print(f"rejected {text}", file=sys.stderr, flush=True)
    interrupts = Interrupts()

    def on_signal(*_: object) -> None:
        interrupts.level += 1

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    print(
        f"cannonade hq: commands on {args.listen}:{hq.publisher_port}, "
        f"results on {args.listen}:{hq.results_port}, runs stored in {args.db}",
        file=sys.stderr,
        flush=True,
    )
    try:
        hq.serve(interrupts)
    finally:
        hq.close()
        store.close()
    return 0
