"""The plugin index: a catalogue (``index.json``) of plugins installable by name.

    {"schema": 1,
     "plugins": {"NAME": {"kind": "...", "description": "...", "latest": "0.1.0",
       "versions": {"0.1.0": {"min_cannonade_abi": "1.0",
         "artifacts": {"TARGET": {"url": "...", "sha256": "<64 hex>", "entry": "..."}}}}}}}

``TARGET`` is a host target triple (``x86_64-unknown-linux-gnu``, ``aarch64-apple-darwin``,
``x86_64-pc-windows-msvc``, ...) or ``any`` for a portable artifact (pure Python, WASM):
the host's own triple is preferred, then ``any``. ``url`` is absolute, or relative to the
index's own location; a ``file:`` URL or a path is only accepted in a local index, so a
remote index cannot make cannonade read local files.
"""

from __future__ import annotations

import json
import platform
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit
from urllib.request import url2pathname

from cannonade.errors import PluginError
from cannonade.plugins.manifest import KINDS, is_valid_name

# The plugin ABI this cannonade provides; an artifact needing a newer one is refused.
CANNONADE_PLUGIN_ABI = "1.0"
PORTABLE_TARGET = "any"
INDEX_SCHEMA = 1
MAX_INDEX_BYTES = 16 * 1024 * 1024
MAX_ARTIFACT_BYTES = 256 * 1024 * 1024
TIMEOUT_S = 30.0
_ABI_RE = re.compile(r"(\d+)\.(\d+)")
_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
_ARCH = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}


@dataclass(frozen=True)
class Artifact:
    """One downloadable build: ``url`` is already resolved against the index."""

    target: str
    url: str
    sha256: str | None
    entry: str | None


@dataclass(frozen=True)
class Release:
    """A plugin version chosen for this host."""

    name: str
    version: str
    kind: str
    min_abi: str
    artifact: Artifact


def host_target() -> str:
    """This machine's target triple, in the Rust spelling loadr's index uses."""
    machine = platform.machine().lower()
    arch = _ARCH.get(machine, machine)
    if sys.platform == "darwin":
        return f"{arch}-apple-darwin"
    if sys.platform == "win32":
        return f"{arch}-pc-windows-msvc"
    libc = platform.libc_ver()[0]
    return f"{arch}-unknown-linux-{'gnu' if libc == 'glibc' else 'musl'}"


def abi_ok(needed: str, provided: str = CANNONADE_PLUGIN_ABI) -> bool:
    return _abi(needed) <= _abi(provided)


def _abi(text: str) -> tuple[int, int]:
    m = _ABI_RE.fullmatch(text)
    if m is None:
        raise PluginError(f"{text!r} is not a plugin ABI version (MAJOR.MINOR)")
    return int(m[1]), int(m[2])


class Index:
    """A loaded, checked index. ``location`` is where it came from (path or URL)."""

    def __init__(self, location: str, data: object) -> None:
        self.location = location
        self._plugins = _check(location, data)

    @property
    def names(self) -> list[str]:
        return sorted(self._plugins)

    def resolve(self, name: str, version: str | None = None, target: str | None = None) -> Release:
        """The artifact to install for ``name`` (``version`` or the latest) on this host."""
        entry = self._plugins.get(name)
        if entry is None:
            raise PluginError(f"plugin {name!r} is not in the index {self.location}")
        version = version or entry["latest"]
        release = entry["versions"].get(version)
        if release is None:
            known = ", ".join(sorted(entry["versions"]))
            raise PluginError(f"plugin {name!r} has no version {version!r} (known: {known})")
        needed = release["min_cannonade_abi"]
        if not abi_ok(needed):
            raise PluginError(
                f"plugin {name!r} {version} needs cannonade plugin ABI {needed} or newer; "
                f"this cannonade provides ABI {CANNONADE_PLUGIN_ABI} (upgrade cannonade)"
            )
        host = target or host_target()
        artifacts = release["artifacts"]
        chosen = next((t for t in (host, PORTABLE_TARGET) if t in artifacts), None)
        if chosen is None:
            offered = ", ".join(sorted(artifacts)) or "none"
            raise PluginError(
                f"plugin {name!r} {version} has no artifact for {host} or {PORTABLE_TARGET!r} "
                f"(offered: {offered})"
            )
        raw = artifacts[chosen]
        url = self._absolute(raw["url"], f"{name} {version} {chosen}")
        sha256 = raw.get("sha256")
        artifact = Artifact(chosen, url, sha256.lower() if sha256 else None, raw.get("entry"))
        return Release(name, version, entry["kind"], needed, artifact)

    def _absolute(self, url: str, what: str) -> str:
        if _is_http(self.location):
            full = urljoin(self.location, url)
            if not _is_http(full):
                raise PluginError(f"{self.location}: {what}: url {url!r} is not http(s)")
            return full
        if _is_http(url) or url.startswith("file:"):
            return url
        # A plain path in a local index: relative to the index file's directory.
        return str((Path(self.location).parent / url).resolve())


