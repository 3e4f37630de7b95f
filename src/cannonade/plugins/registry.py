"""Where installed plugins live, and reading them back.

The plugins directory is ``$CANNONADE_PLUGIN_DIR``, else ``$XDG_DATA_HOME/cannonade/plugins``,
else ``~/.local/share/cannonade/plugins``. It holds one directory per plugin, named after
the plugin, with its ``plugin.toml`` and files. Names starting with ``.`` are the
installer's scratch space (``.install-*``, ``.old-*``, ``.remove-*``) and are never
plugins.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cannonade.errors import PluginError
from cannonade.plugins.manifest import MANIFEST_NAME, Manifest, is_valid_name, read

ENV_PLUGIN_DIR = "CANNONADE_PLUGIN_DIR"


def plugin_dir() -> Path:
    explicit = os.environ.get(ENV_PLUGIN_DIR)
    if explicit:
        return Path(explicit).expanduser()
    # The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "cannonade" / "plugins"
    return Path.home() / ".local" / "share" / "cannonade" / "plugins"


@dataclass(frozen=True)
class InstalledPlugin:
    manifest: Manifest
    directory: Path

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def entry_path(self) -> Path:
        """The entry's file: the first of the manifest's candidates that exists."""
        candidates = [self.directory / f for f in self.manifest.entry_files]
        return next((c for c in candidates if c.is_file()), candidates[0])


def load(directory: Path) -> InstalledPlugin:
    """The plugin in ``directory``, checked: its manifest must be valid and its name
    must be the directory's (a renamed directory would shadow another plugin)."""
    manifest = read(directory / MANIFEST_NAME)
    if manifest.name != directory.name:
        raise PluginError(
            f"{directory / MANIFEST_NAME}: [plugin].name is {manifest.name!r} but the "
            f"plugin is installed as {directory.name!r}"
        )
    plugin = InstalledPlugin(manifest, directory)
    if not plugin.entry_path.is_file():
        raise PluginError(f"plugin {manifest.name!r}: entry file {plugin.entry_path} is missing")
    return plugin


def scan(root: Path | None = None) -> tuple[list[InstalledPlugin], list[str]]:
    """Every installed plugin, by name, and one message per directory that is not a
    valid plugin (so ``list`` can show the rest and say what is broken)."""
    base = plugin_dir() if root is None else root
    plugins: list[InstalledPlugin] = []
    problems: list[str] = []
    if not base.is_dir():
        return plugins, problems
    for child in sorted(base.iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue
        try:
            plugins.append(load(child))
        except PluginError as e:
            problems.append(str(e))
    return plugins, problems


def installed(root: Path | None = None) -> list[InstalledPlugin]:
    return scan(root)[0]


def find(name: str, root: Path | None = None) -> InstalledPlugin | None:
    """The installed plugin ``name``, None if there is none; PluginError if it is
    there but broken."""
    directory = _directory(name, root)
    return load(directory) if directory.is_dir() else None


def remove(name: str, root: Path | None = None) -> None:
    """Remove plugin ``name`` (even a broken one). It is first renamed aside, so a
    removal that fails half-way never leaves a half plugin under its name."""
    directory = _directory(name, root)
    if not directory.is_dir():
        raise PluginError(f"plugin {name!r} is not installed (in {directory.parent})")
    aside = Path(tempfile.mkdtemp(prefix=".remove-", dir=directory.parent))
    directory.rename(aside / name)
    shutil.rmtree(aside, ignore_errors=True)


def _directory(name: str, root: Path | None) -> Path:
    # Checked before it is joined to a path: "../x" must not reach outside the root.
    if not is_valid_name(name):
        raise PluginError(f"{name!r} is not a plugin name ([a-z0-9][a-z0-9_-]{{0,63}})")
    return (plugin_dir() if root is None else root) / name
