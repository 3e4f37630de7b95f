"""Redis protocol plugin for cannonade: ``redis://`` requests in YAML test plans.

cannonade finds :func:`create` through the ``cannonade.protocols`` entry point named
``redis`` and calls it once per cannon; the handler it returns serves every VU of that
cannon from one connection pool per Redis URL. See README.md for the request options.
"""

from cannonade_redis.handler import RedisHandler, create

__all__ = ["RedisHandler", "create"]
