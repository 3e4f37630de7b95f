"""The wasmtime side of WASM plugins: one engine per process, and the sandbox each plugin
runs in.

The sandbox:

* WASI preview 2 is linked (Rust's wasm32-wasip2 and componentize-py plugins import it
  even when they never touch a file), but each store gets an empty WasiConfig: no
  preopened directory, no environment variable, no argument, stdin empty, stdout and
  stderr discarded, and wasmtime's default socket policy, which allows connecting or
  binding to no address and resolving no name. wasi:http is not linked, and a component
  that imports anything else that is not provided is refused when it is instantiated;
* every call runs under an epoch deadline (:class:`Limits.deadline_ms`): a ticker thread
  advances the engine's epoch every ``TICK_SECONDS`` and a call that runs past its
  deadline traps, so a call ends between the deadline and one tick later;
* each store's linear memories together may not grow past ``Limits.memory_bytes``:
  ``memory.grow`` fails beyond it, and an allocator that cannot grow traps;
* after any failed call the store and instance are dropped, and the next call gets a
  fresh instance, because an instance that trapped may be in any state.
"""

from __future__ import annotations

import ctypes
import math
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wasmtime import Config, Engine, Store, WasiConfig, WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime import component as wc

from cannonade.errors import PluginError
from cannonade.plugins.wasm_abi import Export
from cannonade.plugins.wasm_values import lift, lowering

TICK_SECONDS = 0.010


@dataclass(frozen=True, slots=True)
class Limits:
    """What one plugin instance may use."""

    deadline_ms: float = 100.0
    memory_bytes: int = 64 * 1024 * 1024
    # Instantiation runs the component's start code; it gets this long.
    instantiate_deadline_ms: float = 2000.0


def new_engine() -> Engine:
    config = Config()
    config.epoch_interruption = True  # changes the generated code: wasm_cache.ENGINE_TAG
    config.wasm_component_model = True
    return Engine(config)


class Runtime:
    """The engine, its linker and the thread that advances its epoch."""

    def __init__(self) -> None:
        self.engine = new_engine()
        self.linker = wc.Linker(self.engine)
        self.linker.add_wasip2()
        self.start_ticker()

    def start_ticker(self) -> None:
        # A daemon thread, so a process with plugins loaded still exits; while wasm runs,
        # ctypes has released the GIL, so the ticker runs then.
        threading.Thread(target=self._tick, name="wasm-epoch", daemon=True).start()

    def _tick(self) -> None:
        # Ticks are scheduled on the clock rather than `sleep(TICK)` after each one, so
        # that sleep's overshoot does not stretch every deadline by a few percent.
        next_tick = time.monotonic()
        while True:
            next_tick += TICK_SECONDS
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:  # fell behind (a suspended process): catch up without a burst
                next_tick = time.monotonic()
            self.engine.increment_epoch()


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def runtime() -> Runtime:
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            _runtime = Runtime()
        return _runtime


def _after_fork_in_child() -> None:
    # A forked child keeps the engine and the plugins loaded before the fork, but not
    # the ticker thread: without a new one no deadline would ever fire there.
    global _runtime_lock
    _runtime_lock = threading.Lock()
    if _runtime is not None:
        _runtime.start_ticker()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _ticks(deadline_ms: float) -> int:
    # One more tick than the deadline holds, since the current tick may be about to end.
    return math.ceil(deadline_ms / 1000 / TICK_SECONDS) + 1


class _Func:
    """An export resolved in one instance, with how to lower each of its parameters
    (chosen once here, not per call)."""

    __slots__ = ("func", "has_result", "lowerings")

    def __init__(self, store: Store, func: wc.Func) -> None:
        fty = func.type(store)
        self.func = func
        self.lowerings = [lowering(ty) for _, ty in fty.params]
        self.has_result = fty.result is not None


class Sandbox:
    """One component and, between failures, one instance of it in a store of its own.

    Not thread-safe (neither is a wasmtime store): the caller serialises calls.
    """

    def __init__(self, rt: Runtime, component: wc.Component, limits: Limits, label: str) -> None:
        self._rt = rt
        self._component = component
        self._limits = limits
        self._label = label
        self._deadline_ticks = _ticks(limits.deadline_ms)
        self._store: Store | None = None
        self._instance: wc.Instance | None = None
        self._funcs: dict[str, _Func] = {}
        self.instances = 0  # how many were made: the tests see a fresh one after a trap

    def instantiate(self) -> None:
        store = Store(self._rt.engine)
        store.set_wasi(WasiConfig())
        store.set_limits(memory_size=self._limits.memory_bytes)
        store.set_epoch_deadline(_ticks(self._limits.instantiate_deadline_ms))
        try:
            instance = self._rt.linker.instantiate(store, self._component)
        except WasmtimeError as exc:
            raise PluginError(f"{self._label}: cannot instantiate: {_first_line(exc)}") from None
        self._store, self._instance, self._funcs = store, instance, {}
        self.instances += 1

    def call(self, export: Export, args: Sequence[Any]) -> Any:
        if self._store is None:
            self.instantiate()
        store, instance = self._store, self._instance
        assert store is not None
        assert instance is not None
        f = self._funcs.get(export.where)
        if f is None:
            func = instance.get_func(store, export.index)
            if func is None:  # pragma: no cover - find_export checked the type
                raise PluginError(f"{self._label}: {export.where} is not a function")
            f = self._funcs[export.where] = _Func(store, func)
        started = time.monotonic()
        try:
            return self._call(store, f, args)
        except WasmtimeError as exc:
            self._store = self._instance = None  # the next call gets a fresh instance
            raise self._error(export, exc, time.monotonic() - started) from None

    def _call(self, store: Store, f: _Func, args: Sequence[Any]) -> Any:
        # What wasmtime-py's Func.__call__ does, with the conversions of wasm_values.
        n = len(args)
        params = (ffi.wasmtime_component_val_t * n)()
        lowered = 0
        try:
            for lower, arg in zip(f.lowerings, args, strict=True):
                lower(store, arg, ctypes.pointer(params[lowered]))
                lowered += 1
            result = ffi.wasmtime_component_val_t()
            store.set_epoch_deadline(self._deadline_ticks)
            error = ffi.wasmtime_component_func_call(
                ctypes.byref(f.func._func),
                store._context(),
                params,
                n,
                ctypes.byref(result) if f.has_result else None,
                1 if f.has_result else 0,
            )
            if error:
                raise WasmtimeError._from_ptr(error)
            # wasmtime >= 39 runs the post-return function itself as part of the call.
            if not f.has_result:
                return None
            try:
                return lift(result)
            finally:
                ffi.wasmtime_component_val_delete(ctypes.byref(result))
        finally:
            for i in range(lowered):
                ffi.wasmtime_component_val_delete(ctypes.byref(params[i]))

    def _error(self, export: Export, exc: WasmtimeError, elapsed: float) -> PluginError:
        text = str(exc)
        if "interrupt" in text:
            return PluginError(
                f"{self._label}: {export.where} ran past its deadline of "
                f"{self._limits.deadline_ms:g} ms (stopped after {elapsed * 1000:.0f} ms)"
            )
        return PluginError(f"{self._label}: {export.where} failed: {_first_line(exc)}")


def _first_line(exc: Exception) -> str:
    # wasmtime appends a multi-line wasm backtrace; the first line says what happened.
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    head = lines[0] if lines else type(exc).__name__
    # "error while executing at wasm backtrace:" puts the cause last.
    if head.startswith("error while executing") and lines:
        return lines[-1].removeprefix("Caused by:").strip() or head
    return head
