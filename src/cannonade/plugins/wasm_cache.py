"""Compiled WASM plugins kept on disk, so a plugin is compiled once per machine.

Compiling a component is slow (a componentize-py plugin, ~18 MB of wasm, takes ~10 s on
two cores) and loading it back is fast (~0.2 s), so :func:`compile_component` keeps what
wasmtime compiled in a cache directory, ``$XDG_CACHE_HOME/cannonade/wasm`` by default.

An entry is native code that wasmtime maps and runs without checking it, so:

* its name is the sha256 of the wasm it came from, the wasmtime version and the engine
  settings: a different wasm, a different wasmtime or different settings never reuse it
  (wasmtime refuses a version or settings mismatch by itself too; the name is there so
  that two of them can sit side by side instead of evicting each other);
* it is only ever read from this cache, never from a plugin's own files: a plugin's
  ``entry`` goes through :class:`wasmtime.component.Component`, which accepts wasm only;
* the directory and the entry must belong to this user and be writable by nobody else,
  or the cache is skipped (compiled code from someone else's hands is never loaded);
* entries are written to a temporary name and renamed, so a reader sees none or all.

Old entries are not evicted: deleting the directory is always safe.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from wasmtime import Engine, WasmtimeError
from wasmtime.component import Component

log = logging.getLogger(__name__)

WASMTIME_VERSION = importlib.metadata.version("wasmtime")
# Bumped when the engine's settings (wasm_host.new_engine) change what code is generated.
ENGINE_TAG = "epoch1"


@dataclass(frozen=True, slots=True)
class Compiled:
    component: Component
    sha256: str
    from_cache: bool


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cannonade" / "wasm"


def entry_name(sha256: str) -> str:
    return f"{sha256}-wasmtime-{WASMTIME_VERSION}-{ENGINE_TAG}.cwasm"


def compile_component(engine: Engine, wasm: bytes, cache_dir: Path | None) -> Compiled:
    """The component for ``wasm``, from the cache when it holds it, else compiled and
    stored. Raises WasmtimeError when wasmtime refuses the wasm."""
    digest = hashlib.sha256(wasm).hexdigest()
    directory = cache_dir if cache_dir is not None else default_cache_dir()
    entry = directory / entry_name(digest)
    if _private(directory) and _private(entry):
        try:
            return Compiled(Component.deserialize_file(engine, str(entry)), digest, True)
        except WasmtimeError as exc:
            # Truncated by a full disk, or made by a build of wasmtime that names itself
            # the same: compile again and overwrite it.
            log.warning("ignoring WASM cache entry %s: %s", entry, exc)
    component = Component(engine, wasm)
    _store(directory, entry, component)
    return Compiled(component, digest, False)


def _private(path: Path) -> bool:
    """True when ``path`` exists, is ours, is a directory or a regular file (not a link),
    and nobody else can write to it."""
    try:
        st = path.lstat()
    except OSError:
        return False
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        return False
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return False
    return not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _store(directory: Path, entry: Path, component: Component) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(directory):
            log.warning("not caching compiled WASM: %s is writable by others", directory)
            return
        data = component.serialize()
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".cwasm")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, entry)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except (OSError, WasmtimeError) as exc:
        # A read-only home or a full disk costs a compile per load, not the run.
        log.warning("could not cache compiled WASM in %s: %s", directory, exc)
