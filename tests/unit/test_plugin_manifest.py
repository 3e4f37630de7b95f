"""plugin.toml: the good shapes parse, every bad one names the file and the field."""

from __future__ import annotations

import textwrap

import pytest

from cannonade.errors import PluginError
from cannonade.plugins.manifest import Manifest, entry_files, parse, read

WASM = """
[plugin]
name = "uppercase-extractor"
version = "0.1.0"
kind = "extractor"
type = "wasm"
entry = "uppercase_extractor.wasm"
description = "Boundary extractor that upper-cases the match"
"""


def toml(**fields: object) -> str:
    """A [plugin] table from keywords (None drops the key); extra text after."""
    base: dict[str, object] = {
        "name": "redis",
        "version": "0.2.0",
        "kind": "protocol",
        "type": "python",
        "entry": "cannonade_redis:RedisProtocol",
        "schemes": ["redis", "rediss"],
    }
    base.update(fields)
    lines = ["[plugin]"]
    for key, value in base.items():
        if value is None:
            continue
        if isinstance(value, list):
            lines.append(f"{key} = [{', '.join(repr(v) for v in value)}]")
        elif isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        else:
            lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


def test_loadr_wasm_example_parses():
    m = parse(WASM)
    assert m == Manifest(
        name="uppercase-extractor",
        version="0.1.0",
        kind="extractor",
        type="wasm",
        entry="uppercase_extractor.wasm",
        description="Boundary extractor that upper-cases the match",
    )
    assert m.schemes == ()
    assert m.config == {}
    assert m.entry_files == ("uppercase_extractor.wasm",)
    assert m.entry_attribute is None


def test_python_protocol_plugin_with_config():
    m = parse(toml() + '\n[config]\nhost = "127.0.0.1"\nport = 6379\n')
    assert m.schemes == ("redis", "rediss")
    assert m.config == {"host": "127.0.0.1", "port": 6379}
    assert m.entry_attribute == "RedisProtocol"
    assert m.entry_files == ("cannonade_redis.py", "cannonade_redis/__init__.py")


def test_python_file_entry_and_dotted_module():
    assert parse(toml(entry="plugin.py")).entry_files == ("plugin.py",)
    assert parse(toml(entry="sub/plugin.py")).entry_files == ("sub/plugin.py",)
    dotted = parse(toml(entry="pkg.mod:make"))
    assert dotted.entry_files == ("pkg/mod.py", "pkg/mod/__init__.py")
    assert entry_files("wasm", "a.wasm") == ("a.wasm",)


def test_manifest_is_frozen_and_hashable():
    m = parse(WASM)
    with pytest.raises(AttributeError):
        m.name = "other"  # type: ignore[misc]
    assert hash(m) == hash(parse(WASM))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            toml(kind="service"),
            "[plugin].kind must be one of protocol, extractor, assertion, output",
        ),
        (toml(type="native"), "[plugin].type must be one of python, wasm"),
        (toml(name=None), "[plugin].name is required"),
        (toml(version=None), "[plugin].version is required"),
        (toml(entry=None), "[plugin].entry is required"),
        (toml(kind=None), "[plugin].kind is required"),
        (toml(type=None), "[plugin].type is required"),
        (toml(name="Redis"), "[plugin].name must be [a-z0-9][a-z0-9_-]{0,63}"),
        (toml(name="-redis"), "[plugin].name must be"),
        (toml(name="a" * 65), "[plugin].name must be"),
        (toml(name="re dis"), "[plugin].name must be"),
        (toml(name=7), "[plugin].name must be"),
        (toml(version=""), "[plugin].version must be a version"),
        (toml(description=3), "[plugin].description must be a string"),
        (toml(schemes="redis"), "[plugin].schemes must be a list of strings"),
        (toml(schemes=["Redis"]), "is not a URL scheme"),
        (toml(schemes=["redis", "redis"]), "lists a scheme twice"),
        (toml(kind="output", schemes=["x"]), "only protocol plugins claim URL schemes"),
        (toml(shemes=["x"]), "[plugin].shemes is not a known key"),
        (toml() + "[extra]\n", "unknown table or key 'extra'"),
        (toml() + "config = 3\n", "[plugin].config is not a known key"),
        ("config = 3\n" + toml(), "[config] must be a table"),
        ("[config]\n", "a [plugin] table is required"),
        ("[plugin\n", "not valid TOML"),
    ],
)
def test_every_error_names_the_file_and_field(text, message):
    with pytest.raises(PluginError) as e:
        parse(text, "dist/plugin.toml")
    assert str(e.value).startswith("dist/plugin.toml: ")
    assert message in str(e.value)


@pytest.mark.parametrize(
    "entry",
    ["../evil.py", "/abs/plugin.py", "a/../../b.py", "./plugin.py", "a//b.py", "a\\b.py", "..py"],
)
def test_entry_must_stay_inside_the_plugin_directory(entry):
    with pytest.raises(PluginError, match=r"\[plugin\]\.entry .* relative file name inside"):
        parse(toml(entry=entry.replace("\\", "\\\\")))


@pytest.mark.parametrize(
    "entry", ["os:system:x", "1mod:attr", "mod:", ":attr", "mod:a.b", "a..b:c"]
)
def test_bad_python_module_entries(entry):
    with pytest.raises(PluginError, match=r"'module:attribute'"):
        parse(toml(entry=entry))


def test_python_entry_without_colon_must_be_a_py_file():
    with pytest.raises(PluginError, match=r"a python entry is a \.py file or 'module:attribute'"):
        parse(toml(entry="plugin.wasm"))


def test_wasm_entry_must_be_a_wasm_file():
    with pytest.raises(PluginError, match=r"a wasm entry is a \.wasm file"):
        parse(WASM.replace("uppercase_extractor.wasm", "x.py"))


@pytest.mark.parametrize("kind", ["protocol", "output"])
def test_wasm_plugins_are_only_extractors_or_assertions(kind):
    with pytest.raises(PluginError, match="wasm plugins can only be extractor or assertion"):
        parse(WASM.replace('kind = "extractor"', f'kind = "{kind}"'))
    assert parse(WASM.replace('kind = "extractor"', 'kind = "assertion"')).kind == "assertion"


def test_read_names_the_path(tmp_path):
    path = tmp_path / "plugin.toml"
    with pytest.raises(PluginError, match="no such file"):
        read(path)
    path.write_text(textwrap.dedent(WASM).replace('"wasm"', '"jar"'))
    with pytest.raises(PluginError) as e:
        read(path)
    assert str(e.value).startswith(f"{path}: [plugin].type")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(PluginError, match="cannot read"):
        read(path)
