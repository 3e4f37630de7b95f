"""``cannonade plugin install|list|info|remove``: managing installed plugins.

Every failure is one ``error: ...`` line and exit 1: a refused install is an expected
outcome (a bad hash, an untrusted source), not a crash.
"""

from __future__ import annotations

import argparse
import json
import sys

from cannonade.errors import CannonadeError

EXIT_OK, EXIT_ERROR = 0, 1


def add_plugin_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("plugin", help="install, list, inspect and remove plugins")
    psub = p.add_subparsers(dest="plugin_command", metavar="ACTION", required=True)
    inst = psub.add_parser("install", help="install a plugin from a directory, archive or index")
    inst.add_argument("source", metavar="SOURCE", help="a directory, a .tar.gz/.zip, or a NAME")
    inst.add_argument(
        "--index",
        metavar="FILE_OR_URL",
        default=None,
        help="the plugin index (index.json) to look NAME up in; default $CANNONADE_PLUGIN_INDEX",
    )
    inst.add_argument(
        "--allow-untrusted",
        action="store_true",
        help="install a source that has no sha256 to check (a local directory or archive)",
    )
    psub.add_parser("list", help="list the installed plugins")
    info = psub.add_parser("info", help="show an installed plugin's manifest")
    info.add_argument("name", metavar="NAME")
    rm = psub.add_parser("remove", help="remove an installed plugin")
    rm.add_argument("name", metavar="NAME")


def plugin_command(args: argparse.Namespace) -> int:
    actions = {"install": _install, "list": _list, "info": _info, "remove": _remove}
    try:
        return actions[args.plugin_command](args)
    except (CannonadeError, OSError) as e:
        # One line, whatever the message: the shell and CI logs read it as one.
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT_ERROR


def _install(args: argparse.Namespace) -> int:
    from cannonade.plugins.install import install

    plugin = install(args.source, index=args.index, allow_untrusted=args.allow_untrusted)
    m = plugin.manifest
    print(f"installed {m.name} {m.version} ({m.kind}, {m.type}) in {plugin.directory}")
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    from cannonade.plugins.registry import plugin_dir, scan

    plugins, problems = scan()
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    if not plugins:
        print(f"no plugins installed (in {plugin_dir()})")
        return EXIT_OK
    rows = [("NAME", "VERSION", "KIND", "TYPE", "DESCRIPTION")]
    rows += [
        (p.name, p.manifest.version, p.manifest.kind, p.manifest.type, p.manifest.description)
        for p in plugins
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[4])
    return EXIT_OK


def _info(args: argparse.Namespace) -> int:
    from cannonade.plugins.registry import find, plugin_dir

    plugin = find(args.name)
    if plugin is None:
        raise CannonadeError(f"plugin {args.name!r} is not installed (in {plugin_dir()})")
    m = plugin.manifest
    fields = [
        ("name", m.name),
        ("version", m.version),
        ("kind", m.kind),
        ("type", m.type),
        ("entry", m.entry),
        ("entry path", str(plugin.entry_path)),
        ("schemes", ", ".join(m.schemes) or "-"),
        ("description", m.description or "-"),
        ("directory", str(plugin.directory)),
        ("config", json.dumps(m.config, default=str) if m.config else "-"),
    ]
    for key, value in fields:
        print(f"{key + ':':<13}{value}")
    return EXIT_OK


def _remove(args: argparse.Namespace) -> int:
    from cannonade.plugins.registry import find, remove

    try:
        found = find(args.name)
    except CannonadeError:
        found = None  # a broken plugin can still be removed; it is what remove is for
    remove(args.name)
    what = f"{found.name} {found.manifest.version}" if found else args.name
    print(f"removed {what}")
    return EXIT_OK
