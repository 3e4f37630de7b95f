"""Bundles of several files (.tar.gz, .tgz, .zip): what they may hold, and unpacking
them safely on an agent.

An archive comes from whoever may upload tests, so nothing in it may land outside the
directory it is unpacked into: absolute names, ``..`` parts, links and device files are
refused, as are more than :data:`MAX_MEMBERS` entries or :data:`MAX_UNPACKED` bytes
once unpacked (a small zip can expand to gigabytes).
"""

from __future__ import annotations

import functools
import gzip
import io
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

from cannonade.errors import ScenarioError

# What the stdlib raises for a damaged archive, beyond its own error types: found by
# fuzzing uploads (an unknown zip version, a corrupt deflate or gzip stream, a bad offset).
_DAMAGED = (
    zipfile.BadZipFile,
    tarfile.TarError,
    gzip.BadGzipFile,
    zlib.error,
    NotImplementedError,
    EOFError,
    ValueError,
    OSError,
    RuntimeError,
)

MAX_MEMBERS = 1000
MAX_UNPACKED = 256 * 1024 * 1024
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".zip")
SCENARIO_SUFFIXES = (".py", ".yaml", ".yml")


def is_archive(filename: str) -> bool:
    return filename.lower().endswith(ARCHIVE_SUFFIXES)


def members(filename: str, data: bytes) -> list[str]:
    """The regular files in an archive, checked (raises ScenarioError naming the entry)."""
    return [name for name, _size, _read in _walk(filename, data)]


def unpack(filename: str, data: bytes, dest: Path) -> list[str]:
    """Unpack into ``dest`` (which must exist); returns the files written."""
    written = []
    root = dest.resolve()
    for name, _size, read in _walk(filename, data):
        target = (root / name).resolve()
        if root not in target.parents:
            raise ScenarioError(f"archive entry {name!r} would land outside the bundle")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(read())
        written.append(name)
    return written


def default_entry(names: list[str]) -> str | None:
    """The scenario to run when the request names none: the only top-level .py or YAML
    file, else ``main.py`` if there is one."""
    top = [n for n in names if "/" not in n and n.endswith(SCENARIO_SUFFIXES)]
    if len(top) == 1:
        return top[0]
    return "main.py" if "main.py" in names else None


def _check_name(raw: str) -> str:
    path = PurePosixPath(raw.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise ScenarioError(f"archive entry {raw!r}: absolute or '..' paths are refused")
    return str(path)


def _walk(filename: str, data: bytes) -> Iterator[tuple[str, int, Callable[[], bytes]]]:
    lower = filename.lower()
    if lower.endswith(".zip"):
        yield from _walk_zip(data)
    elif lower.endswith((".tar.gz", ".tgz")):
        yield from _walk_tar(data)
    else:
        raise ScenarioError(f"{filename!r} is not a .tar.gz, .tgz or .zip archive")


class _Budget:
    def __init__(self) -> None:
        self.count = 0
        self.size = 0

    def spend(self, name: str, size: int) -> None:
        self.count += 1
        self.size += size
        if self.count > MAX_MEMBERS:
            raise ScenarioError(f"archive holds more than {MAX_MEMBERS} entries")
        if self.size > MAX_UNPACKED:
            raise ScenarioError(
                f"archive unpacks to more than {MAX_UNPACKED >> 20} MiB (at {name!r})"
            )


def _walk_zip(data: bytes) -> Iterator[tuple[str, int, Callable[[], bytes]]]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except _DAMAGED as e:
        raise ScenarioError(f"not a readable zip archive: {e or type(e).__name__}") from None
    budget = _Budget()
    with archive:
        for info in archive.infolist():
            name = _check_name(info.filename)
            if info.is_dir():
                continue
            kind = stat.S_IFMT(info.external_attr >> 16)
            if kind and kind != stat.S_IFREG:
                raise ScenarioError(f"archive entry {name!r} is not a regular file")
            budget.spend(name, info.file_size)
            yield name, info.file_size, functools.partial(_read_zip, archive, info)


def _read_zip(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    try:
        with archive.open(info) as f:
            # file_size is what the archive claims: never read more than that.
            out = f.read(info.file_size + 1)
    except _DAMAGED as e:
        raise ScenarioError(f"archive entry {info.filename!r}: {e or type(e).__name__}") from None
    if len(out) > info.file_size:
        raise ScenarioError(f"archive entry {info.filename!r} is bigger than it says")
    return out


def _walk_tar(data: bytes) -> Iterator[tuple[str, int, Callable[[], bytes]]]:
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")  # noqa: SIM115 (closed below)
    except _DAMAGED as e:
        raise ScenarioError(f"not a readable .tar.gz archive: {e}") from None
    budget = _Budget()
    with archive:
        try:
            for info in archive:
                name = _check_name(info.name)
                if info.isdir():
                    continue
                if not info.isreg():
                    raise ScenarioError(f"archive entry {name!r} is not a regular file")
                budget.spend(name, info.size)
                yield name, info.size, functools.partial(_read_tar, archive, info)
        except _DAMAGED as e:
            raise ScenarioError(f"damaged .tar.gz archive: {e or type(e).__name__}") from None


def _read_tar(archive: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    try:
        f = archive.extractfile(info)
        if f is None:
            raise ScenarioError(f"archive entry {info.name!r} cannot be read")
        return f.read()
    except _DAMAGED as e:
        raise ScenarioError(f"archive entry {info.name!r}: {e or type(e).__name__}") from None
