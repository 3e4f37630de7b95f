"""``HttpShared`` (one per cannon process) and ``HttpClient`` (one per virtual user).

The hot path is ``HttpClient._send`` on a keep-alive connection with a cached
request: pop an idle connection, write pre-encoded bytes, await one future, append
the timings to a recorder slot that the cached request already holds. No URL parsing,
header formatting, dict building or logging happens there.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Coroutine, Mapping
from time import perf_counter
from typing import Any

from cannonade.engine.http.cookies import CookieJar
from cannonade.engine.http.errors import CLOSED, RESET, TransportFailure
from cannonade.engine.http.pool import Opened, Pool, make_ssl_context
from cannonade.engine.http.request import Data, Prepared, Stem, encode_body, merge_headers
from cannonade.engine.http.response import Response, might_set_cookie
from cannonade.engine.http.urls import Params, default_name, encode_query, join, resolve, split
from cannonade.errors import ConfigError
from cannonade.model.recorder import Recorder, RequestSlot

REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Responses up to this size are remembered as cookie-free (see Prepared.no_cookie):
# 4,096 cached requests x 4 KiB bounds the memory at 16 MiB.
_NO_COOKIE_MAX = 4096
_STALE = (CLOSED, RESET)
# Headers not carried to another origin when following a redirect.
_ORIGIN_BOUND = frozenset({"authorization", "cookie", "proxy-authorization"})

Reply = Coroutine[Any, Any, Response]


class HttpShared:
    """Settings, the recorder, and caches shared by every VU's client in a process.

    ``cache_size`` bounds the cache of encoded requests (per method and URL as
    written); when full it is dropped whole, which is cheaper on the hot path than LRU
    bookkeeping and only costs re-encoding for scenarios with unbounded distinct URLs.
    """

    def __init__(
        self,
        recorder: Recorder,
        *,
        base_url: str | None = None,
        headers: Mapping[str, str] | None = None,
        connect_timeout: float = 10.0,
        timeout: float = 60.0,
        follow_redirects: bool = False,
        max_redirects: int = 10,
        verify_tls: bool = True,
        open_model: bool = False,
        user_agent: str = "cannonade/0.1",
        cache_size: int = 4096,
    ) -> None:
        if not connect_timeout > 0 or not timeout > 0:
            raise ConfigError("HTTP timeouts must be positive seconds")
        if max_redirects < 0:
            raise ConfigError("max_redirects must be >= 0")
        if base_url is not None:
            split(resolve("/", base_url))  # fail now, naming the base, not at the first request
        self.recorder = recorder
        self.base_url = base_url
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.follow_redirects = follow_redirects
        self.max_redirects = max_redirects
        self.verify_tls = verify_tls
        self.open_model = open_model
        defaults = {"User-Agent": user_agent, "Accept": "*/*", "Accept-Encoding": "gzip, deflate"}
        self.headers: dict[str, str] = merge_headers(defaults, headers)
        self._ssl: ssl.SSLContext | None = None
        self._cache_size = cache_size
        self._cached = 0
        self.prepared: dict[str, dict[str, Prepared]] = {}
        self._slots: dict[str, dict[str, RequestSlot]] = {}
        self._stems: dict[str, dict[str, Stem]] = {}

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = make_ssl_context(self.verify_tls)
        return self._ssl

    def slot(self, name: str, method: str) -> RequestSlot:
        by_name = self._slots.get(method)
        if by_name is None:
            by_name = self._slots[method] = {}
        slot = by_name.get(name)
        if slot is None:
            slot = by_name[name] = self.recorder.request_slot(name, method)
        return slot

    def prepared_for(self, method: str) -> dict[str, Prepared]:
        """The cache of one method's bodiless encoded requests, by URL as written.

        The dict object is stable (cleared in place when full), so a client may hold it.
        """
        by_url = self.prepared.get(method)
        if by_url is None:
            by_url = self.prepared[method] = {}
        return by_url

    def stem(self, method: str, url: str) -> Stem:
        """The parsed URL and fixed header lines of (method, URL as written), cached."""
        by_url = self._stems.get(method)
        if by_url is None:
            by_url = self._stems[method] = {}
        stem = by_url.get(url)
        if stem is None:
            if len(by_url) >= self._cache_size:
                by_url.clear()
            name = default_name(url)
            upper = method.upper()
            target = split(resolve(url, self.base_url))
            stem = Stem(upper, target, name, self.slot(name, upper), self.headers)
            by_url[url] = stem
        return stem

    def prepare_cached(self, method: str, url: str) -> Prepared:
        """Encode a request without per-call parts and keep it for the next time."""
        prep = self.stem(method, url).prepare()
        if self._cached >= self._cache_size:
            for by_method in self.prepared.values():
                by_method.clear()
            self._cached = 0
        self.prepared_for(method)[url] = prep
        self._cached += 1
        return prep

    def prepare(
        self,
        method: str,
        url: str,
        *,
        params: Params | None,
        headers: Mapping[str, str] | None,
        json: Any,
        data: Data | None,
    ) -> Prepared:
        """Encode a request with per-call parts (only its stem is cached)."""
        body, content_type = encode_body(json, data)
        return self.stem(method, url).prepare(
            query=encode_query(params) if params else None,
            headers=headers,
            body=body,
            content_type=content_type,
        )

    def name_for(self, absolute: str) -> str:
        """A redirect hop's default name: relative to base_url when it is below it."""
        base = self.base_url.rstrip("/") if self.base_url else None
        if base and absolute.startswith(base) and absolute[len(base) : len(base) + 1] in "/?#":
            return default_name(absolute[len(base) :] or "/")
        return default_name(absolute)


