"""Installing plugins: good installs from a directory, an archive and the index; every
refusal, each followed by a check that the plugins directory holds nothing new; list,
info and remove through the registry."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import tarfile
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cannonade.errors import PluginError
from cannonade.plugins import registry
from cannonade.plugins.index import CANNONADE_PLUGIN_ABI, abi_ok, host_target, load_index
from cannonade.plugins.install import install
from cannonade.plugins.registry import find, installed, plugin_dir, remove, scan

WASM_BYTES = b"\0asm\x01\0\0\0"


def manifest(name="upper", version="0.1.0", kind="extractor", ptype="wasm", entry="upper.wasm"):
    return (
        f'[plugin]\nname = "{name}"\nversion = "{version}"\nkind = "{kind}"\n'
        f'type = "{ptype}"\nentry = "{entry}"\ndescription = "upper-cases"\n'
    ).encode()


def plugin_files(**kw) -> dict[str, bytes]:
    return {"plugin.toml": manifest(**kw), kw.get("entry", "upper.wasm"): WASM_BYTES}


def tgz(files: dict[str, bytes], top: str = "", links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{top}{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(f"{top}{name}")
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def zipped(files: dict[str, bytes], top: str = "") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(f"{top}{name}", data)
    return buf.getvalue()


def write_dir(path: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    return path


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file and directory under ``root``, with file contents."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else b"<dir>")
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture
def plugins(tmp_path, monkeypatch) -> Path:
    """The plugins directory, already holding one plugin, so "nothing new" means
    something."""
    root = tmp_path / "plugins"
    monkeypatch.setenv("CANNONADE_PLUGIN_DIR", str(root))
    monkeypatch.delenv("CANNONADE_PLUGIN_INDEX", raising=False)
    write_dir(root / "keeper", plugin_files(name="keeper"))
    return root


@pytest.fixture
def refused(plugins):
    """Asserts the call raises PluginError matching ``pattern`` and changes nothing."""

    def check(pattern, source, **kw):
        before = snapshot(plugins)
        with pytest.raises(PluginError, match=pattern) as e:
            install(source, **kw)
        assert snapshot(plugins) == before
        return str(e.value)

    return check


class Served:
    """A directory served over real HTTP on 127.0.0.1, with an index.json in it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.index: dict = {"schema": 1, "plugins": {}}
        handler = functools.partial(_Quiet, directory=str(root))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def publish(self, name, data, *, filename=None, version="0.1.0", sha256="auto", **extra):
        filename = filename or f"{name}-{version}-any.tar.gz"
        (self.root / filename).write_bytes(data)
        artifact = {"url": filename, "entry": extra.pop("entry", "upper.wasm")}
        if sha256 == "auto":
            sha256 = hashlib.sha256(data).hexdigest()
        if sha256 is not None:
            artifact["sha256"] = sha256
        target = extra.pop("target", "any")
        entry = self.index["plugins"].setdefault(
            name, {"kind": extra.pop("kind", "extractor"), "description": "d", "versions": {}}
        )
        entry["latest"] = version
        entry["versions"][version] = {
            "min_cannonade_abi": extra.pop("abi", "1.0"),
            "artifacts": {target: artifact},
        }
        (self.root / "index.json").write_text(json.dumps(self.index))
        return f"{self.url}/index.json"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the test output is not an access log
        pass


