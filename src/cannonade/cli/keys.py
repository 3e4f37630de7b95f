"""``cannonade keys generate NAME``: CURVE key pairs for the HQ and its agents."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cannonade.errors import CannonadeError


def add_keys_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("keys", help="CURVE key pairs for HQ <-> agent security")
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    gen = ksub.add_parser("generate", help="write NAME.key (public) and NAME.key_secret")
    gen.add_argument("name", help="e.g. hq, or the agent's name")
    gen.add_argument("--dir", default=".", help="where to write them (default: here)")


def keys_command(args: argparse.Namespace) -> int:
    from cannonade.transport.security import generate

    try:
        public, secret = generate(Path(args.dir), args.name)
    except CannonadeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"public key: {public}  (give it to the other side)")
    print(f"secret key: {secret}  (keep it on this machine only)")
    return 0
