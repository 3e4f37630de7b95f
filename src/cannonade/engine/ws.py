"""WebSocket sessions for virtual users, on the ``websockets`` library, measured.

    async with vu.ws.connect("/ws", name="chat") as ws:
        await ws.send("hello")
        reply = await ws.recv()

Per session name this records: ``ws_sessions`` (+1 per successful open),
``ws_connecting`` (handshake time, a trend), ``ws_session_duration`` (open to close),
``ws_msgs_sent``/``ws_msgs_received`` and ``ws_data_sent``/``ws_data_received``
(payload bytes, also added to ``data_sent``/``data_received`` for the name).

A failed open is recorded as an error of kind ``ws_connect`` and raised as
:class:`WebSocketError`, so the iteration counts as failed. A connection that closes
under ``send``/``recv`` also raises :class:`WebSocketError` (the engine records it as
the iteration's error). websockets' own exceptions never reach the scenario.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from time import perf_counter
from types import TracebackType
from typing import Any

from websockets import version as websockets_version
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from cannonade.engine.http.client import HttpShared
from cannonade.engine.http.cookies import CookieJar
from cannonade.engine.http.errors import describe
from cannonade.engine.http.request import merge_headers
from cannonade.engine.http.urls import default_name, resolve, split
from cannonade.errors import CannonadeError
from cannonade.model.metrics import (
    DATA_RECEIVED,
    DATA_SENT,
    WS_CONNECTING,
    WS_DATA_RECEIVED,
    WS_DATA_SENT,
    WS_MSGS_RECEIVED,
    WS_MSGS_SENT,
    WS_SESSION_DURATION,
    WS_SESSIONS,
    Key,
)
from cannonade.model.recorder import Recorder, Samples

__all__ = ["WebSocketError", "WsClient", "WsSession"]

# Headers of the shared HTTP defaults that mean nothing to a WebSocket handshake.
_NOT_FOR_WS = frozenset({"accept", "accept-encoding", "user-agent"})
# websockets >= 15 reads proxy settings from the environment unless told not to; a load
# generator must hit the target it was given, as the HTTP client does.
_NO_PROXY: dict[str, Any] = (
    {"proxy": None} if int(websockets_version.version.split(".")[0]) >= 15 else {}
)


class WebSocketError(CannonadeError):
    """A WebSocket could not be opened, or closed under a send or receive."""


class _Meters:
    """The recorder handles of one session name, built once per name."""

    __slots__ = (
        "connecting",
        "data_received",
        "data_sent",
        "duration",
        "msgs_received",
        "msgs_sent",
        "sessions",
        "ws_data_received",
        "ws_data_sent",
    )

    def __init__(self, recorder: Recorder, name: str) -> None:
        self.sessions = Key(WS_SESSIONS, name)
        self.msgs_sent = Key(WS_MSGS_SENT, name)
        self.msgs_received = Key(WS_MSGS_RECEIVED, name)
        self.ws_data_sent = Key(WS_DATA_SENT, name)
        self.ws_data_received = Key(WS_DATA_RECEIVED, name)
        self.data_sent = Key(DATA_SENT, name)
        self.data_received = Key(DATA_RECEIVED, name)
        self.connecting: Samples = recorder.samples(Key(WS_CONNECTING, name))
        self.duration: Samples = recorder.samples(Key(WS_SESSION_DURATION, name))


def _payload_size(message: str | bytes) -> int:
    return len(message.encode()) if isinstance(message, str) else len(message)


class WsSession:
    """One open WebSocket. ``send`` and ``recv`` raise only :class:`WebSocketError`."""

    __slots__ = ("_closed", "_conn", "_meters", "_opened_at", "_recorder", "name", "url")

    def __init__(
        self, conn: ClientConnection, recorder: Recorder, meters: _Meters, name: str, url: str
    ) -> None:
        self._conn = conn
        self._recorder = recorder
        self._meters = meters
        self._opened_at = perf_counter()
        self._closed = False
        self.name = name
        self.url = url

    async def send(self, message: str | bytes) -> None:
        try:
            await self._conn.send(message)
        except ConnectionClosed as exc:
            raise WebSocketError(f"{self.name}: send on a closed WebSocket: {exc}") from exc
        size = _payload_size(message)
        m, add = self._meters, self._recorder.add
        add(m.msgs_sent)
        add(m.ws_data_sent, size)
        add(m.data_sent, size)

    async def recv(self) -> str | bytes:
        try:
            message = await self._conn.recv()
        except ConnectionClosed as exc:
            raise WebSocketError(f"{self.name}: the WebSocket closed: {exc}") from exc
        size = _payload_size(message)
        m, add = self._meters, self._recorder.add
        add(m.msgs_received)
        add(m.ws_data_received, size)
        add(m.data_received, size)
        return message

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close with a handshake (idempotent); records the session's duration once."""
        if self._closed:
            return
        self._closed = True
        self._meters.duration.values.append(perf_counter() - self._opened_at)
        await self._conn.close(code, reason)

    def abort(self) -> None:
        """Drop the connection without a closing handshake (cancellation)."""
        if not self._closed:
            self._closed = True
            self._meters.duration.values.append(perf_counter() - self._opened_at)
        self._conn.transport.abort()


