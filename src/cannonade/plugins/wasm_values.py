"""Python values to and from wasmtime's C component values, for the contract's types only.

wasmtime-py converts through its ValType objects: every conversion asks the C API for
the type again (a list's element type per list, a tuple's element types per tuple) and
a ``list<u8>`` costs one ctypes call per byte. Per call of ``extract`` with a 1 KiB body
and two headers that is ~2.5 ms, ~0.15 ms of it for the headers and ~2.3 ms for the body;
a 64 KiB body takes ~150 ms. Here each parameter type of the contract has a lowering
chosen once, when the export is resolved (``lowering``), and results are read from the
C values' own kind tags, with no type at all (``lift``).

A value lowered into a ``wasmtime_component_val_t`` owns what it points to and is freed
with ``wasmtime_component_val_delete``, like the ones wasmtime-py makes.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

import numpy as np
from wasmtime import Store
from wasmtime import _ffi as ffi
from wasmtime import component as wc

from cannonade.errors import PluginError
from cannonade.plugins.wasm_abi import HEADERS, wit_type

Val = ffi.wasmtime_component_val_t
Lower = Callable[[Store, Any, Any], None]

_BOOL = ffi.WASMTIME_COMPONENT_BOOL.value
_U8 = ffi.WASMTIME_COMPONENT_U8.value
_S64 = ffi.WASMTIME_COMPONENT_S64.value
_F64 = ffi.WASMTIME_COMPONENT_F64.value
_STRING = ffi.WASMTIME_COMPONENT_STRING.value
_LIST = ffi.WASMTIME_COMPONENT_LIST.value
_RECORD = ffi.WASMTIME_COMPONENT_RECORD.value
_TUPLE = ffi.WASMTIME_COMPONENT_TUPLE.value
_OPTION = ffi.WASMTIME_COMPONENT_OPTION.value

_VAL_SIZE = ctypes.sizeof(Val)
_OF = Val.of.offset


def lowering(ty: wc.ValType) -> Lower:
    """How to lower a Python value of WIT type ``ty``: a fast path for the contract's
    types, wasmtime-py's own conversion for anything else."""
    fast = _LOWERINGS.get(wit_type(ty))
    if fast is not None:
        return lambda _store, value, out: fast(value, out)
    return ty.convert_to_c


def lower_s64(value: int, out: Any) -> None:
    out.contents.kind = _S64
    out.contents.of.s64 = value


def lower_f64(value: float, out: Any) -> None:
    out.contents.kind = _F64
    out.contents.of.f64 = value


def lower_string(value: str, out: Any) -> None:
    _set_string(out.contents, value.encode())


def lower_bytes(data: bytes, out: Any) -> None:
    """``data`` as a ``list<u8>``. The C API has no bytes-shaped value, but the array
    wasmtime allocates is plain memory: each element is a wasmtime_component_val_t, a kind
    byte at offset 0 and a union at ``_OF`` of which a U8 reads one byte. So the array is
    filled by two strided numpy writes over a view of it (zeroed first, so that no byte
    of it is left undefined)."""
    n = len(data)
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, n)
    if n:
        # frombuffer over a ctypes array at the address: cheaper than np.ctypeslib.as_array.
        address = ctypes.cast(raw.data, ctypes.c_void_p).value
        memory = (ctypes.c_uint8 * (n * _VAL_SIZE)).from_address(address or 0)
        view = np.frombuffer(memoryview(memory), dtype=np.uint8).reshape(n, _VAL_SIZE)
        view.fill(0)
        view[:, 0] = _U8
        view[:, _OF] = np.frombuffer(data, dtype=np.uint8)
    out.contents.kind = _LIST
    out.contents.of.list = raw


def lower_pairs(pairs: list[tuple[str, str]], out: Any) -> None:
    """A ``list<tuple<string, string>>``, such as headers."""
    # Encoded first: a value that is not a pair of strings fails here, before anything
    # is allocated that would need freeing.
    try:
        encoded = [(name.encode(), value.encode()) for name, value in pairs]
    except (AttributeError, TypeError, ValueError):
        raise TypeError("expected a list of (str, str) pairs") from None
    raw = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(raw, len(encoded))
    for i, (name, value) in enumerate(encoded):
        pair = ffi.wasmtime_component_valtuple_t()
        ffi.wasmtime_component_valtuple_new_uninit(pair, 2)
        _set_string(pair.data[0], name)
        _set_string(pair.data[1], value)
        element = raw.data[i]
        element.kind = _TUPLE
        element.of.tuple = pair
    out.contents.kind = _LIST
    out.contents.of.list = raw


def _set_string(val: Any, data: bytes) -> None:
    val.kind = _STRING
    vec = val.of.string  # a view into val, not a copy
    if data:
        ffi.wasm_byte_vec_new_uninitialized(ctypes.byref(vec), len(data))
        ctypes.memmove(vec.data, data, len(data))
    else:
        ffi.wasm_byte_vec_new_empty(ctypes.byref(vec))


_LOWERINGS: dict[str, Callable[[Any, Any], None]] = {
    "s64": lower_s64,
    "f64": lower_f64,
    "string": lower_string,
    "list<u8>": lower_bytes,
    HEADERS: lower_pairs,
}


def lift(val: Any) -> Any:
    """A result as Python: records as dicts, options as the value or None. Reads only:
    the caller frees ``val`` with wasmtime_component_val_delete, which frees it all."""
    kind = val.kind
    if kind == _STRING:
        vec = val.of.string
        # wasmtime checked the guest's UTF-8 when it lifted the string.
        return ctypes.string_at(vec.data, vec.size).decode() if vec.size else ""
    if kind == _OPTION:
        payload = val.of.option
        return lift(payload.contents) if payload else None
    if kind == _RECORD:
        record = val.of.record
        fields = (record.data[i] for i in range(record.size))
        return {ctypes.string_at(f.name.data, f.name.size).decode(): lift(f.val) for f in fields}
    if kind == _BOOL:
        return bool(val.of.boolean)
    if kind == _S64:
        return int(val.of.s64)
    if kind == _F64:
        return float(val.of.f64)
    if kind in (_LIST, _TUPLE):
        items = val.of.list if kind == _LIST else val.of.tuple
        values = [lift(items.data[i]) for i in range(items.size)]
        return values if kind == _LIST else tuple(values)
    raise PluginError(f"a result of a kind the contract does not use ({kind})")
