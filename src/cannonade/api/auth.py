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

# Two headers, not two challenges in one: browsers (Chromium) read only the first
# challenge of a header, and must see Basic to prompt for (or resend) credentials.
CHALLENGES = (
    (b"www-authenticate", b'Basic realm="cannonade"'),
    (b"www-authenticate", b'Bearer realm="cannonade"'),
)


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
    """ASGI middleware: every request needs the token (when one is set).

    Without a token the API is reachable on loopback only, and loopback alone does not
    keep out a web page the HQ host's user opens: it can post cross-site, and with DNS
    rebinding (its own name resolving to 127.0.0.1) read the answers. So a token-less
    HQ answers only requests whose Host is a loopback name, and refuses any request
    whose Origin is not one.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.expected = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A WebSocket handshake is a request too: gated like the rest.
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        authorization = host = origin = ""
        for name, value in scope.get("headers", ()):
            # The first of a repeated header counts, as for any other reader of it.
            if name == b"authorization" and not authorization:
                authorization = value.decode("latin-1")
            elif name == b"host" and not host:
                host = value.decode("latin-1")
            elif name == b"origin" and not origin:
                origin = value.decode("latin-1")
        if self.expected is None:
            # No Host at all is no browser (they always send one): nothing to rebind.
            if (not host or _loopback_host(host)) and (not origin or _loopback_origin(origin)):
                await self.app(scope, receive, send)
                return
            await _refuse(
                scope,
                send,
                403,
                b'{"detail":"an HQ without a token answers only requests to a loopback'
                b' address, from no other site"}',
            )
            return
        if token_matches(self.expected, authorization):
            await self.app(scope, receive, send)
            return
        await _refuse(
            scope,
            send,
            401,
            b'{"detail":"a valid token is needed (Authorization: Bearer TOKEN)"}',
            list(CHALLENGES),
        )


def _loopback_host(host: str) -> bool:
    """Is a Host header's name (port dropped) a loopback address or ``localhost``?"""
    name = host.strip()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.rsplit(":", 1)[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _loopback_origin(origin: str) -> bool:
    scheme, sep, rest = origin.partition("://")
    return bool(sep) and scheme in ("http", "https") and _loopback_host(rest.split("/", 1)[0])


async def _refuse(
    scope: Scope,
    send: Send,
    status: int,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    if scope["type"] == "websocket":
        # Closed before it is accepted: the server answers the handshake with 403.
        await send({"type": "websocket.close", "code": 1008})
        return
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(extra or []),
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