class _Connect:
    """``async with client.connect(url) as session``; the session closes on exit."""

    __slots__ = ("_client", "_headers", "_name", "_session", "_url")

    def __init__(
        self, client: WsClient, url: str, name: str, headers: Mapping[str, str] | None
    ) -> None:
        self._client = client
        self._url = url
        self._name = name
        self._headers = headers
        self._session: WsSession | None = None

    async def __aenter__(self) -> WsSession:
        self._session = await self._client.open(self._url, name=self._name, headers=self._headers)
        return self._session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self._session
        if session is None:
            return
        if exc_type is not None and issubclass(exc_type, asyncio.CancelledError):
            session.abort()  # a graceful stop must not wait for a closing handshake
            return
        await session.close()


class WsClient:
    """One VU's WebSocket client; shares settings and the recorder with its HTTP client.

    ``cookies``, when given (the VU's HTTP cookie jar), supplies the handshake's
    ``Cookie`` header, so a session opened after an HTTP login carries its cookie.
    """

    __slots__ = ("_cookies", "_meters", "_shared")

    def __init__(self, shared: HttpShared, *, cookies: CookieJar | None = None) -> None:
        self._shared = shared
        self._cookies = cookies
        self._meters: dict[str, _Meters] = {}

    def connect(
        self, url: str, *, name: str | None = None, headers: Mapping[str, str] | None = None
    ) -> _Connect:
        """An async context manager yielding a :class:`WsSession`.

        ``url`` is ws(s)://, http(s):// (mapped to ws(s)://) or relative to base_url.
        ``name`` defaults to the URL as written, without its query.
        """
        return _Connect(self, url, default_name(url) if name is None else name, headers)

    async def open(
        self, url: str, *, name: str, headers: Mapping[str, str] | None = None
    ) -> WsSession:
        """Open a session (the caller must close it); prefer ``connect``."""
        shared = self._shared
        absolute = _ws_url(resolve(url, shared.base_url))
        target = split(absolute)  # ConfigError for a malformed URL: a scenario bug
        recorder = shared.recorder
        meters = self._meters.get(name)
        if meters is None:
            meters = self._meters[name] = _Meters(recorder, name)
        all_headers = merge_headers(
            {k: v for k, v in shared.headers.items() if k.lower() not in _NOT_FOR_WS}, headers
        )
        if self._cookies is not None and self._cookies.store:
            http_url = "http" + absolute[2:]  # ws://h/p -> http://h/p, wss:// -> https://
            http_target = split(http_url)
            cookie = self._cookies.header(
                http_target.origin.key + http_target.path,
                target.origin.host,
                target.path,
                target.origin.tls,
            )
            if cookie is not None:
                all_headers["Cookie"] = cookie.decode("latin-1")
        t0 = perf_counter()
        try:
            conn = await connect(
                absolute,
                additional_headers=all_headers,
                user_agent_header=_user_agent(shared.headers),
                open_timeout=shared.connect_timeout,
                ssl=shared.ssl_context() if target.origin.tls else None,
                **_NO_PROXY,
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            # Counted once: as the iteration error this exception becomes.
            raise WebSocketError(f"{name}: cannot open {absolute}: {describe(exc)}") from exc
        meters.connecting.values.append(perf_counter() - t0)
        recorder.add(meters.sessions)
        return WsSession(conn, recorder, meters, name, absolute)


def _ws_url(absolute: str) -> str:
    lower = absolute[:8].lower()
    if lower.startswith("http://"):
        return "ws://" + absolute[7:]
    if lower.startswith("https://"):
        return "wss://" + absolute[8:]
    return absolute


def _user_agent(headers: Mapping[str, str]) -> str | None:
    for key, value in headers.items():
        if key.lower() == "user-agent":
            return value
    return None
