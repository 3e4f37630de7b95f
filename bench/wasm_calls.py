"""Calls per second into a WASM plugin: cannonade's call path against wasmtime-py's own.

    .venv/bin/python bench/wasm_calls.py [--seconds 2] [--sizes 1024,65536] [--example]
                                         [--example-wasm PATH]

Each row is ``extract(body, headers, config)`` on one body size, called in a closed
loop for ``--seconds``, through:

* ``cannonade``: ``WasmPlugin.extract``, which lowers the ``list<u8>`` body with two
  strided numpy writes (cannonade/plugins/wasm_abi.py);
* ``stock``: wasmtime-py's ``Func.__call__`` on the same component in its own store,
  which lowers the body with one ctypes call per byte.

Plugins: ``fixture`` is tests/fixtures/wasm/plugin.wat with a config that makes extract
return None at once, so a row is the host's cost alone; ``example`` (with ``--example``)
is examples/plugins/uppercase-extractor, a componentize-py build with CPython inside,
given a body whose match is at the end, so a row adds a real guest's work. The example
is built first (~15 s) unless ``--example-wasm`` names a build; compiled code is cached
in the usual place ($XDG_CACHE_HOME/cannonade/wasm). docs/plugins.md quotes the results.
"""

from __future__ import annotations

import argparse
import runpy
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import wasmtime
from wasmtime import Store, WasiConfig
from wasmtime.component import Func

from cannonade.plugins.wasm import WasmPlugin
from cannonade.plugins.wasm_cache import WASMTIME_VERSION, compile_component
from cannonade.plugins.wasm_host import runtime

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "wasm" / "plugin.wat"
EXAMPLE = ROOT / "examples" / "plugins" / "uppercase-extractor"
HEADERS = [("content-type", "text/plain"), ("content-length", "1024")]


def stock_extract(path: Path) -> Callable[[bytes, list[tuple[str, str]], str], object]:
    """wasmtime-py's own call path, in a store set up like cannonade's sandbox."""
    rt = runtime()
    component = compile_component(rt.engine, path.read_bytes(), None).component
    store = Store(rt.engine)
    store.set_wasi(WasiConfig())
    store.set_epoch_deadline(1 << 40)
    instance = rt.linker.instantiate(store, component)
    iface = instance.get_export_index(store, "loadr:plugin/extractor@0.1.0")
    index = instance.get_export_index(store, "extract", iface) if iface else None
    func = instance.get_func(store, index) if index else None
    assert isinstance(func, Func)
    return lambda body, headers, config: func(store, body, headers, config)


def rate(call: Callable[[], object], seconds: float) -> tuple[int, float]:
    call()  # the first call may instantiate or warm caches
    calls, started = 0, time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        call()
        calls += 1
    return calls, time.perf_counter() - started


def bench(name: str, path: Path, config: str, sizes: list[int], seconds: float) -> None:
    plugin = WasmPlugin.load(path)
    stock = stock_extract(path)
    for size in sizes:
        body = (b"a" * size)[: max(0, size - 10)] + b"token=abc;"[: min(10, size)]
        for how, fn in (("cannonade", plugin.extract), ("stock", stock)):
            calls, took = rate(lambda fn=fn, body=body: fn(body, HEADERS, config), seconds)
            print(
                f"{name:8} {how:10} {size:>8} B  {calls / took:>9.0f} calls/s"
                f"  {took / calls * 1e6:>9.1f} µs/call"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--sizes", default="1024,65536")
    parser.add_argument("--example", action="store_true", help="also the componentize-py example")
    parser.add_argument("--example-wasm", type=Path, help="a build of the example to use")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"python {sys.version.split()[0]}, wasmtime {WASMTIME_VERSION}")
    with tempfile.TemporaryDirectory() as tmp:
        fixture = Path(tmp) / "fixture.wasm"
        fixture.write_bytes(wasmtime.wat2wasm(FIXTURE.read_text()))
        bench("fixture", fixture, "none", sizes, args.seconds)
        if args.example or args.example_wasm:
            wasm = args.example_wasm
            if wasm is None:
                wasm = Path(tmp) / "uppercase_extractor.wasm"
                runpy.run_path(str(EXAMPLE / "build.py"))["build"](wasm)
            config = '{"left": "token=", "right": ";"}'
            bench("example", wasm, config, sizes, args.seconds)


if __name__ == "__main__":
    main()
