"""WASM plugins (cannonade.plugins.wasm*) against hand-written WAT components.

The fixtures in tests/fixtures/wasm/ are component WAT, turned into wasm here by
wasmtime's own parser (wasmtime.wat2wasm understands the component text format), so the
suite needs no other toolchain and each one compiles in milliseconds. plugin.wat says
what its extract() does for each config; wasi_probe.wat counts what WASI gives it.
"""

import os
import stat
import time
from pathlib import Path

import pytest
import wasmtime

from cannonade.errors import PluginError
from cannonade.plugins.wasm import Limits, PluginInfo, WasmPlugin
from cannonade.plugins.wasm_cache import WASMTIME_VERSION

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "wasm"
PLUGIN_WAT = (FIXTURES / "plugin.wat").read_text()


def _wasm(tmp_path: Path, name: str, wat: str) -> Path:
    path = tmp_path / name
    path.write_bytes(wasmtime.wat2wasm(wat))
    return path


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


@pytest.fixture
def extractor_wasm(tmp_path):
    return _wasm(tmp_path, "extractor.wasm", PLUGIN_WAT)


@pytest.fixture
def assertion_wasm(tmp_path):
    # Same length as "extractor", so the fixture's data offsets still hold.
    return _wasm(tmp_path, "assertion.wasm", PLUGIN_WAT.replace('"extractor"', '"assertion"'))


@pytest.fixture
def extractor(extractor_wasm, cache):
    return WasmPlugin.load(extractor_wasm, cache_dir=cache)


@pytest.fixture
def assertion(assertion_wasm, cache):
    return WasmPlugin.load(assertion_wasm, cache_dir=cache)


# -- calls ----------------------------------------------------------------------------------


def test_describe(extractor, assertion):
    assert extractor.info == PluginInfo(
        name="wat-fixture",
        version="0.1.0",
        kind="extractor",
        description="a hand-written test plugin",
    )
    assert assertion.info.kind == "assertion"


def test_extract_hit_and_miss(extractor):
    headers = [("content-type", "text/plain"), ("x-b", "2")]
    assert extractor.extract(b"token=abc;", headers, "b") == "token=abc;"
    assert extractor.extract(b"", headers, "h") == "text/plain"
    assert extractor.extract(b"", [], "h") is None
    assert extractor.extract(b"", [], "config as given") == "config as given"
    assert extractor.extract(b"token=abc;", headers, "x") is None
    assert extractor.extract(b"token=abc;", headers, "") is None


