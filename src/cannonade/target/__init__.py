"""The embedded HTTP/1.1 target that cannonade's demo, tests and benchmarks aim at.

See ``docs/target.md`` for its endpoints and how it counts.

The exports are imported lazily: pytest loads ``cannonade.target.pytest_plugin`` (and so
this package) in every test session, and most sessions never need the server's imports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cannonade.target.server import TargetServer, TargetState, main, serve

__all__ = ["TargetServer", "TargetState", "main", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from cannonade.target import server  # deferred: the point of this function

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
