"""Reading values out of a response (extractors) and judging it (assertions, checks).

Each works on one response and returns plain values; the flow runner decides what a
miss means (a default, a failed request, a failed check)."""

from __future__ import annotations

import json
from typing import Any

from selectolax.lexbor import LexborHTMLParser

from cannonade.plans.model import Check, Extractor
from cannonade.plans.template import Scope


class Body:
    """A response's body decoded at most once per form (text, JSON, HTML tree)."""

    __slots__ = ("_json", "_text", "headers", "raw", "status")

    def __init__(self, status: int, raw: bytes, headers: Any) -> None:
        self.status = status
        self.raw = raw
        self.headers = headers
        self._text: str | None = None
        self._json: Any = _UNSET

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = self.raw.decode("utf-8", "replace")
        return self._text

    def json(self) -> Any:
        if self._json is _UNSET:
            try:
                self._json = json.loads(self.raw) if self.raw else None
            except ValueError:
                self._json = None
        return self._json


_UNSET = object()


def extract(e: Extractor, body: Body) -> Any:
    """The extracted value, or None when nothing matched."""
    kind = e.kind
    if kind == "jsonpath":
        doc = body.json()
        if doc is None or e.compiled is None:
            return None
        matches = e.compiled.find(doc)
        return matches[0].value if matches else None
    if kind == "regex":
        if e.compiled is None:
            return None
        m = e.compiled.search(body.text)
        return m.group(e.group) if m else None
    if kind == "header":
        value = body.headers.get(e.header) if body.headers is not None else None
        return value
    if kind == "boundary":
        text = body.text
        start = text.find(e.left)
        if start < 0:
            return None
        start += len(e.left)
        if not e.right:
            return text[start:]
        end = text.find(e.right, start)
        return text[start:end] if end >= 0 else None
    if kind == "css":
        node = LexborHTMLParser(body.text).css_first(e.expression)
        if node is None:
            return None
        if e.attribute:
            return node.attributes.get(e.attribute)
        return node.text(strip=True)
    return None


def judge(c: Check, body: Body, elapsed: float, scope: Scope, fixed: Any) -> tuple[bool, str]:
    """(passed, why not) for one assertion or check."""
    kind = c.kind
    if kind == "status":
        ok = body.status == c.equals
        return ok, "" if ok else f"status {body.status}, expected {c.equals}"
    if kind == "duration":
        ok = elapsed <= c.max_seconds
        return ok, "" if ok else f"took {elapsed * 1000:.1f} ms, max {c.max_seconds * 1000:g} ms"
    if kind == "jsonpath":
        doc = body.json()
        matches = c.compiled.find(doc) if doc is not None and c.compiled is not None else []
        if c.exists is not None:
            ok = bool(matches) == c.exists
            return ok, "" if ok else f"{c.expression} {'missing' if c.exists else 'present'}"
        want = c.value.value(scope, fixed) if c.value is not None else c.equals
        got = matches[0].value if matches else None
        ok = bool(matches) and (got == want or str(got) == str(want))
        return ok, "" if ok else f"{c.expression} is {got!r}, expected {want!r}"
    if kind == "body_contains":
        needle = c.value.render(scope, fixed) if c.value is not None else ""
        ok = needle in body.text
        return ok, "" if ok else f"body does not contain {needle!r}"
    if kind == "body_matches":
        ok = c.compiled is not None and c.compiled.search(body.text) is not None
        return ok, "" if ok else f"body does not match {c.compiled.pattern if c.compiled else ''!r}"
    return False, f"{kind} checks are not available here"
