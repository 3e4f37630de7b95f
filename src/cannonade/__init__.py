"""cannonade: distributed load testing with honest numbers.

Scenario files use this public face only::

    from cannonade import scenario

    @scenario
    async def browse(vu):
        await vu.http.get("/")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cannonade.scenarios.api import scenario, setup, teardown, vu_setup, vu_teardown

if TYPE_CHECKING:
    from cannonade.engine.vu import VU

__version__ = "0.1.0"

__all__ = ["VU", "__version__", "scenario", "setup", "teardown", "vu_setup", "vu_teardown"]


def __getattr__(name: str) -> Any:
    # The VU type pulls in the HTTP stack; load it only when a scenario asks for it.
    if name == "VU":
        from cannonade.engine.vu import VU

        return VU
    raise AttributeError(f"module 'cannonade' has no attribute {name!r}")
