"""Archive bundles: what is refused (traversal, links, bombs) and what is unpacked."""

import io
import stat
import tarfile
import zipfile

import pytest

from cannonade.errors import ScenarioError
from cannonade.scenarios import archive
from cannonade.scenarios.archive import default_entry, members, unpack


def tgz(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            if kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = data.decode()
                tar.addfile(info)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def zipped(entries, mode=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.external_attr = mode << 16
            z.writestr(info, data)
    return buf.getvalue()


def test_tar_and_zip_unpack_into_the_directory(tmp_path):
    data = tgz([("pkg", b"", "dir"), ("main.py", b"x = 1\n", "file"), ("pkg/a.py", b"", "file")])
    assert unpack("b.tar.gz", data, tmp_path) == ["main.py", "pkg/a.py"]
    assert (tmp_path / "main.py").read_bytes() == b"x = 1\n"
    z = zipped([("main.py", b"y = 2\n"), ("lib/b.py", b"")])
    (tmp_path / "z").mkdir()
    assert unpack("b.zip", z, tmp_path / "z") == ["main.py", "lib/b.py"]
    assert (tmp_path / "z" / "lib" / "b.py").exists()


@pytest.mark.parametrize("name", ["../evil.py", "/etc/evil.py", "a/../../evil.py"])
def test_paths_out_of_the_bundle_are_refused(tmp_path, name):
    for fname, data in (
        ("b.tar.gz", tgz([(name, b"x", "file")])),
        ("b.zip", zipped([(name, b"x")])),
    ):
        with pytest.raises(ScenarioError, match="refused"):
            unpack(fname, data, tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert not (tmp_path.parent / "evil.py").exists()


def test_links_and_special_files_are_refused(tmp_path):
    with pytest.raises(ScenarioError, match="not a regular file"):
        members("b.tar.gz", tgz([("link.py", b"/etc/passwd", "symlink")]))
    with pytest.raises(ScenarioError, match="not a regular file"):
        members("b.zip", zipped([("link.py", b"/etc/passwd")], mode=stat.S_IFLNK | 0o777))


def test_too_many_entries_or_bytes_are_refused(monkeypatch):
    monkeypatch.setattr(archive, "MAX_MEMBERS", 3)
    with pytest.raises(ScenarioError, match="more than 3 entries"):
        members("b.zip", zipped([(f"f{i}.py", b"") for i in range(4)]))
    monkeypatch.setattr(archive, "MAX_UNPACKED", 1000)
    # A bomb: small compressed, big unpacked; refused from the sizes it declares.
    with pytest.raises(ScenarioError, match="unpacks to more than"):
        members("b.zip", zipped([("big.py", b"\0" * 2000)]))


def test_garbage_and_unknown_types_are_refused():
    with pytest.raises(ScenarioError, match="not a readable zip"):
        members("b.zip", b"not a zip")
    with pytest.raises(ScenarioError, match=r"not a readable \.tar\.gz"):
        members("b.tgz", b"not a tarball")
    with pytest.raises(ScenarioError, match="is not a"):
        members("b.rar", b"")


def test_default_entry():
    assert default_entry(["main.py", "lib/x.py"]) == "main.py"
    assert default_entry(["plan.yaml", "data.csv"]) == "plan.yaml"
    assert default_entry(["a.py", "main.py"]) == "main.py"
    assert default_entry(["a.py", "b.py"]) is None
