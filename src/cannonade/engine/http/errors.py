"""Transport error kinds, their classification, and the HTTP exceptions.

A transport failure never escapes ``HttpClient.request``: it becomes a ``Response``
with ``status == 0`` and one of the kinds below, and is counted under that kind. Only
the scenario's own choices raise::

    CannonadeError
    └── HttpError
        ├── HttpStatusError     raise_for_status() on a failed response (4xx/5xx or status 0)
        └── ContentDecodeError  the body is not in the Content-Encoding the server claimed
"""

from __future__ import annotations

import errno
import socket
import ssl
from typing import TYPE_CHECKING, Final

from cannonade.errors import CannonadeError

if TYPE_CHECKING:
    from cannonade.engine.http.response import Response

REFUSED: Final = "refused"
CONNECT_TIMEOUT: Final = "connect_timeout"
TIMEOUT: Final = "timeout"
RESET: Final = "reset"
CLOSED: Final = "closed"  # the server closed before a complete response
BAD_RESPONSE: Final = "bad_response"
DNS: Final = "dns"
TLS: Final = "tls"
OTHER: Final = "other"

ERROR_KINDS: Final = (
    REFUSED,
    CONNECT_TIMEOUT,
    TIMEOUT,
    RESET,
    CLOSED,
    BAD_RESPONSE,
    DNS,
    TLS,
    OTHER,
)


class HttpError(CannonadeError):
    """Base of the errors the HTTP client raises on the scenario's request."""


class HttpStatusError(HttpError):
    """``raise_for_status()`` on a response that is not ``ok``; keeps the response."""

    def __init__(self, response: Response) -> None:
        self.response = response
        if response.error is not None:
            what = f"{response.error_kind}: {response.error}"
        else:
            what = f"HTTP {response.status}"
        super().__init__(f"{response.method} {response.url} failed: {what}")


class ContentDecodeError(HttpError):
    """The body does not decode with the server's ``Content-Encoding``."""


class TransportFailure(Exception):
    """Internal: a classified transport failure on its way to becoming a Response."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def classify(exc: BaseException) -> str:
    """The error kind of an exception raised while connecting or exchanging bytes.

    Order matters: ``SSLError`` and ``gaierror`` are ``OSError`` subclasses, and
    ``ConnectionRefusedError`` is a ``ConnectionError`` like a reset.
    """
    if isinstance(exc, ssl.SSLError):
        return TLS
    if isinstance(exc, socket.gaierror):
        return DNS
    if isinstance(exc, ConnectionRefusedError) or _all_refused(exc):
        return REFUSED
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return RESET
    if isinstance(exc, TimeoutError):
        return TIMEOUT
    return OTHER


def _all_refused(exc: BaseException) -> bool:
    # asyncio on 3.11 folds the failures of a multi-address connect (localhost -> ::1 and
    # 127.0.0.1) into one plain OSError whose message lists them all.
    if not isinstance(exc, OSError):
        return False
    if exc.errno == errno.ECONNREFUSED:
        return True
    text = str(exc)
    return text.startswith("Multiple exceptions") and text.count(
        f"[Errno {errno.ECONNREFUSED}]"
    ) == text.count("[Errno ")


def describe(exc: BaseException) -> str:
    """A one-line message for an exception, never empty."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
