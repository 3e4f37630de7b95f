"""The embedded target's endpoints: path -> handler.

A handler gets the connection and the rest of the path; it returns the response bytes,
or None when it answers by itself (a delay, a stream, a WebSocket upgrade).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson

from cannonade.target.delays import DelayParamError, parse_distribution
from cannonade.target.responses import (
    _BODY_METHODS,
    _COOKIE_NAME_CHARS,
    _COOKIE_VALUE_CHARS,
    _GET,
    _OCTETS,
    _PATTERN,
    _POST,
    _ROOT,
    _STATUS,
    GZIP_INLINE_MAX,
    MAX_BYTES,
    MAX_REDIRECTS,
    MAX_STALL_S,
    STREAM_CHUNK,
    _chunked_pieces,
    _gzip_chunked_pieces,
    _head,
    _json_response,
    _pattern_bytes,
    _pattern_pieces,
    _response,
    _text_response,
)

if TYPE_CHECKING:
    from cannonade.target.server import _Connection

Handler = Callable[["_Connection", bytes], "bytes | None"]

_UNCOUNTED = frozenset({b"/__stats", b"/__stats/reset", b"/__delays"})


# -- handlers: (connection, path remainder) -> response, or None when sent by the handler --


def _bad(c: _Connection, message: str) -> bytes:
    return _text_response(400, message + "\n", c._conn)


def _int_arg(arg: bytes) -> int | None:
    if not arg or len(arg) > 12 or not arg.isdigit():
        return None
    return int(arg)


def _h_root(c: _Connection, arg: bytes) -> bytes:
    return _ROOT[c._conn]


def _h_delay(c: _Connection, arg: bytes) -> bytes | None:
    try:
        dist = parse_distribution(c.params())
    except DelayParamError as exc:
        return _bad(c, str(exc))
    state = c._state
    ms = dist.sample(state.rng)
    state.record_delay(dist.name, ms)
    response = _json_response(200, {"delay_ms": ms, "dist": dist.name}, c._conn)
    if ms <= 0:
        return response
    c._send_later(ms / 1000.0, response)
    return None


def _h_status(c: _Connection, arg: bytes) -> bytes:
    code = _int_arg(arg)
    if code is None or not 200 <= code <= 599:
        return _bad(c, f"status: {arg.decode('latin-1')!r} is not a code in 200-599")
    return _STATUS[code, c._conn]


def _byte_count(c: _Connection, arg: bytes) -> int | bytes:
    n = _int_arg(arg)
    if n is None or n > MAX_BYTES:
        return _bad(c, f"n: {arg.decode('latin-1')!r} is not a byte count in 0-{MAX_BYTES}")
    return n


def _h_bytes(c: _Connection, arg: bytes) -> bytes | None:
    n = _byte_count(c, arg)
    if isinstance(n, bytes):
        return n
    accept = c.header(b"accept-encoding")
    if c.params().get("gzip") == "1" and accept is not None and b"gzip" in accept.lower():
        extra = b"content-encoding: gzip\r\nvary: accept-encoding\r\n"
        if n <= GZIP_INLINE_MAX:
            body = zlib.compress(_pattern_bytes(n), 6, 31)  # wbits 31: gzip container
            return _response(200, body, _OCTETS, c._conn, extra)
        # Compressing 100 MiB up front would block the loop for a while; stream it instead.
        c._send_stream(_head(200, _OCTETS, c._conn, None, extra), _gzip_chunked_pieces(n))
        return None
    if n <= STREAM_CHUNK:
        return _response(200, _PATTERN[:n], _OCTETS, c._conn)
    c._send_stream(_head(200, _OCTETS, c._conn, n), _pattern_pieces(n))
    return None


def _h_chunked(c: _Connection, arg: bytes) -> bytes | None:
    n = _byte_count(c, arg)
    if isinstance(n, bytes):
        return n
    c._send_stream(_head(200, _OCTETS, c._conn, None), _chunked_pieces(n))
    return None


def _h_echo(c: _Connection, arg: bytes) -> bytes:
    content_type = c.header(b"content-type") or _OCTETS
    return _response(200, c.body(), content_type, c._conn)


def _h_headers(c: _Connection, arg: bytes) -> bytes:
    doc: dict[str, str] = {}
    for raw_name, raw_value in c._headers:
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name in doc:
            doc[name] += ("; " if name == "cookie" else ", ") + value
        else:
            doc[name] = value
    return _json_response(200, doc, c._conn)


def _request_cookies(c: _Connection) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for name, value in c._headers:
        if name.lower() != b"cookie":
            continue
        for pair in value.decode("latin-1").split(";"):
            key, sep, val = pair.strip().partition("=")
            if sep and key:
                cookies[key] = val
    return cookies


def _h_cookies(c: _Connection, arg: bytes) -> bytes:
    return _json_response(200, _request_cookies(c), c._conn)


def _h_cookies_set(c: _Connection, arg: bytes) -> bytes:
    pairs = parse_qsl(c._query.decode("latin-1"), keep_blank_values=True)
    if not pairs:
        return _bad(c, "query: give at least one name=value to set")
    lines = []
    for name, value in pairs:
        # Both end up verbatim in a header line, so anything outside the RFC 6265 alphabet
        # (notably CR/LF from %0d%0a) would let a query inject headers.
        if not name or not _COOKIE_NAME_CHARS.issuperset(name):
            return _bad(c, f"{name!r}: not a valid cookie name")
        if not _COOKIE_VALUE_CHARS.issuperset(value):
            return _bad(c, f"{name}: {value!r} is not a valid cookie value")
        lines.append(f"set-cookie: {name}={value}; Path=/\r\n".encode("ascii"))
    return _json_response(200, dict(pairs), c._conn, b"".join(lines))


def _redirect(c: _Connection, location: str) -> bytes:
    extra = b"location: " + location.encode("utf-8") + b"\r\n"
    return _text_response(302, f"redirecting to {location}\n", c._conn, extra)


def _h_redirect(c: _Connection, arg: bytes) -> bytes:
    n = _int_arg(arg)
    if n is None or not 1 <= n <= MAX_REDIRECTS:
        return _bad(c, f"n: {arg.decode('latin-1')!r} is not a count in 1-{MAX_REDIRECTS}")
    return _redirect(c, "/" if n == 1 else f"/redirect/{n - 1}")


def _h_redirect_to(c: _Connection, arg: bytes) -> bytes:
    url = c.params().get("url", "")
    if not url:
        return _bad(c, "url: is required")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return _bad(c, "url: control characters are not allowed")
    return _redirect(c, url)


def _h_json(c: _Connection, arg: bytes) -> bytes:
    doc = {
        "token": f"tok-{c._state.rng.getrandbits(64):016x}",
        "items": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}],
        "user": {"name": "ada"},
    }
    return _json_response(200, doc, c._conn)


def _credentials(c: _Connection) -> dict[str, Any] | None:
    body = c.body()
    if not body.strip():
        return {}
    content_type = (c.header(b"content-type") or b"").lower()
    if b"json" in content_type or (not content_type and body.lstrip()[:1] == b"{"):
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        return doc if isinstance(doc, dict) else None
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def _h_login(c: _Connection, arg: bytes) -> bytes:
    creds = _credentials(c)
    if creds is None:
        return _bad(c, "body: expected a JSON object or a form")
    if creds.get("password") == "wrong":
        return _json_response(401, {"error": "invalid credentials"}, c._conn)
    user = creds.get("username", creds.get("user", "ada"))
    token = c._state.issue_token(str(user))
    return _json_response(200, {"token": token, "user": str(user)}, c._conn)


def _h_private(c: _Connection, arg: bytes) -> bytes:
    auth = c.header(b"authorization")
    if auth is not None:
        scheme, _, token = auth.decode("latin-1").partition(" ")
        user = c._state.tokens.get(token.strip())
        if scheme.lower() == "bearer" and user is not None:
            return _json_response(200, {"private": True, "user": user}, c._conn)
    extra = b"www-authenticate: Bearer\r\n"
    return _json_response(401, {"error": "a valid bearer token is required"}, c._conn, extra)


def _h_stall(c: _Connection, arg: bytes) -> bytes:
    raw = c.params().get("s", "1")
    try:
        seconds = float(raw)
    except ValueError:
        return _bad(c, f"s: {raw!r} is not a number")
    if not 0 <= seconds <= MAX_STALL_S:
        return _bad(c, f"s: {raw!r} is outside [0, {MAX_STALL_S:g}]")
    # Deliberately blocks the loop thread: every connection stalls, which is the point
    # (a coordinated-omission scenario for the load generator to survive and report).
    time.sleep(seconds)
    state = c._state
    state.stalls += 1
    state.stall_ms += seconds * 1000.0
    return _text_response(200, f"stalled {seconds:g} s\n", c._conn)


def _h_ws(c: _Connection, arg: bytes) -> None:
    c.start_websocket()


def _h_stats(c: _Connection, arg: bytes) -> bytes:
    return _json_response(200, c._state.snapshot(), c._conn)


def _h_stats_reset(c: _Connection, arg: bytes) -> bytes:
    c._state.reset()
    return _json_response(200, {"reset": True}, c._conn)


def _h_delays(c: _Connection, arg: bytes) -> bytes:
    return _json_response(200, c._state.delays.tolist(), c._conn)


_Route = tuple[Handler, frozenset[bytes] | None]  # None: any method

_ROUTES: dict[bytes, _Route] = {
    b"/": (_h_root, _GET),
    b"/delay": (_h_delay, None),
    b"/echo": (_h_echo, _BODY_METHODS),
    b"/headers": (_h_headers, _GET),
    b"/cookies": (_h_cookies, _GET),
    b"/cookies/set": (_h_cookies_set, _GET),
    b"/redirect-to": (_h_redirect_to, _GET),
    b"/json": (_h_json, _GET),
    b"/login": (_h_login, _POST),
    b"/private": (_h_private, _GET),
    b"/stall": (_h_stall, _GET),
    b"/ws": (_h_ws, frozenset({b"GET"})),
    b"/__stats": (_h_stats, _GET),
    b"/__stats/reset": (_h_stats_reset, _POST),
    b"/__delays": (_h_delays, _GET),
}

_PREFIX_ROUTES: dict[bytes, _Route] = {
    b"/status": (_h_status, None),
    b"/bytes": (_h_bytes, _GET),
    b"/chunked": (_h_chunked, _GET),
    b"/redirect": (_h_redirect, _GET),
}
