"""The handler: one per cannon, one connection pool per Redis URL, shared by every VU."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from cannonade_redis.reply import command_of, render

# Status of a request that got a reply (an error reply or a failure has status 0): Redis
# has no status codes, and loadr's plugins use 1 by convention.
OK = 1
FAILED = 0

# Config keys (the plan's ``plugins: [{name: redis, config: {...}}]``) and defaults.
DEFAULTS: dict[str, float | None] = {
    "max_connections": 100,  # per URL; more VUs than this wait for a free connection
    "pool_timeout": 20.0,  # seconds a VU waits for a free connection before failing
    "connect_timeout": 5.0,
    "socket_timeout": None,  # cannonade already ends a request at its timeout_ms
}


def create(config: dict[str, Any]) -> RedisHandler:
    """The entry point: cannonade calls it once per cannon with the plugin's config."""
    return RedisHandler(config)


class RedisHandler:
    """Runs ``plugin: {command: [...]}`` on the request URL's Redis.

    Replies are raw (no redis-py response callbacks): ``SET`` gives ``OK``, ``HGETALL``
    a flat list, as on the wire and as loadr's redis plugin reports them.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        unknown = sorted(set(config) - set(DEFAULTS))
        if unknown:
            raise ValueError(
                f"unknown redis plugin config {', '.join(unknown)}; "
                f"known: {', '.join(sorted(DEFAULTS))}"
            )
        settings = {**DEFAULTS, **config}
        max_connections = settings["max_connections"]
        if not isinstance(max_connections, int) or max_connections < 1:
            raise ValueError(f"max_connections must be a positive int, not {max_connections!r}")
        self._max_connections = max_connections
        self._pool_timeout = settings["pool_timeout"]
        self._connect_timeout = settings["connect_timeout"]
        self._socket_timeout = settings["socket_timeout"]
        self._clients: dict[str, Redis] = {}

    def client(self, url: str) -> Redis:
        """The client for a URL; its pool is made on first use and then reused. Making
        it connects nothing, so two VUs asking at once cannot make two pools."""
        client = self._clients.get(url)
        if client is None:
            # Our own pool, not from_url(): redis-py's default Retry would hide failed
            # attempts from the numbers, and a plain pool fails once it is full.
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=self._max_connections,
                timeout=self._pool_timeout,
                socket_connect_timeout=self._connect_timeout,
                socket_timeout=self._socket_timeout,
                # RESP2 whatever redis-py's default (8.x speaks RESP3), so replies keep one
                # shape across versions; a URL's ?protocol=3 still wins.
                protocol=2,
            )
            client = Redis(connection_pool=pool)
            client.response_callbacks.clear()  # raw replies, see the class docstring
            self._clients[url] = client
        return client

    async def execute(self, request: dict[str, Any]) -> dict[str, Any]:
        t0 = perf_counter()
        try:
            command = command_of(request.get("options"))
            # redis-py leaves execute_command untyped; its reply is any RESP value.
            run: Callable[..., Awaitable[object]] = self.client(request["url"]).execute_command
            reply = await run(*command)
            body, docs = render(reply)
        except Exception as e:  # the contract: failures are reported, never raised
            return {
                "status": FAILED,
                "status_text": type(e).__name__,
                "headers": [],
                "body": b"",
                "duration_ms": (perf_counter() - t0) * 1000,
                "error": str(e) or type(e).__name__,
                "extras": {},
            }
        return {
            "status": OK,
            "status_text": "OK",
            "headers": [],
            "body": body,
            "duration_ms": (perf_counter() - t0) * 1000,
            "error": None,
            "extras": {} if docs is None else {"docs": docs},
        }

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
            await client.connection_pool.aclose()  # we made it, so Redis does not close it
