"""Pytest fixtures that run the embedded target as a real subprocess.

Registered as the ``cannonade_target`` pytest11 entry point, so any test in an environment
where cannonade is installed can ask for:

* ``cannonade_target`` (session scope): one target process for the whole session;
* ``target`` (function scope): the same process, with its statistics reset first.

The target runs in its own process so that ``/stall`` (which blocks the target's loop on
purpose) and the load a test generates never share an event loop or a GIL with the test.
It imports only the standard library, pytest and cannonade's light process wrapper:
pytest loads it in every session.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cannonade.target.process import TargetProcess, start_target

__all__ = ["TargetProcess", "cannonade_target", "start_target", "target"]


@pytest.fixture(scope="session")
def cannonade_target() -> Iterator[TargetProcess]:
    """One target subprocess for the test session."""
    process = start_target()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def target(cannonade_target: TargetProcess) -> TargetProcess:
    """The session's target, with statistics and recorded delays reset for this test."""
    cannonade_target.reset()
    return cannonade_target
