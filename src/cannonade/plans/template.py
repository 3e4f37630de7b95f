"""``${...}`` interpolation, compiled once per plan.

A text is split once into literal parts and references; rendering joins the parts
with the references' values for one VU and iteration. ``$${`` writes a literal ``${``.
References:

==================  ==================================================================
``env.NAME``        the process environment (read once, when the plan is compiled)
``vars.NAME``       the plan's ``variables``
``secrets.NAME``    the plan's ``secrets`` (from the environment, never printed)
``data.SRC.COL``    column COL of the row the iteration holds from data source SRC
``NAME``            a value extracted earlier in the iteration (else ``vars.NAME``)
``vu``              the VU's global id       ``iteration``   the VU's iteration, from 0
==================  ==================================================================

A JSON body leaf that is exactly one reference keeps the value's JSON type.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*$")
_REF = re.compile(r"\$\$\{|\$\{([^}]*)\}")


class TemplateError(ValueError):
    pass


@dataclass(slots=True)
class Scope:
    """What one VU's iteration renders with."""

    vu: int = 0
    iteration: int = 0
    extracted: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, Mapping[str, str]] = field(default_factory=dict)
    row_for: Callable[[str], Mapping[str, str]] | None = None  # fetches a source's row

    def row(self, source: str) -> Mapping[str, str]:
        row = self.rows.get(source)
        if row is None:
            if self.row_for is None:
                raise TemplateError(f"no row of data source {source!r}")
            row = self.rows[source] = self.row_for(source)
        return row


@dataclass(frozen=True, slots=True)
class Ref:
    """One ``${...}``: ``kind`` is env, vars, secrets, data, name, vu or iteration."""

    kind: str
    key: str = ""
    column: str = ""

    def value(self, scope: Scope, fixed: Mapping[str, Mapping[str, Any]]) -> Any:
        kind = self.kind
        if kind == "name":
            v = scope.extracted.get(self.key, _MISSING)
            if v is _MISSING:
                v = fixed["vars"].get(self.key, _MISSING)
                if v is _MISSING:
                    raise TemplateError(f"${{{self.key}}} has no value yet")
            return v
        if kind == "data":
            return scope.row(self.key)[self.column]
        if kind == "vu":
            return scope.vu
        if kind == "iteration":
            return scope.iteration
        return fixed[kind][self.key]

    def __str__(self) -> str:
        if self.kind in ("vu", "iteration"):
            return self.kind
        if self.kind == "name":
            return self.key
        if self.kind == "data":
            return f"data.{self.key}.{self.column}"
        return f"{self.kind}.{self.key}"


_MISSING = object()


def parse_ref(text: str) -> Ref:
    expr = text.strip()
    if expr in ("vu", "iteration"):
        return Ref(expr)
    head, _, rest = expr.partition(".")
    if head in ("env", "vars", "secrets"):
        if not rest:
            raise TemplateError(f"${{{expr}}}: {head}.NAME expected")
        return Ref(head, rest)
    if head == "data":
        source, _, column = rest.partition(".")
        if not source or not column:
            raise TemplateError(f"${{{expr}}}: data.SOURCE.COLUMN expected")
        return Ref("data", source, column)
    if NAME.match(expr):
        return Ref("name", expr)
    raise TemplateError(
        f"${{{expr}}} is not a reference: use env.X, vars.x, secrets.x, data.source.column,"
        " an extracted name, vu or iteration"
    )


class Template:
    """A compiled text. ``refs`` lists its references (for validation)."""

    __slots__ = ("_parts", "literal", "refs", "single", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        parts: list[str | Ref] = []
        pos = 0
        for m in _REF.finditer(source):
            if m.start() > pos:
                parts.append(source[pos : m.start()])
            if m.group(0) == "$${":
                parts.append("${")
            else:
                parts.append(parse_ref(m.group(1)))
            pos = m.end()
        if pos < len(source):
            parts.append(source[pos:])
        merged: list[str | Ref] = []
        for part in parts:  # adjacent literals joined: fewer parts to walk per render
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] += part
            else:
                merged.append(part)
        self._parts = tuple(merged)
        self.refs = tuple(p for p in merged if isinstance(p, Ref))
        self.literal: str | None = (
            ""
            if not merged
            else merged[0]
            if len(merged) == 1 and isinstance(merged[0], str)
            else None
        )
        self.single = merged[0] if len(merged) == 1 and isinstance(merged[0], Ref) else None

    def render(self, scope: Scope, fixed: Mapping[str, Mapping[str, Any]]) -> str:
        if self.literal is not None:
            return self.literal
        out = []
        for part in self._parts:
            out.append(part if isinstance(part, str) else _text(part.value(scope, fixed)))
        return "".join(out)

    def value(self, scope: Scope, fixed: Mapping[str, Mapping[str, Any]]) -> Any:
        """As :meth:`render`, but a text that is one reference keeps its value's type."""
        if self.single is not None:
            return self.single.value(scope, fixed)
        return self.render(scope, fixed)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class Structure:
    """A JSON-like value whose string leaves are templates (a JSON body, a form)."""

    __slots__ = ("_build", "refs")

    def __init__(self, value: Any) -> None:
        refs: list[Ref] = []
        self._build = _compile(value, refs)
        self.refs = tuple(refs)

    def render(self, scope: Scope, fixed: Mapping[str, Mapping[str, Any]]) -> Any:
        return self._build(scope, fixed)


_Builder = Callable[[Scope, Mapping[str, Mapping[str, Any]]], Any]


def _compile(value: Any, refs: list[Ref]) -> _Builder:
    if isinstance(value, str):
        t = Template(value)
        refs.extend(t.refs)
        if t.literal is not None:
            lit = t.literal
            return lambda scope, fixed: lit
        return t.value
    if isinstance(value, dict):
        items = [(k, _compile(v, refs)) for k, v in value.items()]
        return lambda scope, fixed: {k: b(scope, fixed) for k, b in items}
    if isinstance(value, list):
        builders = [_compile(v, refs) for v in value]
        return lambda scope, fixed: [b(scope, fixed) for b in builders]
    return lambda scope, fixed: value
