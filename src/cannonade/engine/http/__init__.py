"""cannonade's HTTP/1.1 client: asyncio Protocol + httptools, one client per VU.

``HttpShared`` holds what a cannon process shares (settings, recorder, encoded-request
cache); ``HttpClient`` is a VU's client with its own keep-alive pool and cookie jar.
See docs/http-client.md for the design and its measured cost.
"""

from cannonade.engine.http.client import HttpClient, HttpShared
from cannonade.engine.http.cookies import Cookie, CookieJar
from cannonade.engine.http.errors import (
    ERROR_KINDS,
    ContentDecodeError,
    HttpError,
    HttpStatusError,
)
from cannonade.engine.http.response import Headers, Response

__all__ = [
    "ERROR_KINDS",
    "ContentDecodeError",
    "Cookie",
    "CookieJar",
    "Headers",
    "HttpClient",
    "HttpError",
    "HttpShared",
    "HttpStatusError",
    "Response",
]
