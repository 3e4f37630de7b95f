"""The loadr:plugin@0.1.0 contract as wasmtime sees it: which exports a plugin must have,
their signatures, and a fast way to hand a ``list<u8>`` to the guest.

The contract is ``wit/loadr.wit`` beside this file. A component's exports are checked
against it when it is loaded, so a plugin built against another contract is refused with
the signature it has and the one expected, instead of failing on its first call.
"""

from __future__ import annotations

import ctypes
import re
from dataclasses import dataclass

import numpy as np
from wasmtime import Engine
from wasmtime import _ffi as ffi
from wasmtime import component as wc

from cannonade.errors import PluginError

PACKAGE = "loadr:plugin"
# Semver for 0.x: any 0.1.z is compatible with 0.1.0 (a patch adds no breaking change).
_EXPORT_NAME = re.compile(r"loadr:plugin/(?P<iface>[a-z][a-z0-9-]*)@0\.1\.\d+")

INFO = "record { name: string, version: string, kind: string, description: string }"
VERDICT = "record { pass: bool, detail: string }"
HEADERS = "list<tuple<string, string>>"
SIGNATURES: dict[tuple[str, str], str] = {
    ("meta", "describe"): f"func() -> {INFO}",
    ("extractor", "extract"): (
        f"func(body: list<u8>, headers: {HEADERS}, config: string) -> option<string>"
    ),
    ("assertion", "check"): (
        f"func(status: s64, body: list<u8>, headers: {HEADERS}, duration-ms: f64, "
        f"config: string) -> {VERDICT}"
    ),
}
# The interface that a plugin of each kind must export, besides meta.
KIND_EXPORTS = {"extractor": ("extractor", "extract"), "assertion": ("assertion", "check")}


@dataclass(frozen=True, slots=True)
class Export:
    """A function export found and checked in a component: ``where`` names it in errors."""

    where: str
    index: wc.ExportIndex


def find_export(engine: Engine, component: wc.Component, iface: str, func: str) -> Export:
    """The export ``loadr:plugin/<iface>@0.1.x#<func>``, checked against its signature."""
    exports = component.type.exports(engine)
    names = [n for n in exports if (m := _EXPORT_NAME.fullmatch(n)) and m["iface"] == iface]
    if not names:
        raise PluginError(f"the component does not export {PACKAGE}/{iface}@0.1.0")
    name = names[0]
    instance_type = exports[name].ty
    if not isinstance(instance_type, wc.ComponentInstanceType):
        raise PluginError(f"{name} is not an interface")
    func_type = instance_type.exports(engine).get(func)
    where = f"{name}#{func}"
    if func_type is None:
        raise PluginError(f"{name} has no function {func}")
    got = wit_signature(func_type.ty)
    want = SIGNATURES[(iface, func)]
    if got != want:
        raise PluginError(f"{where} is {got}, expected {want}")
    parent = component.get_export_index(name)
    index = component.get_export_index(func, parent) if parent is not None else None
    if index is None:  # pragma: no cover - the type said it is there
        raise PluginError(f"{where}: not found")
    return Export(where, index)


def wit_signature(item: object) -> str:
    """A function type written as in WIT (records inline), to compare and to show."""
    if not isinstance(item, wc.FuncType):
        return type(item).__name__
    params = ", ".join(f"{name}: {wit_type(ty)}" for name, ty in item.params)
    result = item.result
    return f"func({params})" + (f" -> {wit_type(result)}" if result is not None else "")


def wit_type(ty: wc.ValType) -> str:
    if isinstance(ty, wc.ListType):
        return f"list<{wit_type(ty.element)}>"
    if isinstance(ty, wc.TupleType):
        return f"tuple<{', '.join(wit_type(e) for e in ty.elements)}>"
    if isinstance(ty, wc.OptionType):
        return f"option<{wit_type(ty.payload)}>"
    if isinstance(ty, wc.RecordType):
        return "record { " + ", ".join(f"{n}: {wit_type(t)}" for n, t in ty.fields) + " }"
    # Primitives (Bool, U8, S64, F64, String, ...) are named after their WIT spelling;
    # anything else the contract does not use shows as its class name, which never matches.
    return type(ty).__name__.lower()


# -- list<u8> without a Python object per byte ----------------------------------------------
#
# wasmtime-py lowers a list<u8> one ctypes call per byte (U8.convert_to_c on each element
# of a wasmtime_component_val_t array): ~2 ms for 1 KiB, ~90 ms for 64 KiB. The C API has
# no bytes-shaped value, but the array is plain memory: each element is a
# wasmtime_component_val_t, a kind byte at offset 0 and the union at `_OF`, of which a
# U8 reads one byte. So the array is filled with two strided numpy writes over a view of
# the memory wasmtime allocated (and zeroed first, so that no byte of it is undefined).

_VAL = ffi.wasmtime_component_val_t
_VAL_SIZE = ctypes.sizeof(_VAL)
_OF = _VAL.of.offset
_U8 = ffi.WASMTIME_COMPONENT_U8.value
_LIST = ffi.WASMTIME_COMPONENT_LIST


def is_bytes(ty: wc.ValType) -> bool:
    return isinstance(ty, wc.ListType) and isinstance(ty.element, wc.U8)


def lower_bytes(data: bytes, out: ctypes._Pointer[ffi.wasmtime_component_val_t]) -> None:
    """Write ``data`` as a ``list<u8>`` value into ``out`` (which then owns the list and
    is freed with wasmtime_component_val_delete, like any other value)."""
    n = len(data)
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, n)
    if n:
        base = ctypes.cast(raw.data, ctypes.POINTER(ctypes.c_uint8))
        view = np.ctypeslib.as_array(base, shape=(n, _VAL_SIZE))
        view.fill(0)
        view[:, 0] = _U8
        view[:, _OF] = np.frombuffer(data, dtype=np.uint8)
    out.contents.kind = _LIST
    out.contents.of.list = raw