@pytest.fixture
def served(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    s = Served(root)
    yield s
    s.close()


# --- where plugins live --------------------------------------------------------------


def test_plugin_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("CANNONADE_PLUGIN_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert plugin_dir() == tmp_path / "explicit"
    monkeypatch.delenv("CANNONADE_PLUGIN_DIR")
    assert plugin_dir() == tmp_path / "xdg" / "cannonade" / "plugins"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/is/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert plugin_dir() == tmp_path / "home" / ".local" / "share" / "cannonade" / "plugins"


# --- good installs -------------------------------------------------------------------


def test_install_from_directory(plugins, tmp_path):
    src = write_dir(tmp_path / "dist", {**plugin_files(), "README.md": b"hi"})
    write_dir(src / "__pycache__", {"x.pyc": b"stale"})
    plugin = install(src, allow_untrusted=True)
    assert plugin.directory == plugins / "upper"
    assert plugin.entry_path == plugins / "upper" / "upper.wasm"
    assert plugin.entry_path.read_bytes() == WASM_BYTES
    assert sorted(p.name for p in (plugins / "upper").iterdir()) == [
        "README.md",
        "plugin.toml",
        "upper.wasm",
    ]
    assert [p.name for p in installed()] == ["keeper", "upper"]
    assert not [p for p in plugins.iterdir() if p.name.startswith(".")]


def test_install_python_module_entry_from_zip_at_root(plugins, tmp_path):
    files = {
        "plugin.toml": manifest(name="redis", kind="protocol", ptype="python", entry="rp:Proto"),
        "rp/__init__.py": b"class Proto: ...\n",
    }
    archive = tmp_path / "redis.zip"
    archive.write_bytes(zipped(files))
    plugin = install(str(archive), allow_untrusted=True)
    assert plugin.entry_path == plugins / "redis" / "rp" / "__init__.py"
    assert plugin.manifest.entry_attribute == "Proto"


@pytest.mark.parametrize("suffix", [".tar.gz", ".tgz"])
def test_install_from_tarball_with_a_top_folder(plugins, tmp_path, suffix):
    archive = tmp_path / f"upper{suffix}"
    archive.write_bytes(tgz(plugin_files(), top="dist/"))
    plugin = install(archive, allow_untrusted=True)
    assert find("upper") == plugin
    assert (plugins / "upper" / "plugin.toml").is_file()


def test_install_by_name_over_http_needs_no_flag(plugins, served):
    index = served.publish("upper", tgz(plugin_files()))
    plugin = install("upper", index=index)
    assert plugin.manifest.version == "0.1.0"
    assert plugin.entry_path.read_bytes() == WASM_BYTES


def test_install_by_name_from_index_file_and_env(plugins, served, monkeypatch):
    served.publish("upper", zipped(plugin_files(), top="upper/"), filename="upper.zip")
    monkeypatch.setenv("CANNONADE_PLUGIN_INDEX", str(served.root / "index.json"))
    assert install("upper").manifest.name == "upper"


def test_host_target_is_preferred_over_any(plugins, served):
    served.publish("upper", tgz(plugin_files(version="0.1.0")), version="0.1.0", target="any")
    native_named = tgz(plugin_files(version="0.1.0", entry="host.wasm"))
    (served.root / "host.tar.gz").write_bytes(native_named)
    artifacts = served.index["plugins"]["upper"]["versions"]["0.1.0"]["artifacts"]
    artifacts[host_target()] = {
        "url": "host.tar.gz",
        "sha256": hashlib.sha256(native_named).hexdigest(),
        "entry": "host.wasm",
    }
    (served.root / "index.json").write_text(json.dumps(served.index))
    assert install("upper", index=f"{served.url}/index.json").manifest.entry == "host.wasm"


def test_reinstall_replaces_the_old_version(plugins, tmp_path):
    src = write_dir(tmp_path / "v1", {**plugin_files(version="0.1.0"), "old.txt": b"1"})
    install(src, allow_untrusted=True)
    src2 = write_dir(tmp_path / "v2", plugin_files(version="0.2.0"))
    assert install(src2, allow_untrusted=True).manifest.version == "0.2.0"
    assert not (plugins / "upper" / "old.txt").exists()
    assert [p.name for p in plugins.iterdir() if p.name.startswith(".")] == []


# --- refusals: nothing left behind ---------------------------------------------------


def test_untrusted_directory_and_archive_are_refused(refused, tmp_path):
    src = write_dir(tmp_path / "dist", plugin_files())
    assert "--allow-untrusted" in refused("no sha256", src)
    archive = tmp_path / "upper.tar.gz"
    archive.write_bytes(tgz(plugin_files()))
    refused("local archive: there is no sha256", archive)


def test_index_artifact_without_sha256_needs_the_flag(refused, served):
    index = served.publish("upper", tgz(plugin_files()), sha256=None)
    refused("the index lists no sha256 for upper 0.1.0", "upper", index=index)
    assert install("upper", index=index, allow_untrusted=True).name == "upper"


def test_sha256_mismatch_is_always_refused(refused, served):
    index = served.publish("upper", tgz(plugin_files()), sha256="0" * 64)
    message = refused("sha256 mismatch", "upper", index=index, allow_untrusted=True)
    assert "0" * 64 in message


@pytest.mark.parametrize(
    ("member", "pattern"),
    [("../evil.txt", "absolute or '..'"), ("/tmp/evil.txt", "absolute or '..'")],
)
def test_archive_members_escaping_are_refused(refused, tmp_path, member, pattern):
    archive = tmp_path / "upper.tar.gz"
    archive.write_bytes(tgz({**plugin_files(), member: b"x"}))
    refused(pattern, archive, allow_untrusted=True)
    assert not (tmp_path / "evil.txt").exists()


def test_archive_links_are_refused(refused, tmp_path):
    archive = tmp_path / "upper.tgz"
    archive.write_bytes(tgz(plugin_files(), links={"passwd": "/etc/passwd"}))
    refused("not a regular file", archive, allow_untrusted=True)


@pytest.mark.parametrize(
    "native", ["libx.so", "lib/libx.so.1", "x.dylib", "x.DLL", "ext.pyd", "upper.cwasm"]
)
def test_precompiled_native_code_is_refused(refused, tmp_path, native):
    archive = tmp_path / "upper.zip"
    archive.write_bytes(zipped({**plugin_files(), native: b"\x7fELF"}))
    refused("precompiled native code", archive, allow_untrusted=True)
    src = write_dir(tmp_path / "dist", {**plugin_files(), native: b"\x7fELF"})
    refused("precompiled native code", src, allow_untrusted=True)


def test_directory_links_are_refused(refused, tmp_path):
    src = write_dir(tmp_path / "dist", plugin_files())
    (src / "passwd").symlink_to("/etc/passwd")
    refused("is a link", src, allow_untrusted=True)


def test_manifest_name_must_match_the_index_name(refused, served):
    index = served.publish("upper", tgz(plugin_files(name="keeper")))
    message = refused(
        r"\[plugin\]\.name is 'keeper' but the index lists 'upper'", "upper", index=index
    )
    assert "plugin.toml" in message
    assert (Path(served.root) / "index.json").exists()


@pytest.mark.parametrize(
    ("field", "kw", "published"),
    [
        ("version", {"version": "0.9.0"}, {}),
        ("entry", {"entry": "other.wasm"}, {}),
        ("kind", {}, {"kind": "assertion"}),
    ],
)
def test_manifest_must_match_the_index_entry(refused, served, field, kw, published):
    index = served.publish("upper", tgz(plugin_files(**kw)), **published)
    refused(rf"\[plugin\]\.{field} is .* but the index lists", "upper", index=index)


def test_newer_abi_is_refused_naming_both_versions(refused, served):
    index = served.publish("upper", tgz(plugin_files()), abi="1.7")
    message = refused("needs cannonade plugin ABI 1.7", "upper", index=index)
    assert f"provides ABI {CANNONADE_PLUGIN_ABI}" in message
    assert abi_ok("0.9")
    assert abi_ok(CANNONADE_PLUGIN_ABI)
    assert not abi_ok("2.0")


def test_no_artifact_for_this_host(refused, served):
    index = served.publish("upper", tgz(plugin_files()), target="riscv64-unknown-none")
    refused(r"no artifact for .* or 'any' \(offered: riscv64-unknown-none\)", "upper", index=index)


@pytest.mark.parametrize(
    ("files", "pattern"),
    [
        ({"plugin.toml": manifest(kind="output")}, "wasm plugins can only be"),
        ({"plugin.toml": manifest()}, r"\[plugin\]\.entry 'upper.wasm': no such file"),
        ({"upper.wasm": WASM_BYTES}, "no plugin.toml at its top"),
        ({"a/plugin.toml": manifest(), "b/upper.wasm": WASM_BYTES}, "no plugin.toml"),
    ],
)
def test_bad_archive_contents_are_refused(refused, tmp_path, files, pattern):
    archive = tmp_path / "upper.tar.gz"
    archive.write_bytes(tgz(files))
    message = refused(pattern, archive, allow_untrusted=True)
    assert message.startswith(str(archive))


def test_failed_reinstall_keeps_the_installed_version(refused, plugins, tmp_path):
    good = write_dir(tmp_path / "good", plugin_files(version="0.1.0"))
    install(good, allow_untrusted=True)
    bad = write_dir(tmp_path / "bad", {"plugin.toml": manifest(version="0.2.0")})
    refused("no such file", bad, allow_untrusted=True)
    assert find("upper").manifest.version == "0.1.0"


def test_unusable_sources_are_refused(refused, tmp_path, served):
    notes = tmp_path / "notes.txt"
    notes.write_text("hi")
    refused("not a plugin directory or a .tar.gz", notes, allow_untrusted=True)
    refused("not a plugin name", str(tmp_path / "missing"))
    refused("give --index", "upper")
    index = served.publish("other", tgz(plugin_files(name="other")))
    refused("'upper' is not in the index", "upper", index=index)
    (served.root / "other-0.1.0-any.tar.gz").unlink()
    refused("HTTP 404", "other", index=index)
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"not gzip")
    refused("not a readable .tar.gz", broken, allow_untrusted=True)


# --- the index itself ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ([], "must be a JSON object"),
        ({"schema": 2, "plugins": {}}, "schema must be 1"),
        ({"schema": 1, "plugins": {"Bad": {}}}, "plugins.Bad is not a plugin name"),
        ({"schema": 1, "plugins": {"x": {"kind": "nope"}}}, "plugins.x.kind must be one of"),
        (
            {
                "schema": 1,
                "plugins": {"x": {"kind": "output", "latest": "2", "versions": {"1": {}}}},
            },
            "plugins.x.latest must name one of its versions",
        ),
        (
            {
                "schema": 1,
                "plugins": {
                    "x": {
                        "kind": "output",
                        "latest": "1",
                        "versions": {
                            "1": {
                                "min_cannonade_abi": "1.0",
                                "artifacts": {"any": {"url": "u", "sha256": "abc"}},
                            }
                        },
                    }
                },
            },
            "plugins.x.versions.1.artifacts.any.sha256 must be 64 hex digits",
        ),
    ],
)
def test_index_errors_name_the_field(tmp_path, data, pattern):
    path = tmp_path / "index.json"
    path.write_text(json.dumps(data))
    with pytest.raises(PluginError, match=pattern) as e:
        load_index(str(path))
    assert str(e.value).startswith(str(path))


