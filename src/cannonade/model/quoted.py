"""Reading ``{name:"/a,b",method:GET}`` selector bodies: the quote-aware scanning that
thresholds and ``compare --fail-if`` share. Callers raise their own errors."""

from __future__ import annotations


def read_braces(text: str, start: int) -> tuple[str, int] | None:
    """The body of the ``{...}`` opening at ``start`` and the index after it; None when
    it never closes. Quotes let a value hold ',', '}' or ':' (URLs do); a quote inside
    a quoted value is not supported, which k6 does not support either."""
    quote = ""
    for i in range(start + 1, len(text)):
        ch = text[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "}":
            return text[start + 1 : i], i + 1
    return None


def split_unquoted(body: str, sep: str = ",") -> list[str]:
    parts: list[str] = []
    quote = ""
    current: list[str] = []
    for ch in body:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == sep:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value
