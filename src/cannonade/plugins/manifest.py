"""``plugin.toml``: what a plugin is, read and checked before anything of it is used.

The shape follows loadr's::

    [plugin]
    name = "uppercase-extractor"       # [a-z0-9][a-z0-9_-]{0,63}; the directory's name too
    version = "0.1.0"
    kind = "extractor"                 # protocol | extractor | assertion | output
    type = "wasm"                      # python | wasm
    entry = "uppercase_extractor.wasm"
    schemes = ["myproto"]              # protocol plugins only: URL schemes they serve
    description = "..."

    [config]                           # optional: defaults handed to the plugin
    left = "token="

A ``python`` plugin's ``entry`` is either ``file.py`` (a module file in the plugin
directory) or ``module:attribute`` where ``module`` is a dotted name found in the plugin
directory as ``a/b.py`` or ``a/b/__init__.py``. A ``wasm`` plugin's entry is a ``.wasm``
file, compiled locally by the WASM runtime; as in loadr, WASM plugins can only be
extractors or assertions.

Unknown keys are refused rather than ignored: a misspelt ``shemes`` must not silently
leave a protocol plugin unreachable.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cannonade.errors import PluginError

MANIFEST_NAME = "plugin.toml"
KINDS = ("protocol", "extractor", "assertion", "output")
TYPES = ("python", "wasm")
WASM_KINDS = ("extractor", "assertion")
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
_SCHEME_RE = re.compile(r"[a-z][a-z0-9+.-]{0,31}")
_FILE_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PLUGIN_KEYS = frozenset({"name", "version", "kind", "type", "entry", "schemes", "description"})


@dataclass(frozen=True)
class Manifest:
    name: str
    version: str
    kind: str
    type: str
    entry: str
    schemes: tuple[str, ...] = ()
    description: str = ""
    # A TOML table: a dict, so excluded from the hash (it is still compared).
    config: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def entry_files(self) -> tuple[str, ...]:
        """Where the entry may be, relative to the plugin directory, first choice first
        (``module:attr`` may be ``module.py`` or ``module/__init__.py``)."""
        return entry_files(self.type, self.entry)

    @property
    def entry_attribute(self) -> str | None:
        """For ``module:attribute`` python entries, the attribute; else None."""
        return self.entry.partition(":")[2] or None


def is_valid_name(name: str) -> bool:
    return NAME_RE.fullmatch(name) is not None


def read(path: Path, where: str | None = None) -> Manifest:
    """Read and check ``path`` (a plugin.toml); errors name the file, or ``where``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PluginError(f"{path}: no such file (a plugin directory holds plugin.toml)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PluginError(f"{path}: cannot read: {e}") from None
    return parse(text, where or str(path))


def parse(text: str, where: str = MANIFEST_NAME) -> Manifest:
    """Check a plugin.toml's text; ``where`` names the file in every error."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PluginError(f"{where}: not valid TOML: {e}") from None
    extra = sorted(set(doc) - {"plugin", "config"})
    if extra:
        raise PluginError(
            f"{where}: unknown table or key {extra[0]!r} (allowed: [plugin], [config])"
        )
    plugin = doc.get("plugin")
    if not isinstance(plugin, dict):
        raise PluginError(f"{where}: a [plugin] table is required")
    unknown = sorted(set(plugin) - _PLUGIN_KEYS)
    if unknown:
        allowed = ", ".join(sorted(_PLUGIN_KEYS))
        raise PluginError(f"{where}: [plugin].{unknown[0]} is not a known key ({allowed})")
    config = doc.get("config", {})
    if not isinstance(config, dict):
        raise PluginError(f"{where}: [config] must be a table")
    return _check(plugin, config, where)


def _check(plugin: dict[str, Any], config: dict[str, Any], where: str) -> Manifest:
    def text(key: str, pattern: re.Pattern[str] | None, shape: str) -> str:
        value = plugin.get(key)
        if value is None:
            raise PluginError(f"{where}: [plugin].{key} is required")
        if not isinstance(value, str) or (pattern and not pattern.fullmatch(value)):
            raise PluginError(f"{where}: [plugin].{key} must be {shape}, not {value!r}")
        return value

    name = text("name", NAME_RE, "[a-z0-9][a-z0-9_-]{0,63}")
    version = text("version", _VERSION_RE, "a version such as 0.1.0")
    kind = text("kind", None, "a string")
    if kind not in KINDS:
        raise PluginError(f"{where}: [plugin].kind must be one of {_one_of(KINDS)}, not {kind!r}")
    ptype = text("type", None, "a string")
    if ptype not in TYPES:
        raise PluginError(f"{where}: [plugin].type must be one of {_one_of(TYPES)}, not {ptype!r}")
    if ptype == "wasm" and kind not in WASM_KINDS:
        raise PluginError(
            f"{where}: [plugin].kind {kind!r}: wasm plugins can only be "
            f"{' or '.join(WASM_KINDS)} plugins"
        )
    entry = text("entry", None, "a string")
    _check_entry(ptype, entry, where)
    description = plugin.get("description", "")
    if not isinstance(description, str):
        raise PluginError(f"{where}: [plugin].description must be a string")
    schemes = _schemes(plugin.get("schemes"), kind, where)
    return Manifest(name, version, kind, ptype, entry, schemes, description, config)


def _one_of(choices: tuple[str, ...]) -> str:
    return ", ".join(choices)


def _schemes(raw: object, kind: str, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if kind != "protocol":
        raise PluginError(f"{where}: [plugin].schemes: only protocol plugins claim URL schemes")
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise PluginError(f"{where}: [plugin].schemes must be a list of strings")
    for scheme in raw:
        if not _SCHEME_RE.fullmatch(scheme):
            raise PluginError(
                f"{where}: [plugin].schemes: {scheme!r} is not a URL scheme (lower case, "
                "a letter then letters, digits, + . -)"
            )
    if len(set(raw)) != len(raw):
        raise PluginError(f"{where}: [plugin].schemes lists a scheme twice")
    return tuple(raw)


def _check_entry(ptype: str, entry: str, where: str) -> None:
    if ptype == "python" and ":" in entry:
        module, _, attribute = entry.partition(":")
        parts = module.split(".")
        if not all(_IDENT_RE.fullmatch(p) for p in parts) or not _IDENT_RE.fullmatch(attribute):
            raise PluginError(
                f"{where}: [plugin].entry {entry!r}: a python entry is 'module:attribute' "
                "(dotted Python names) or a .py file name"
            )
        return
    _check_file(entry, where)
    suffix = ".py" if ptype == "python" else ".wasm"
    if not entry.endswith(suffix):
        shape = "a .py file or 'module:attribute'" if ptype == "python" else "a .wasm file"
        raise PluginError(f"{where}: [plugin].entry {entry!r}: a {ptype} entry is {shape}")


def _check_file(entry: str, where: str) -> None:
    # Loaded from the plugin's own directory, so it must stay there: relative, no '..',
    # no backslashes (a Windows separator would dodge the part check).
    path = PurePosixPath(entry)
    if (
        "\\" in entry
        or path.is_absolute()
        or not path.parts
        or not all(_FILE_RE.fullmatch(p) and p != ".." for p in path.parts)
        or str(path) != entry
    ):
        raise PluginError(
            f"{where}: [plugin].entry {entry!r} must be a relative file name inside the "
            "plugin directory (no absolute path, no '..')"
        )


def entry_files(ptype: str, entry: str) -> tuple[str, ...]:
    """The files an entry may name (for ``module:attr``: the module file, or the package's
    ``__init__.py``)."""
    if ptype == "python" and ":" in entry:
        base = entry.partition(":")[0].replace(".", "/")
        return (f"{base}.py", f"{base}/__init__.py")
    return (entry,)
