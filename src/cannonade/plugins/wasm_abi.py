"""The loadr:plugin@0.1.0 contract as wasmtime sees it: which exports a plugin must have,
and their signatures.

The contract is ``wit/loadr.wit`` beside this file. A component's exports are checked
against it when it is loaded, so a plugin built against another contract is refused with
the signature it has and the one expected, instead of failing on its first call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wasmtime import Engine
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
