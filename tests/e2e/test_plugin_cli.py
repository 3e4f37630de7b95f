"""`cannonade plugin install|list|info|remove` as real processes, with the plugins
directory in tmp_path and the index served by a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

MANIFEST = """\
[plugin]
name = "upper"
version = "{version}"
kind = "extractor"
type = "wasm"
entry = "upper.wasm"
description = "Boundary extractor that upper-cases the match"

[config]
left = "token="
"""


def plugin_tgz(version: str = "0.1.0", extra: dict[str, bytes] | None = None) -> bytes:
    files = {
        "upper/plugin.toml": MANIFEST.format(version=version).encode(),
        "upper/upper.wasm": b"\0asm\x01\0\0\0",
        **(extra or {}),
    }
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def www(tmp_path):
    """A directory served on 127.0.0.1; yields (directory, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def publish(root: Path, data: bytes, sha256: str | None = None, version: str = "0.1.0") -> None:
    (root / f"upper-{version}.tar.gz").write_bytes(data)
    index = {
        "schema": 1,
        "plugins": {
            "upper": {
                "kind": "extractor",
                "description": "upper-cases",
                "latest": version,
                "versions": {
                    version: {
                        "min_cannonade_abi": "1.0",
                        "artifacts": {
                            "any": {
                                "url": f"upper-{version}.tar.gz",
                                "sha256": sha256 or hashlib.sha256(data).hexdigest(),
                                "entry": "upper.wasm",
                            }
                        },
                    }
                },
            }
        },
    }
    (root / "index.json").write_text(json.dumps(index))


@pytest.fixture
def cli(tmp_path):
    plugins = tmp_path / "plugins"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANNONADE_PLUGIN")}
    env["CANNONADE_PLUGIN_DIR"] = str(plugins)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "cannonade", "plugin", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    run.plugins = plugins  # type: ignore[attr-defined]
    return run


def listing(plugins: Path) -> list[str]:
    return sorted(p.relative_to(plugins).as_posix() for p in plugins.rglob("*"))


def assert_one_line_error(proc: subprocess.CompletedProcess[str], text: str) -> None:
    assert proc.returncode == 1, proc
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert text in lines[0]


def test_install_by_name_list_info_remove(cli, www):
    root, url = www
    publish(root, plugin_tgz())
    empty = cli("list")
    assert empty.returncode == 0
    assert "no plugins installed" in empty.stdout

    done = cli("install", "upper", "--index", f"{url}/index.json")
    assert done.returncode == 0, done.stderr
    assert f"installed upper 0.1.0 (extractor, wasm) in {cli.plugins / 'upper'}" in done.stdout

    listed = cli("list")
    assert listed.returncode == 0
    header, row = listed.stdout.splitlines()
    assert header.split() == ["NAME", "VERSION", "KIND", "TYPE", "DESCRIPTION"]
    assert row.split()[:4] == ["upper", "0.1.0", "extractor", "wasm"]

    info = cli("info", "upper")
    assert info.returncode == 0
    assert "entry path:  " + str(cli.plugins / "upper" / "upper.wasm") in info.stdout
    assert 'config:      {"left": "token="}' in info.stdout

    gone = cli("remove", "upper")
    assert gone.returncode == 0
    assert gone.stdout.strip() == "removed upper 0.1.0"
    assert listing(cli.plugins) == []
    assert_one_line_error(cli("info", "upper"), "'upper' is not installed")
    assert_one_line_error(cli("remove", "upper"), "'upper' is not installed")


def test_sha256_mismatch_is_refused_and_leaves_nothing(cli, www):
    root, url = www
    publish(root, plugin_tgz(), sha256="f" * 64)
    proc = cli("install", "upper", "--index", f"{url}/index.json", "--allow-untrusted")
    assert_one_line_error(proc, "sha256 mismatch")
    assert listing(cli.plugins) == []


def test_failed_upgrade_keeps_the_old_version(cli, www):
    root, url = www
    publish(root, plugin_tgz("0.1.0"))
    assert cli("install", "upper", "--index", f"{url}/index.json").returncode == 0
    before = listing(cli.plugins)
    publish(root, plugin_tgz("0.2.0", {"upper/libevil.so": b"\x7fELF"}), version="0.2.0")
    proc = cli("install", "upper", "--index", f"{url}/index.json")
    assert_one_line_error(proc, "precompiled native code")
    assert listing(cli.plugins) == before
    assert "version:     0.1.0" in cli("info", "upper").stdout


def test_local_archive_needs_allow_untrusted(cli, tmp_path):
    archive = tmp_path / "upper.tar.gz"
    archive.write_bytes(plugin_tgz())
    assert_one_line_error(cli("install", str(archive)), "--allow-untrusted")
    assert listing(cli.plugins) == []
    assert cli("install", str(archive), "--allow-untrusted").returncode == 0
    assert listing(cli.plugins) == ["upper", "upper/plugin.toml", "upper/upper.wasm"]


def test_unreachable_index_is_one_line(cli):
    proc = cli("install", "upper", "--index", "http://127.0.0.1:9/index.json")
    assert_one_line_error(proc, "127.0.0.1:9")
