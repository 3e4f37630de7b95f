"""``cannonade turret`` (an OCT turret) and ``cannonade pack-turret`` (its package)."""

from __future__ import annotations

import argparse
import signal
import sys
import tarfile
import tempfile
import threading
from pathlib import Path

from cannonade.errors import CannonadeError, ConfigError

CONFIG_NAME = "turret.json"


def add_turret_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("turret", help="an OCT turret running OCT-style Python scripts")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="OCT's turret.json")
    src.add_argument("--tar", help="a package made by cannonade pack-turret")
    pack = sub.add_parser("pack-turret", help="package a turret directory as .tar.gz")
    pack.add_argument("directory", help=f"holds {CONFIG_NAME} and the script")
    pack.add_argument("-o", "--output", default=None, help="default: DIRECTORY.tar.gz")


def turret_command(args: argparse.Namespace) -> int:
    from cannonade.runners.turret import Turret, load_config, load_script
    from cannonade.transport.sockets import Transport

    workdir: tempfile.TemporaryDirectory[str] | None = None
    try:
        if args.tar is not None:
            workdir = tempfile.TemporaryDirectory(prefix="cannonade-turret-")
            config_path = unpack(Path(args.tar), Path(workdir.name))
        else:
            config_path = Path(args.config)
        config = load_config(config_path)
        transaction = load_script(config.script)
        transport = Transport()
        turret = Turret(config, transaction, transport)
    except CannonadeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(
        f"turret {config.name} ({turret.uuid}): {config.cannons} cannon(s), "
        f"HQ {config.hq_address}:{config.hq_publisher}/{config.hq_rc}",
        file=sys.stderr,
        flush=True,
    )
    try:
        turret.serve(stop)
    finally:
        transport.close()
        if workdir is not None:
            workdir.cleanup()
    return 0


def unpack(archive: Path, into: Path) -> Path:
    """Extract a turret package safely (no paths outside ``into``, no devices)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(into, filter="data")
    except (OSError, tarfile.TarError) as e:
        raise ConfigError(f"{archive}: not a turret package: {e}") from None
    found = sorted(into.rglob(CONFIG_NAME))
    if not found:
        raise ConfigError(f"{archive}: holds no {CONFIG_NAME}")
    return found[0]


def pack_command(args: argparse.Namespace) -> int:
    d = Path(args.directory)
    if not (d / CONFIG_NAME).is_file():
        print(f"error: {d} holds no {CONFIG_NAME}", file=sys.stderr)
        return 1
    from cannonade.runners.turret import load_config, load_script

    try:
        config = load_config(d / CONFIG_NAME)
        load_script(config.script)  # a package that cannot run is refused here, not later
    except CannonadeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    out = Path(args.output) if args.output else d.with_name(d.name + ".tar.gz")
    with tarfile.open(out, "w:gz") as tar:
        for path in sorted(d.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                tar.add(path, arcname=str(Path(d.name) / path.relative_to(d)))
    print(f"wrote {out}: run it with cannonade turret --tar {out}")
    return 0
