"""A small per-VU cookie jar (RFC 6265 minus public suffixes and third-party rules).

The client asks the jar for a ``Cookie`` header only when the jar is non-empty, and
feeds it ``Set-Cookie`` values only when a response has them. The header for a
(origin, path) is cached until the jar changes or its next cookie expires, so a VU
holding a session cookie pays one dict lookup per request.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# The stdlib's lenient HTTP date parser (RFC 1123, RFC 850 and the dashed Netscape
# form); it is public but missing from typeshed.


@dataclass(slots=True)
class Cookie:
    name: str
    value: str
    domain: str  # lower-case, no leading dot
    path: str
    host_only: bool = True
    secure: bool = False
    expires: float | None = None  # epoch seconds; None: a session cookie

    def matches(self, host: str, path: str, secure: bool) -> bool:
        if self.secure and not secure:
            return False
        if self.host_only:
            if host != self.domain:
                return False
        elif host != self.domain and not host.endswith("." + self.domain):
            return False
        return path_matches(path, self.path)


def path_matches(request_path: str, cookie_path: str) -> bool:
    """RFC 6265 5.1.4: the cookie path is a prefix ending at a "/" boundary."""
    if request_path == cookie_path:
        return True
    if not request_path.startswith(cookie_path):
        return False
    return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"


def default_path(request_path: str) -> str:
    """RFC 6265 5.1.4: the directory of the request path."""
    if not request_path.startswith("/") or request_path.count("/") == 1:
        return "/"
    return request_path[: request_path.rfind("/")]


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_set_cookie(value: str, host: str, request_path: str, now: float) -> Cookie | None:
    """One ``Set-Cookie`` value as a Cookie, or None if it must be ignored.

    An already-expired cookie comes back with ``expires <= now``: it deletes its namesake.
    """
    pair, *attrs = value.split(";")
    name, eq, val = pair.partition("=")
    name, val = name.strip(), val.strip()
    if not eq or not name:
        return None
    cookie = Cookie(name, val, host, default_path(request_path))
    max_age: float | None = None
    for attr in attrs:
        key, _, arg = attr.partition("=")
        key, arg = key.strip().lower(), arg.strip()
        if key == "domain" and arg:
            domain = arg.lstrip(".").lower()
            if host != domain and (not host.endswith("." + domain) or _is_ip(host)):
                return None  # a cookie for a domain this host cannot speak for
            cookie.domain, cookie.host_only = domain, False
        elif key == "path":
            cookie.path = arg if arg.startswith("/") else default_path(request_path)
        elif key == "secure":
            cookie.secure = True
        elif key == "max-age":
            try:
                # Clamped: a server may send any number of digits (RFC 6265 5.2.2).
                max_age = float(max(-(10**12), min(int(arg), 10**12)))
            except ValueError:
                continue
        elif key == "expires" and cookie.expires is None:
            when = _http2time(arg)
            if when is not None:
                cookie.expires = float(when)
    if max_age is not None:  # Max-Age wins over Expires (RFC 6265 5.3 step 3)
        cookie.expires = now + max_age if max_age > 0 else -math.inf
    return cookie


class CookieJar:
    """Cookies of one VU, keyed by (domain, path, name)."""

    __slots__ = ("_cache", "_next_expiry", "_now", "store")

    def __init__(self, now: Callable[[], float] = time.time) -> None:
        # Read-only outside this class. Public so the client's hot path can test the
        # jar for emptiness with a C-level dict truth test instead of calling __bool__.
        self.store: dict[tuple[str, str, str], Cookie] = {}
        self._cache: dict[str, bytes | None] = {}
        self._next_expiry = math.inf
        self._now = now

    def __len__(self) -> int:
        return len(self.store)

    def __bool__(self) -> bool:
        return bool(self.store)

    def __iter__(self) -> Iterator[Cookie]:
        return iter(list(self.store.values()))

    def get(self, name: str, domain: str | None = None) -> str | None:
        """The value of a live cookie called ``name`` (on ``domain`` if given)."""
        self._purge(self._now())
        for c in self.store.values():
            if c.name == name and (domain is None or c.domain == domain.lower()):
                return c.value
        return None

    def set(
        self,
        name: str,
        value: str,
        *,
        domain: str,
        path: str = "/",
        secure: bool = False,
        expires: float | None = None,
    ) -> None:
        """Add a cookie by hand (host-only on ``domain``), e.g. a pre-issued session."""
        self._store(Cookie(name, value, domain.lower(), path, True, secure, expires))

    def clear(self) -> None:
        self.store.clear()
        self._changed()

    def update(self, values: list[str], host: str, request_path: str) -> None:
        """Apply the ``Set-Cookie`` values of a response from ``host``."""
        now = self._now()
        for value in values:
            cookie = parse_set_cookie(value, host, request_path, now)
            if cookie is None:
                continue
            if cookie.expires is not None and cookie.expires <= now:
                if self.store.pop((cookie.domain, cookie.path, cookie.name), None):
                    self._changed()
            else:
                self._store(cookie)

    def header(self, cache_key: str, host: str, path: str, secure: bool) -> bytes | None:
        """The ``Cookie`` header value for a request, or None when nothing matches."""
        if self._next_expiry != math.inf and self._now() >= self._next_expiry:
            self._purge(self._now())
        try:
            return self._cache[cache_key]
        except KeyError:
            pass
        matching = [c for c in self.store.values() if c.matches(host, path, secure)]
        # Longer paths first (RFC 6265 5.4 step 2); sort is stable for equal lengths.
        matching.sort(key=lambda c: len(c.path), reverse=True)
        value = "; ".join(f"{c.name}={c.value}" for c in matching).encode("latin-1") or None
        self._cache[cache_key] = value
        return value

    def _store(self, cookie: Cookie) -> None:
        self.store[(cookie.domain, cookie.path, cookie.name)] = cookie
        if cookie.expires is not None and cookie.expires < self._next_expiry:
            self._next_expiry = cookie.expires
        self._changed()

    def _changed(self) -> None:
        self._cache.clear()

    def _purge(self, now: float) -> None:
        if now < self._next_expiry:
            return
        for key in [k for k, c in self.store.items() if c.expires is not None and c.expires <= now]:
            del self.store[key]
        self._next_expiry = min(
            (c.expires for c in self.store.values() if c.expires is not None), default=math.inf
        )
        self._changed()


def _http2time(text: str) -> float | None:
    # http.cookiejar pulls in urllib.request: import it only when an Expires shows up.
    from http import cookiejar

    parse: Callable[[str], float | None] = cookiejar.http2time  # type: ignore[attr-defined]
    return parse(text)