class HttpClient:
    """One VU's HTTP client: its own keep-alive pool and cookie jar.

    ``request`` and the verb methods are plain functions returning a coroutine
    (``await client.get(url)``), which spares a coroutine frame per request; a bad URL
    (relative without base_url) raises ``ConfigError`` at the call.

    Transport failures never raise: they come back as a ``Response`` with ``status``
    0 and ``error_kind`` set. Cancellation propagates and closes the connection in use.
    """

    __slots__ = (
        "_gets",
        "_open_model",
        "_plain_get",
        "_pool",
        "_shared",
        "_timeout",
        "cookies",
        "lag",
    )

    def __init__(self, shared: HttpShared) -> None:
        self._shared = shared
        self._open_model = shared.open_model
        self._timeout = shared.timeout
        self._gets = shared.prepared_for("GET")
        # get(url) with no options can skip request()'s argument juggling entirely.
        self._plain_get = not shared.follow_redirects
        self._pool = Pool(shared.ssl_context, shared.connect_timeout)
        self.cookies = CookieJar()
        # Seconds the current iteration started late (open models); the engine sets it.
        self.lag = 0.0

    @property
    def shared(self) -> HttpShared:
        return self._shared

    # -- public API --------------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        *,
        name: str | None = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Data | None = None,
        timeout: float | None = None,
        follow_redirects: bool | None = None,
    ) -> Reply:
        """Send one request; ``name`` (default: ``url`` without its query) groups stats."""
        shared = self._shared
        if params is None and headers is None and json is None and data is None:
            by_url = shared.prepared.get(method)
            prep = by_url.get(url) if by_url is not None else None
            if prep is None:
                prep = shared.prepare_cached(method, url)
        else:
            prep = shared.prepare(method, url, params=params, headers=headers, json=json, data=data)
        slot = prep.slot if name is None else shared.slot(name, prep.method)
        if timeout is None:
            timeout = shared.timeout
        elif not timeout > 0:
            raise ValueError("timeout must be positive seconds")
        if shared.follow_redirects if follow_redirects is None else follow_redirects:
            return self._follow(prep, slot, timeout, headers)
        return self._send(prep, slot, timeout)

    def get(
        self,
        url: str,
        *,
        name: str | None = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        follow_redirects: bool | None = None,
    ) -> Reply:
        if (
            self._plain_get
            and name is None
            and params is None
            and headers is None
            and timeout is None
            and follow_redirects is None
        ):
            prep = self._gets.get(url)
            if prep is not None:
                return self._send(prep, prep.slot, self._timeout)
        return self.request(
            "GET",
            url,
            name=name,
            params=params,
            headers=headers,
            timeout=timeout,
            follow_redirects=follow_redirects,
        )

    def head(
        self,
        url: str,
        *,
        name: str | None = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        follow_redirects: bool | None = None,
    ) -> Reply:
        return self.request(
            "HEAD",
            url,
            name=name,
            params=params,
            headers=headers,
            timeout=timeout,
            follow_redirects=follow_redirects,
        )

    def options(
        self,
        url: str,
        *,
        name: str | None = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        follow_redirects: bool | None = None,
    ) -> Reply:
        return self.request(
            "OPTIONS",
            url,
            name=name,
            params=params,
            headers=headers,
            timeout=timeout,
            follow_redirects=follow_redirects,
        )

    def delete(
        self,
        url: str,
        *,
        name: str | None = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Data | None = None,
        timeout: float | None = None,
        follow_redirects: bool | None = None,
    ) -> Reply:
        return self.request(
            "DELETE",
            url,
            name=name,
            params=params,
            headers=headers,
            json=json,
            data=data,
            timeout=timeout,
            follow_redirects=follow_redirects,
        )

    def post(
        self,
        url: str,
        *,
        name: str | None = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Data | None = None,
        timeout: float | None = None,
        follow_redirects: bool | None = None,
    ) -> Reply:
        return self.request(
            "POST",
            url,
            name=name,
            params=params,
            headers=headers,
            json=json,
            data=data,
            timeout=timeout,
            follow_redirects=follow_redirects,
        )

    def put(
        self,
        url: str,
        *,
        name: str | None = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Data | None = None,
        timeout: float | None = None,
        follow_redirects: bool | None = None,
    ) -> Reply:
        return self.request(
            "PUT",
            url,
            name=name,
            params=params,
            headers=headers,
            json=json,
            data=data,
            timeout=timeout,
            follow_redirects=follow_redirects,
        )

    def patch(
        self,
        url: str,
        *,
        name: str | None = None,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Data | None = None,
        timeout: float | None = None,
        follow_redirects: bool | None = None,
    ) -> Reply:
        return self.request(
            "PATCH",
            url,
            name=name,
            params=params,
            headers=headers,
            json=json,
            data=data,
            timeout=timeout,
            follow_redirects=follow_redirects,
        )

    async def close(self) -> None:
        """Close this VU's connections; requests still in flight fail as ``closed``."""
        self._pool.close()

    # -- the hot path ------------------------------------------------------------------
    async def _send(
        self, prep: Prepared, slot: RequestSlot, timeout: float, t0: float = 0.0
    ) -> Response:
        """One exchange, recorded. ``t0`` is set only for the one stale-connection retry."""
        retry = not t0
        if retry:
            t0 = perf_counter()
        deadline = t0 + timeout
        pool = self._pool
        conn = None
        idle = pool.idle.get(prep.pool_key)
        if idle and retry:
            while idle:
                conn = idle.pop()
                if not conn.closed:
                    break
                pool.open.discard(conn)
                conn = None
        opened = None
        if conn is None:
            try:
                opened = await pool.connect(prep.origin, deadline - perf_counter())
            except TransportFailure as failure:
                return self._failed(
                    prep, slot, t0, failure.kind, failure.message, opened=None, sent=0, received=0
                )
            conn = opened.conn
        wire = prep.wire
        jar = self.cookies
        if jar.store:
            cookie = jar.header(prep.cookie_key, prep.origin.host, prep.path, prep.origin.tls)
            if cookie is not None:
                wire = prep.with_cookie(cookie)
        waiter = conn.send(wire, deadline, prep.is_head)
        sent_at = perf_counter()
        try:
            await waiter
        except asyncio.CancelledError:
            conn.abort()
            pool.open.discard(conn)
            raise
        kind = conn.error_kind
        if kind is not None:
            pool.open.discard(conn)
            if (
                retry
                and opened is None
                and not conn.received
                and prep.idempotent
                and (kind in _STALE)
            ):
                # The server closed this keep-alive connection while it sat idle and we
                # wrote before noticing: not the target failing, so try once on a new one.
                return await self._send(prep, slot, timeout, t0)
            return self._failed(
                prep,
                slot,
                t0,
                kind,
                conn.error or kind,
                opened=opened,
                sent=len(wire),
                received=conn.received,
            )
        status = conn.status
        raw = conn.raw
        more = conn.more
        first_byte = conn.first_byte
        done = conn.done_at
        received = conn.received
        interim = conn.interim
        if conn.keep_alive and not conn.closed:
            if idle is None:
                idle = pool.idle.setdefault(prep.pool_key, [])
            idle.append(conn)
        else:
            pool.drop(conn)
        elapsed = done - t0
        slot.duration.append(elapsed + self.lag)
        if self._open_model:
            slot.uncorrected.append(elapsed)
        slot.waiting.append(first_byte - sent_at)
        slot.receiving.append(done - first_byte)
        slot.status.append(status)
        slot.sent += len(wire)
        slot.received += received
        if opened is not None:
            slot.connecting.append(opened.connecting)
            if opened.tls is not None:
                slot.tls.append(opened.tls)
        response = Response(prep.method, prep.url, status, elapsed, raw, more)
        if raw is not None and raw != prep.no_cookie:
            if interim or might_set_cookie(raw, more is None):
                jar.update(response.set_cookie_values(), prep.origin.host, prep.path)
            elif more is None and len(raw) <= _NO_COOKIE_MAX:
                prep.no_cookie = raw
        return response

    def _failed(
        self,
        prep: Prepared,
        slot: RequestSlot,
        t0: float,
        kind: str,
        message: str,
        *,
        opened: Opened | None,
        sent: int,
        received: int,
    ) -> Response:
        elapsed = perf_counter() - t0
        slot.duration.append(elapsed + self.lag)
        if self._open_model:
            slot.uncorrected.append(elapsed)
        slot.status.append(0)
        slot.error(kind)
        slot.sent += sent
        slot.received += received
        if opened is not None:
            slot.connecting.append(opened.connecting)
            if opened.tls is not None:
                slot.tls.append(opened.tls)
        return Response.failure(prep.method, prep.url, elapsed, kind, message)

    # -- redirects (off the hot path) ----------------------------------------------------
    async def _follow(
        self,
        prep: Prepared,
        slot: RequestSlot,
        timeout: float,
        headers: Mapping[str, str] | None,
    ) -> Response:
        """Send, then follow redirects; every hop is recorded as its own request.

        A hop is named after its URL (relative to base_url when below it); an explicit
        ``name`` applies to the first request only.
        """
        shared = self._shared
        response = await self._send(prep, slot, timeout)
        history: list[Response] = []
        while response.status in REDIRECTS and len(history) < shared.max_redirects:
            location = response.headers.get("location")
            if not location:
                break
            try:
                hop = self._redirected(prep, response.status, join(response.url, location), headers)
            except ConfigError:
                break  # a Location we cannot follow (ftp:, garbage): hand back the 3xx
            if hop.pool_key != prep.pool_key:
                headers = _drop_origin_bound(headers)
            prep = hop
            history.append(response)
            response = await self._send(prep, prep.slot, timeout)
        if history:
            response.history = history
        return response

    def _redirected(
        self, prep: Prepared, status: int, url: str, headers: Mapping[str, str] | None
    ) -> Prepared:
        method = prep.method
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method = "GET"
        keep_body = status in (307, 308)
        if not keep_body and headers:
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        shared = self._shared
        name = shared.name_for(url)
        return shared.stem(method, url).prepare(
            headers=headers,
            body=prep.body if keep_body else b"",
            content_type=prep.content_type if keep_body else None,
            name=name,
            slot=shared.slot(name, method),
        )


def _drop_origin_bound(headers: Mapping[str, str] | None) -> Mapping[str, str] | None:
    if not headers:
        return headers
    return {k: v for k, v in headers.items() if k.lower() not in _ORIGIN_BOUND}
