"""URL resolution and splitting. Runs once per distinct URL, never per cached request."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import quote, quote_plus, urljoin, urlsplit

from cannonade.errors import ConfigError

DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# Characters left as they are when a non-ASCII request target is percent-encoded:
# everything RFC 3986 allows in a path and query, and "%" so existing escapes survive.
_TARGET_SAFE = "/?#[]@!$&'()*+,;=:%~-._"

Params = Mapping[str, str | int | float] | Sequence[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a connection goes. ``key`` is a str so pool lookups hash a cached hash."""

    scheme: str
    host: str
    port: int
    key: str
    host_header: str

    @property
    def tls(self) -> bool:
        return self.scheme in ("https", "wss")


class Target(NamedTuple):
    """An absolute URL split into what a request needs.

    A NamedTuple rather than a frozen dataclass: one is built per request that has
    ``params``, and a frozen dataclass's ``__init__`` costs several times more.
    """

    url: str  # absolute, as sent (after params were merged)
    origin: Origin
    path: str  # path only, for cookie matching
    target: str  # request-target: path and query, percent-encoded, no fragment

    def with_query(self, query: str) -> Target:
        """This target with ``query`` (already encoded) appended to any query it has."""
        if not query:
            return self
        url, hash_, fragment = self.url.partition("#")
        return Target(
            f"{url}{_query_sep(url)}{query}{hash_}{fragment}",
            self.origin,
            self.path,
            f"{self.target}{_query_sep(self.target)}{query}",
        )


def _query_sep(url: str) -> str:
    if "?" not in url:
        return "?"
    return "" if url.endswith(("?", "&")) else "&"


def is_absolute(url: str) -> bool:
    head = url[:8].lower()
    return head.startswith(("http://", "https://", "ws://", "wss://"))


def resolve(url: str, base_url: str | None) -> str:
    """An absolute URL for ``url``.

    A relative URL is appended to ``base_url`` the way Locust appends to ``--host``, so a
    base with a path prefix (``http://h/api``) keeps it: ``/users`` → ``http://h/api/users``.
    """
    if is_absolute(url):
        return url
    if base_url is None:
        raise ConfigError(f"relative URL {url!r} needs a base_url (the target host)")
    base = base_url.rstrip("/")
    if url.startswith(("/", "?", "#")):
        return base + url
    return f"{base}/{url}"


def default_name(url: str) -> str:
    """The request name used when none is given: the URL as written, without query."""
    cut = len(url)
    for sep in ("?", "#"):
        i = url.find(sep)
        if 0 <= i < cut:
            cut = i
    return url[:cut]


def encode_query(params: Params) -> str:
    """``params`` as an application/x-www-form-urlencoded query string (as urlencode)."""
    items = params.items() if isinstance(params, Mapping) else params
    return "&".join(f"{_plus(str(k))}={_plus(str(v))}" for k, v in items)


def _plus(text: str) -> str:
    # Most keys and values (ids, page numbers, words) need no quoting; quote_plus costs
    # about a microsecond even then.
    return text if text.isascii() and text.isalnum() else quote_plus(text)


def split(url: str) -> Target:
    """Split an absolute http(s)/ws(s) URL; a malformed one is a ConfigError."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"invalid URL {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ConfigError(f"unsupported URL scheme in {url!r} (http, https, ws, wss)")
    host = parts.hostname
    if not host:
        raise ConfigError(f"URL {url!r} has no host")
    if port is None:
        port = DEFAULT_PORTS[scheme]
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ConfigError(f"URL {url!r} has an invalid host name: {exc}") from None
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    origin = Origin(scheme, host, port, f"{scheme}://{shown}:{port}", host_header)
    path = parts.path or "/"
    target = path + ("?" + parts.query if parts.query else "")
    if not target.isascii() or " " in target:
        target = quote(target, safe=_TARGET_SAFE)
    return Target(url, origin, path, target)


def join(base: str, location: str) -> str:
    """Resolve a redirect's ``Location`` against the URL that answered it."""
    return urljoin(base, location)