def load_index(location: str, timeout: float = TIMEOUT_S) -> Index:
    """Read and check the index at ``location`` (a file path, or an http(s) URL)."""
    raw = fetch(location, MAX_INDEX_BYTES, timeout)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise PluginError(f"{location}: not valid JSON: {e}") from None
    return Index(location, data)


def fetch(location: str, limit: int, timeout: float = TIMEOUT_S) -> bytes:
    """The bytes at a path, ``file:`` URL or http(s) URL, at most ``limit`` of them."""
    if not _is_http(location):
        is_url = location.startswith("file:")
        path = Path(url2pathname(urlsplit(location).path)) if is_url else Path(location)
        try:
            with path.open("rb") as f:
                data = f.read(limit + 1)
        except OSError as e:
            raise PluginError(f"{location}: cannot read: {e.strerror or e}") from None
        if len(data) > limit:
            raise PluginError(f"{location}: larger than {limit >> 20} MiB")
        return data
    return _download(location, limit, timeout)


def _download(url: str, limit: int, timeout: float) -> bytes:
    import httpx  # only when something is downloaded: keeps `cannonade plugin list` fast

    chunks: list[bytes] = []
    size = 0
    try:
        with httpx.stream("GET", url, timeout=timeout, follow_redirects=True) as response:
            if response.status_code != 200:
                raise PluginError(f"{url}: HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise PluginError(f"{url}: larger than {limit >> 20} MiB")
                chunks.append(chunk)
    except httpx.TimeoutException:
        raise PluginError(f"{url}: timed out after {timeout:g}s") from None
    except (httpx.HTTPError, httpx.InvalidURL) as e:
        raise PluginError(f"{url}: {e}") from None
    return b"".join(chunks)


def _is_http(location: str) -> bool:
    return urlsplit(location).scheme in ("http", "https")


def _check(where: str, data: object) -> dict[str, dict[str, Any]]:
    """The index's plugins, every field checked; errors name the index and the field."""

    def fail(path: str, problem: str) -> PluginError:
        return PluginError(f"{where}: {path} {problem}")

    if not isinstance(data, dict):
        raise fail("the index", "must be a JSON object")
    if data.get("schema") != INDEX_SCHEMA:
        raise fail("schema", f"must be {INDEX_SCHEMA}, not {data.get('schema')!r}")
    plugins = data.get("plugins")
    if not isinstance(plugins, dict):
        raise fail("plugins", "must be an object")
    for name, entry in plugins.items():
        at = f"plugins.{name}"
        if not is_valid_name(name):
            raise fail(at, "is not a plugin name ([a-z0-9][a-z0-9_-]{0,63})")
        if not isinstance(entry, dict):
            raise fail(at, "must be an object")
        if entry.get("kind") not in KINDS:
            raise fail(f"{at}.kind", f"must be one of {', '.join(KINDS)}")
        if not isinstance(entry.get("description", ""), str):
            raise fail(f"{at}.description", "must be a string")
        versions = entry.get("versions")
        if not isinstance(versions, dict) or not versions:
            raise fail(f"{at}.versions", "must be a non-empty object")
        if entry.get("latest") not in versions:
            raise fail(f"{at}.latest", "must name one of its versions")
        for version, release in versions.items():
            _check_release(f"{at}.versions.{version}", release, fail)
    return plugins


def _check_release(at: str, release: object, fail: Callable[[str, str], PluginError]) -> None:
    if not isinstance(release, dict):
        raise fail(at, "must be an object")
    abi = release.get("min_cannonade_abi")
    if not isinstance(abi, str) or not _ABI_RE.fullmatch(abi):
        raise fail(f"{at}.min_cannonade_abi", 'must be "MAJOR.MINOR", such as "1.0"')
    artifacts = release.get("artifacts")
    if not isinstance(artifacts, dict):
        raise fail(f"{at}.artifacts", "must be an object")
    for target, artifact in artifacts.items():
        here = f"{at}.artifacts.{target}"
        if not isinstance(artifact, dict):
            raise fail(here, "must be an object")
        if not isinstance(artifact.get("url"), str) or not artifact["url"]:
            raise fail(f"{here}.url", "must be a non-empty string")
        sha = artifact.get("sha256")
        if sha is not None and not (isinstance(sha, str) and _SHA256_RE.fullmatch(sha)):
            raise fail(f"{here}.sha256", "must be 64 hex digits")
        if not isinstance(artifact.get("entry", ""), str):
            raise fail(f"{here}.entry", "must be a string")
