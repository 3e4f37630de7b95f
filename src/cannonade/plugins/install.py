"""``install``: put a plugin in the plugins directory, all or nothing.

A source is a directory holding ``plugin.toml``, an archive (.tar.gz, .tgz, .zip) holding
it at its root or in one top folder, or a plugin NAME looked up in the index. Rules:

* a sha256 mismatch is always refused;
* a source with no hash to check (a directory or archive given directly, an index
  artifact without ``sha256``) is refused unless ``allow_untrusted``;
* archive entries that would land outside the plugin (absolute, ``..``, links, devices)
  are refused (``scenarios.archive`` does the checking);
* precompiled native code (.so, .dylib, .dll, .pyd, .cwasm) is refused in any source:
  cannonade never loads native code from a plugin, and WASM is compiled locally;
* the manifest must be valid, its entry file present, and, from the index, its name,
  version and entry must be those the index lists.

Everything is unpacked into a scratch directory *inside* the plugins directory (same
file system, so the final rename is atomic), checked there, then renamed into place. A
plugin already installed under that name is replaced only after the new one passed, and
the scratch directory is removed whatever happens.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from cannonade.errors import PluginError, ScenarioError
from cannonade.plugins.index import MAX_ARTIFACT_BYTES, Release, fetch, load_index
from cannonade.plugins.manifest import MANIFEST_NAME, Manifest, is_valid_name, read
from cannonade.plugins.registry import InstalledPlugin, plugin_dir
from cannonade.scenarios import archive

ENV_INDEX = "CANNONADE_PLUGIN_INDEX"
_NATIVE = re.compile(r"\.(so(\.\d+)*|dylib|dll|pyd|cwasm)$", re.IGNORECASE)
_SKIPPED_DIRS = frozenset({"__pycache__", ".git"})


def install(
    source: str | Path,
    index: str | None = None,
    allow_untrusted: bool = False,
    *,
    root: Path | None = None,
) -> InstalledPlugin:
    """Install ``source``; returns the installed plugin. ``index`` defaults to
    ``$CANNONADE_PLUGIN_INDEX``; ``root`` to the plugins directory. An existing path
    wins over a plugin name of the same spelling."""
    base = plugin_dir() if root is None else root
    text = str(source)
    path = Path(text).expanduser()
    if path.is_dir():
        _require_trust(allow_untrusted, f"{text} is a local directory")
        return _stage(base, text, lambda stage: _copy_dir(path, stage))
    if path.is_file():
        if not archive.is_archive(path.name):
            raise PluginError(f"{text}: not a plugin directory or a .tar.gz, .tgz or .zip archive")
        _require_trust(allow_untrusted, f"{text} is a local archive")
        data = fetch(str(path), MAX_ARTIFACT_BYTES)
        return _stage(base, text, lambda stage: _unpack(path.name, data, stage))
    if not is_valid_name(text):
        raise PluginError(f"{text}: no such directory or archive, and not a plugin name")
    return _install_named(base, text, index or os.environ.get(ENV_INDEX), allow_untrusted)


def _install_named(
    base: Path, name: str, location: str | None, allow_untrusted: bool
) -> InstalledPlugin:
    if not location:
        raise PluginError(
            f"{name}: no such directory or archive; to install it by name give --index "
            f"FILE_OR_URL (or set ${ENV_INDEX})"
        )
    release = load_index(location).resolve(name)
    artifact = release.artifact
    if artifact.sha256 is None:
        _require_trust(allow_untrusted, f"the index lists no sha256 for {name} {release.version}")
    filename = PurePosixPath(urlsplit(artifact.url).path).name
    if not archive.is_archive(filename):
        raise PluginError(f"{artifact.url}: not a .tar.gz, .tgz or .zip archive")
    data = fetch(artifact.url, MAX_ARTIFACT_BYTES)
    if artifact.sha256 is not None:
        got = hashlib.sha256(data).hexdigest()
        if got != artifact.sha256:
            # Never overridable: the bytes are not the ones the index vouches for.
            raise PluginError(
                f"{artifact.url}: sha256 mismatch: the index says {artifact.sha256}, "
                f"the download is {got}; refused"
            )
    return _stage(base, artifact.url, lambda stage: _unpack(filename, data, stage), release)


def _require_trust(allow_untrusted: bool, why: str) -> None:
    if not allow_untrusted:
        raise PluginError(
            f"{why}: there is no sha256 to check it against; install it only if you "
            "trust it, with --allow-untrusted"
        )


def _stage(
    base: Path,
    label: str,
    populate: Callable[[Path], list[str]],
    release: Release | None = None,
) -> InstalledPlugin:
    """Populate a scratch directory, check it, rename it into place; the scratch
    directory goes whatever happens."""
    base.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".install-", dir=base))
    try:
        unpacked = stage / "unpacked"
        unpacked.mkdir()
        top = _plugin_root(unpacked, populate(unpacked), label)
        where = f"{label}: {(top / MANIFEST_NAME).relative_to(unpacked).as_posix()}"
        manifest = read(top / MANIFEST_NAME, where)
        if release is not None:
            _match_index(manifest, release, where)
        if not any((top / f).is_file() for f in manifest.entry_files):
            raise PluginError(f"{where}: [plugin].entry {manifest.entry!r}: no such file")
        return _move_into_place(base / manifest.name, stage, top, manifest)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _match_index(manifest: Manifest, release: Release, where: str) -> None:
    listed = {
        "name": release.name,
        "version": release.version,
        "kind": release.kind,
        "entry": release.artifact.entry or manifest.entry,
    }
    for key, wanted in listed.items():
        got = getattr(manifest, key)
        if got != wanted:
            raise PluginError(
                f"{where}: [plugin].{key} is {got!r} but the index lists {wanted!r}; refused"
            )


def _move_into_place(target: Path, stage: Path, top: Path, manifest: Manifest) -> InstalledPlugin:
    # Renames within one file system: a reader sees the old plugin or the new one,
    # never a half-copied directory.
    old = stage / "old"
    replacing = target.exists()
    if replacing:
        target.rename(old)
    try:
        top.rename(target)
    except OSError:
        if replacing:
            old.rename(target)  # put the previous version back before reporting
        raise
    return InstalledPlugin(manifest, target)


def _plugin_root(unpacked: Path, names: list[str], label: str) -> Path:
    """The directory holding plugin.toml: the top, or its single top folder."""
    if MANIFEST_NAME in names:
        return unpacked
    tops = {n.split("/", 1)[0] for n in names if not n.startswith("__MACOSX/")}
    if len(tops) == 1:
        (top,) = tops
        if f"{top}/{MANIFEST_NAME}" in names:
            return unpacked / top
    raise PluginError(f"{label}: no {MANIFEST_NAME} at its top or in a single top folder")


def _refuse_native(names: list[str], source: str) -> None:
    for name in names:
        if _NATIVE.search(name):
            raise PluginError(
                f"{source}: {name!r} is precompiled native code; plugins may not ship it "
                "(.so, .dylib, .dll, .pyd, .cwasm are refused; WASM is compiled locally)"
            )


def _unpack(filename: str, data: bytes, dest: Path) -> list[str]:
    try:
        # members() checks every name before a byte is written.
        names = archive.members(filename, data)
        _refuse_native(names, filename)
        archive.unpack(filename, data, dest)
    except ScenarioError as e:
        raise PluginError(f"{filename}: {e}; refused") from None
    return names


def _copy_dir(source: Path, dest: Path) -> list[str]:
    """Copy a plugin directory's regular files; links and devices are refused, as in an
    archive (a link could point anywhere once installed)."""
    names: list[str] = []
    total = 0
    for current, dirs, files in os.walk(source):
        here = Path(current)
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
        for entry in [*dirs, *files]:
            path = here / entry
            rel = path.relative_to(source).as_posix()
            if path.is_symlink() or not (path.is_dir() or path.is_file()):
                raise PluginError(f"{source}: {rel!r} is a link or not a regular file; refused")
            if path.is_file():
                names.append(rel)
                total += path.stat().st_size
        if len(names) > archive.MAX_MEMBERS or total > archive.MAX_UNPACKED:
            raise PluginError(f"{source}: too many or too large files for a plugin")
    _refuse_native(names, str(source))
    for rel in names:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, target)
    return names