def test_index_from_a_remote_url_cannot_point_at_local_files(served):
    index = served.publish("upper", tgz(plugin_files()))
    served.index["plugins"]["upper"]["versions"]["0.1.0"]["artifacts"]["any"]["url"] = (
        "file:///etc/passwd"
    )
    (served.root / "index.json").write_text(json.dumps(served.index))
    with pytest.raises(PluginError, match="is not http"):
        load_index(index).resolve("upper")


def test_host_target_shape():
    arch, *rest = host_target().split("-")
    assert arch
    assert len(rest) >= 2


# --- list, info, remove --------------------------------------------------------------


def test_find_installed_and_remove(plugins, tmp_path):
    install(write_dir(tmp_path / "d", plugin_files()), allow_untrusted=True)
    assert [p.name for p in installed()] == ["keeper", "upper"]
    assert find("nothing") is None
    remove("upper")
    assert find("upper") is None
    assert [p.name for p in installed()] == ["keeper"]
    with pytest.raises(PluginError, match="'upper' is not installed"):
        remove("upper")
    with pytest.raises(PluginError, match="not a plugin name"):
        find("../keeper")
    with pytest.raises(PluginError, match="not a plugin name"):
        remove("../plugins")
    assert sorted(p.name for p in plugins.iterdir()) == ["keeper"]


def test_broken_plugins_are_reported_not_listed(plugins):
    write_dir(plugins / "renamed", plugin_files(name="other"))
    write_dir(plugins / "noentry", {"plugin.toml": manifest(name="noentry")})
    write_dir(plugins / ".install-stale", plugin_files())
    good, problems = scan()
    assert [p.name for p in good] == ["keeper"]
    assert len(problems) == 2
    assert any("installed as 'renamed'" in p for p in problems)
    assert any("entry file" in p for p in problems)
    with pytest.raises(PluginError, match="installed as 'renamed'"):
        find("renamed")
    remove("renamed")  # a broken plugin can still be removed
    assert not (plugins / "renamed").exists()
    assert registry.find("keeper") is not None