@pytest.mark.parametrize("size", [0, 1, 1024, 65536, 1024 * 1024])
def test_bodies_reach_the_guest_byte_for_byte(extractor, size):
    # The fast list<u8> lowering (wasm_abi.lower_bytes) against an echo.
    text = ("héllo wörld " * (size // 12 + 1)).encode()[:size].decode(errors="ignore")
    assert extractor.extract(text.encode(), [], "b") == text


def test_body_may_be_any_bytes_like(extractor):
    assert extractor.extract(bytearray(b"abc"), [], "b") == "abc"
    assert extractor.extract(memoryview(b"xabc")[1:], [], "b") == "abc"


def test_assertion_verdicts(assertion):
    assert assertion.check(200, b"ok", [("a", "b")], 12.5, '{"max": 1000}') == (
        True,
        '{"max": 1000}',
    )
    assert assertion.check(404, b"", [], 12.5, "status") == (False, "status")
    assert assertion.check(200, b"", [], 1000.5, "slow") == (False, "slow")
    assert assertion.check(399, b"", [], 0, "") == (True, "")


def test_calling_the_wrong_kind_raises(extractor, assertion):
    with pytest.raises(PluginError, match="is an extractor, it has no check"):
        extractor.check(200, b"", [], 1.0, "")
    with pytest.raises(PluginError, match="is an assertion, it has no extract"):
        assertion.extract(b"", [], "b")


# -- the sandbox ------------------------------------------------------------------------------


def test_a_call_that_loops_forever_hits_the_deadline_and_the_next_call_works(extractor):
    assert extractor.instances == 1
    started = time.monotonic()
    with pytest.raises(PluginError, match="deadline of 100 ms"):
        extractor.extract(b"", [], "loop")
    assert time.monotonic() - started < 1.0
    assert extractor.extract(b"still here", [], "b") == "still here"
    assert extractor.instances == 2  # a fresh instance after the trap


def test_a_shorter_deadline(extractor_wasm, cache):
    plugin = WasmPlugin.load(extractor_wasm, cache_dir=cache, limits=Limits(deadline_ms=20))
    started = time.monotonic()
    with pytest.raises(PluginError, match="deadline of 20 ms"):
        plugin.extract(b"", [], "loop")
    assert time.monotonic() - started < 0.5


def test_allocating_past_the_memory_limit_fails_cleanly(extractor_wasm, cache):
    # "g" grows memory by 125 MiB, past the default limit of 64 MiB, and traps when
    # refused, as an allocator that cannot get memory does.
    plugin = WasmPlugin.load(extractor_wasm, cache_dir=cache)
    with pytest.raises(PluginError, match="unreachable"):
        plugin.extract(b"", [], "grow")
    assert plugin.extract(b"fine", [], "b") == "fine"
    assert plugin.instances == 2
    roomy = WasmPlugin.load(extractor_wasm, cache_dir=cache, limits=Limits(memory_bytes=1 << 28))
    assert roomy.extract(b"", [], "grow") is None  # the same grow, under a higher limit


def test_a_component_needing_more_memory_than_the_limit_is_refused(extractor_wasm, cache):
    with pytest.raises(PluginError, match="cannot instantiate"):
        WasmPlugin.load(extractor_wasm, cache_dir=cache, limits=Limits(memory_bytes=32 * 1024))


def test_invalid_utf8_from_the_guest_is_an_error_not_a_crash(extractor):
    with pytest.raises(PluginError, match="utf-8"):
        extractor.extract(b"", [], "utf8")
    assert extractor.extract(b"ok", [], "b") == "ok"


def test_wasi_gives_no_environment_and_no_directory(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("CANNONADE_SECRET", "hunter2")
    assert os.environ  # the host has an environment to leak
    probe = _wasm(tmp_path, "probe.wasm", (FIXTURES / "wasi_probe.wat").read_text())
    plugin = WasmPlugin.load(probe, cache_dir=cache)
    # Two digits: environment variables, preopened directories.
    assert plugin.extract(b"", [], "") == "00"


def test_an_import_the_host_does_not_provide_is_refused(tmp_path, cache):
    wat = PLUGIN_WAT.replace("(component\n", '(component\n  (import "acme:host/net" (func))\n', 1)
    path = _wasm(tmp_path, "net.wasm", wat)
    with pytest.raises(PluginError, match=r"cannot instantiate.*acme:host/net"):
        WasmPlugin.load(path, cache_dir=cache)


# -- what is refused at load ---------------------------------------------------------------


def test_not_a_component(tmp_path, cache):
    core = _wasm(tmp_path, "core.wasm", "(module)")
    with pytest.raises(PluginError, match="core WebAssembly module, not a component"):
        WasmPlugin.load(core, cache_dir=cache)
    text = tmp_path / "plugin.wat"
    text.write_text(PLUGIN_WAT)
    with pytest.raises(PluginError, match="not a WebAssembly binary"):
        WasmPlugin.load(text, cache_dir=cache)
    with pytest.raises(PluginError, match="cannot read"):
        WasmPlugin.load(tmp_path / "missing.wasm", cache_dir=cache)
    broken = tmp_path / "broken.wasm"
    broken.write_bytes(wasmtime.wat2wasm("(component)")[:8] + b"\xff\xff")
    with pytest.raises(PluginError, match="not a valid component"):
        WasmPlugin.load(broken, cache_dir=cache)


def test_a_component_without_meta(tmp_path, cache):
    with pytest.raises(PluginError, match=r"does not export loadr:plugin/meta@0\.1\.0"):
        WasmPlugin.load(_wasm(tmp_path, "empty.wasm", "(component)"), cache_dir=cache)


def test_a_signature_other_than_the_contract_is_named(tmp_path, cache):
    wat = """(component
      (core module $m
        (memory (export "memory") 1)
        (func (export "describe") (result i32) (i32.const 0)))
      (core instance $i (instantiate $m))
      (func $describe (result string)
        (canon lift (core func $i "describe") (memory (core memory $i "memory"))))
      (instance $meta (export "describe" (func $describe)))
      (export "loadr:plugin/meta@0.1.0" (instance $meta)))"""
    with pytest.raises(PluginError, match=r"#describe is func\(\) -> string, expected func\(\) ->"):
        WasmPlugin.load(_wasm(tmp_path, "odd.wasm", wat), cache_dir=cache)


def test_a_kind_wasm_cannot_be(tmp_path, cache):
    path = _wasm(tmp_path, "proto.wasm", PLUGIN_WAT.replace('"extractor"', '"protocols"'))
    with pytest.raises(PluginError, match="kind 'protocols'"):
        WasmPlugin.load(path, cache_dir=cache)


def test_a_later_patch_of_the_contract_is_accepted(tmp_path, cache):
    path = _wasm(tmp_path, "patch.wasm", PLUGIN_WAT.replace("@0.1.0", "@0.1.7"))
    assert WasmPlugin.load(path, cache_dir=cache).extract(b"x", [], "b") == "x"
    newer = _wasm(tmp_path, "minor.wasm", PLUGIN_WAT.replace("@0.1.0", "@0.2.0"))
    with pytest.raises(PluginError, match=r"does not export loadr:plugin/meta@0\.1\.0"):
        WasmPlugin.load(newer, cache_dir=cache)


# -- the compile cache -----------------------------------------------------------------------


def _entries(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.glob("*.cwasm"))


def test_the_second_load_uses_the_cache(extractor_wasm, assertion_wasm, cache):
    first = WasmPlugin.load(extractor_wasm, cache_dir=cache)
    assert not first.from_cache
    assert _entries(cache) == [f"{first.sha256}-wasmtime-{WASMTIME_VERSION}-epoch1.cwasm"]
    second = WasmPlugin.load(extractor_wasm, cache_dir=cache)
    assert second.from_cache
    assert second.extract(b"cached", [], "b") == "cached"
    # Keyed by the wasm's sha256: another wasm compiles anew beside it.
    other = WasmPlugin.load(assertion_wasm, cache_dir=cache)
    assert not other.from_cache
    assert other.sha256 != first.sha256
    assert len(_entries(cache)) == 2
    assert WasmPlugin.load(assertion_wasm, cache_dir=cache).from_cache


def test_a_corrupt_entry_is_compiled_again(extractor_wasm, cache):
    plugin = WasmPlugin.load(extractor_wasm, cache_dir=cache)
    (entry,) = cache.glob("*.cwasm")
    entry.write_bytes(b"\x7fELF not what wasmtime wrote")
    again = WasmPlugin.load(extractor_wasm, cache_dir=cache)
    assert not again.from_cache
    assert again.extract(b"ok", [], "b") == "ok"
    assert WasmPlugin.load(extractor_wasm, cache_dir=cache).from_cache
    assert plugin.sha256 == again.sha256


def test_a_cache_others_can_write_to_is_not_trusted(extractor_wasm, cache):
    WasmPlugin.load(extractor_wasm, cache_dir=cache)
    cache.chmod(0o777)
    assert not WasmPlugin.load(extractor_wasm, cache_dir=cache).from_cache
    cache.chmod(0o700)
    (entry,) = cache.glob("*.cwasm")
    entry.chmod(entry.stat().st_mode | stat.S_IWOTH)
    assert not WasmPlugin.load(extractor_wasm, cache_dir=cache).from_cache


def test_entries_are_private(extractor_wasm, cache):
    WasmPlugin.load(extractor_wasm, cache_dir=cache)
    assert stat.S_IMODE(cache.stat().st_mode) & 0o077 == 0
    (entry,) = cache.glob("*.cwasm")
    assert stat.S_IMODE(entry.stat().st_mode) & 0o077 == 0
    assert not list(cache.glob(".tmp-*"))


def test_an_unwritable_cache_only_costs_the_compile(extractor_wasm, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    plugin = WasmPlugin.load(extractor_wasm, cache_dir=blocker / "cache")
    assert plugin.extract(b"ok", [], "b") == "ok"


def test_the_default_cache_follows_xdg(extractor_wasm, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    WasmPlugin.load(extractor_wasm)
    assert len(_entries(tmp_path / "xdg" / "cannonade" / "wasm")) == 1


def test_headers_and_config_cross_as_text(extractor):
    assert extractor.extract(b"", [("ключ", "värde ✓")], "h") == "värde ✓"
    assert extractor.extract(b"", [("empty", "")], "h") == ""
    assert extractor.extract(b"", [], "c: ünïcode ✓") == "c: ünïcode ✓"
    with pytest.raises(TypeError, match=r"\(str, str\) pairs"):
        extractor.extract(b"", [("a", 1)], "h")
    assert extractor.extract(b"", [("a", "b")], "h") == "b"  # nothing was left half-made


def test_many_calls_do_not_leak(extractor):
    import resource

    body = b"x" * 1024
    for _ in range(500):
        extractor.extract(body, [("a", "b")], "b")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(5000):
        assert extractor.extract(body, [("a", "b")], "b") == "x" * 1024
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    # Each call lowers 1 KiB as 32 KiB of C values and lifts 1 KiB back: leaking either
    # would show as 5 to 160 MiB.
    assert grown_kib < 4096


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # 3.12+: fork with threads
def test_deadlines_still_fire_in_a_forked_child(extractor):
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if the deadline stopped the loop
        code = 1
        try:
            extractor.extract(b"", [], "loop")
        except PluginError as exc:
            code = 0 if "deadline" in str(exc) else 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the child's call never hit its deadline")
