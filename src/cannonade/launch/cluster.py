"""Options shared by the HQ side (``hq``, ``run``) and the agent side (``agent``)."""

from __future__ import annotations

import argparse

from cannonade.errors import ConfigError
from cannonade.transport.security import Curve, client_curve, server_curve


def add_port_arguments(p: argparse.ArgumentParser, default: int | None = 5000) -> None:
    p.add_argument(
        "--publisher-port",
        type=int,
        default=default,
        help="the HQ's PUB port for commands (OCT's 5000)",
    )
    p.add_argument(
        "--results-port",
        type=int,
        default=None if default is None else default + 1,
        help="the HQ's PULL port for status and results (OCT's 5001)",
    )


def add_hq_arguments(p: argparse.ArgumentParser, ports_default: int | None = 5000) -> None:
    g = p.add_argument_group("HQ")
    g.add_argument("--listen", default="127.0.0.1", help="address the HQ binds (loopback)")
    add_port_arguments(g, ports_default)  # type: ignore[arg-type]
    g.add_argument("--db", default="cannonade.db", help="SQLite file runs are stored in")
    g.add_argument(
        "--curve-key", default=None, help="the HQ's secret certificate (NAME.key_secret)"
    )
    g.add_argument("--curve-allow", default=None, help="directory of allowed agents' *.key files")


def check_port(value: int | None, option: str) -> None:
    if value is not None and not 0 <= value <= 65535:
        raise ConfigError(f"{option} {value} is not in 0-65535")


def hq_curve(args: argparse.Namespace) -> Curve | None:
    if (args.curve_key is None) != (args.curve_allow is None):
        raise ConfigError("--curve-key and --curve-allow go together")
    if args.curve_key is None:
        return None
    return server_curve(args.curve_key, args.curve_allow)


def agent_curve(args: argparse.Namespace) -> Curve | None:
    if (args.curve_key is None) != (args.curve_hq is None):
        raise ConfigError("--curve-key and --curve-hq go together")
    if args.curve_key is None:
        return None
    return client_curve(args.curve_key, args.curve_hq)
