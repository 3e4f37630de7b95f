"""WASM extractor and assertion plugins: components of the loadr:plugin@0.1.0 world.

    plugin = WasmPlugin.load(Path("uppercase_extractor.wasm"))
    plugin.info.kind                                   # "extractor"
    plugin.extract(b"token=abc;", [], '{"left": "token=", "right": ";"}')   # "ABC"

A plugin is a WebAssembly *component* (not a core module) exporting
``loadr:plugin/meta`` and the interface of its kind, ``extractor`` or ``assertion``, as
in ``wit/loadr.wit``. ``describe()`` names the kind; a component may export both
interfaces (the ``loadr-plugin`` world) but is used only as the kind it describes.

Loading compiles the component, or takes it from the on-disk cache (wasm_cache), checks
its exports' signatures, instantiates it in a sandbox (wasm_host: no filesystem,
environment or network; a deadline per call; a memory limit) and calls ``describe()``.
Every failure, at load or in a call, is a PluginError; after a failed call the next one
runs in a fresh instance.

Calls are synchronous and block the calling thread for at most about the deadline
(100 ms by default); calls to one plugin from several threads are serialised.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wasmtime import WasmtimeError

from cannonade.errors import PluginError
from cannonade.plugins.wasm_abi import KIND_EXPORTS, Export, find_export
from cannonade.plugins.wasm_cache import compile_component
from cannonade.plugins.wasm_host import Limits, Sandbox, runtime

__all__ = ["Limits", "PluginInfo", "WasmPlugin"]

_WASM_MAGIC = b"\0asm"
_CORE_MODULE_VERSION = b"\x01\x00\x00\x00"

Headers = Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """What the plugin's ``describe()`` says about itself."""

    name: str
    version: str
    kind: str
    description: str


class WasmPlugin:
    """A loaded WASM plugin; see the module docstring."""

    def __init__(
        self,
        path: Path,
        sandbox: Sandbox,
        info: PluginInfo,
        call: Export,
        sha256: str,
        from_cache: bool,
    ) -> None:
        self.path = path
        self.info = info
        self.sha256 = sha256
        self.from_cache = from_cache  # compiled code came from the cache
        self._sandbox = sandbox
        self._call_export = call
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls, path: Path, *, cache_dir: Path | None = None, limits: Limits | None = None
    ) -> WasmPlugin:
        """Load the component at ``path``; ``cache_dir`` holds compiled code (default
        ``$XDG_CACHE_HOME/cannonade/wasm``)."""
        path = Path(path)
        try:
            wasm = path.read_bytes()
        except OSError as exc:
            raise PluginError(f"{path}: cannot read: {exc.strerror or exc}") from None
        label = str(path)
        # Checked here so that nothing but a wasm binary reaches wasmtime: a component's
        # text format would be accepted too, and is no plugin format.
        if not wasm.startswith(_WASM_MAGIC):
            raise PluginError(f"{label}: not a WebAssembly binary")
        if wasm[4:8] == _CORE_MODULE_VERSION:
            raise PluginError(
                f"{label}: a core WebAssembly module, not a component: build it for "
                "wasm32-wasip2 or wrap it with `wasm-tools component new`"
            )
        rt = runtime()
        try:
            compiled = compile_component(rt.engine, wasm, cache_dir)
        except WasmtimeError as exc:
            raise PluginError(f"{label}: not a valid component: {exc}") from None
        try:
            describe = find_export(rt.engine, compiled.component, "meta", "describe")
            sandbox = Sandbox(rt, compiled.component, limits or Limits(), label)
            sandbox.instantiate()
            info = _info(sandbox.call(describe, ()))
            if info.kind not in KIND_EXPORTS:
                raise PluginError(
                    f"describe() says kind {info.kind!r}; a WASM plugin is an "
                    "'extractor' or an 'assertion'"
                )
            call = find_export(rt.engine, compiled.component, *KIND_EXPORTS[info.kind])
        except PluginError as exc:
            text = str(exc)
            raise PluginError(text if text.startswith(label) else f"{label}: {text}") from None
        return cls(path, sandbox, info, call, compiled.sha256, compiled.from_cache)

    @property
    def instances(self) -> int:
        """How many instances were made so far: one, plus one after each failed call."""
        return self._sandbox.instances

    def extract(self, body: bytes, headers: Headers, config: str) -> str | None:
        """The value extracted from a response, or None when there is none."""
        self._expect("extractor", "extract")
        with self._lock:
            value = self._sandbox.call(self._call_export, (bytes(body), list(headers), config))
        if value is not None and not isinstance(value, str):  # pragma: no cover - typed
            raise PluginError(f"{self.path}: extract returned {type(value).__name__}")
        return value

    def check(
        self, status: int, body: bytes, headers: Headers, duration_ms: float, config: str
    ) -> tuple[bool, str]:
        """(passed, detail) for a response."""
        self._expect("assertion", "check")
        args = (int(status), bytes(body), list(headers), float(duration_ms), config)
        with self._lock:
            verdict = self._sandbox.call(self._call_export, args)
        return bool(verdict["pass"]), str(verdict["detail"])

    def _expect(self, kind: str, func: str) -> None:
        if self.info.kind != kind:
            raise PluginError(
                f"{self.path}: plugin {self.info.name!r} is an {self.info.kind}, it has no {func}()"
            )


def _info(record: dict[str, Any]) -> PluginInfo:
    return PluginInfo(
        name=str(record["name"]),
        version=str(record["version"]),
        kind=str(record["kind"]),
        description=str(record["description"]),
    )
