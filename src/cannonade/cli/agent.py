"""``cannonade agent --hq HOST``: a turret that runs cannons for an HQ."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from cannonade.errors import CannonadeError, ConfigError
from cannonade.launch.cluster import add_port_arguments, agent_curve, check_port
from cannonade.transport.sockets import Transport


def add_agent_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("agent", help="run cannons for an HQ (a turret)")
    p.add_argument("--hq", required=True, help="the HQ's host name or address")
    p.add_argument("--name", default="", help="display name (default: the host name)")
    p.add_argument(
        "--cannons", type=int, default=None, help="cannon processes (default: one per core)"
    )
    add_port_arguments(p)
    p.add_argument("--curve-key", default=None, help="this agent's secret certificate")
    p.add_argument("--curve-hq", default=None, help="the HQ's public certificate (hq.key)")
    p.add_argument("--uuid", default=None, help=argparse.SUPPRESS)
    # Used by `cannonade run` for its local agent: the pid of the process it must not
    # outlive (given explicitly: by the time the agent asks, that parent may be gone).
    p.add_argument("--exit-with-parent", type=int, default=None, help=argparse.SUPPRESS)


def agent_command(args: argparse.Namespace) -> int:
    from cannonade.agent.agent import Agent, AgentConfig
    from cannonade.agent.lifeline import die_with_parent

    if args.exit_with_parent is not None:
        die_with_parent(args.exit_with_parent)
    try:
        cannons = args.cannons if args.cannons is not None else (os.cpu_count() or 1)
        if cannons < 1:
            raise ConfigError(f"--cannons must be at least 1, got {cannons}")
        check_port(args.publisher_port, "--publisher-port")
        check_port(args.results_port, "--results-port")
        config = AgentConfig(
            hq=args.hq,
            publisher_port=args.publisher_port,
            results_port=args.results_port,
            name=args.name,
            cannons=cannons,
            curve=agent_curve(args),
            **({"uuid": args.uuid} if args.uuid else {}),
        )
        agent = Agent(config, Transport())
    except CannonadeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    stop = threading.Event()
    if args.exit_with_parent is not None:
        # A local agent of `cannonade run`: the HQ decides when to stop. Ctrl-C reaches
        # it through the process group; ignore it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    else:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        print(
            f"cannonade agent {agent.name} ({agent.uuid}) with {cannons} cannon(s), "
            f"HQ {args.hq}:{args.publisher_port}/{args.results_port}",
            file=sys.stderr,
            flush=True,
        )
    agent.serve(stop)
    return 0
