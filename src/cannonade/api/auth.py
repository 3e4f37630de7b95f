"""One token locks the API. It is accepted as a bearer token and as the password of
HTTP basic auth (any user name), so clients that take only a URL
(``http://x:TOKEN@host:8081/``) can pass it. It is compared in constant time and never
logged; a request without it gets 401 and learns nothing else.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from cannonade.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CHALLENGE = b'Bearer realm="cannonade", Basic realm="cannonade"'


def presented(authorization: str) -> bytes | None:
    """The token an ``Authorization`` header carries, if any."""
    scheme, _, value = authorization.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and value:
        return value.encode()
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        _user, sep, password = decoded.partition(b":")
        return password if sep else None
    return None


def token_matches(expected: bytes, authorization: str) -> bool:
    got = presented(authorization)
    # compare_digest takes time independent of where the first difference is.
    return got is not None and hmac.compare_digest(got, expected)


def check_exposure(host: str, token: str | None) -> None:
    """Refuse to serve the API beyond loopback without a token."""
    if token:
        return
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        raise ConfigError(
            f"--api {host}: an API reachable from other machines needs a token "
            "(--token-file FILE or CANNONADE_TOKEN): uploading a test runs code on the agents"
        )


class TokenGate:
    """ASGI middleware: every request needs the token (when one is set)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.expected = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A WebSocket handshake is a request too: gated like the rest.
        if scope["type"] not in ("http", "websocket") or self.expected is None:
            await self.app(scope, receive, send)
            return
        authorization = ""
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        if token_matches(self.expected, authorization):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            # Closed before it is accepted: the server answers the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        body = b'{"detail":"a valid token is needed (Authorization: Bearer TOKEN)"}'
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", CHALLENGE),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413, whether it says
    its length up front or streams it chunked (counted as it arrives)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await _too_large(send, self.limit)
                    return
        # Read the body before the app sees any of it (it is at most ``limit`` bytes),
        # so an over-long chunked upload is refused before anything parses it.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await _too_large(send, self.limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(send: Send, limit: int) -> None:
    body = f'{{"detail":"the request body is over the {limit} byte limit"}}'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
