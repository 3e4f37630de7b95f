"""What the HQ's thread and the API's threads share: a small board behind one lock.

The HQ thread owns the sockets, the roster and the run; it posts snapshots here (the
agents, the run in progress and its live totals) and reads the requests the API left
(stop this run, a run was queued). The API never touches the HQ's objects, so no lock
is held on the hot path of either side.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class AgentView:
    uuid: str
    name: str
    status: str
    liveness: str
    cannons: int
    kind: str  # "cannonade" or "turret"
    hostname: str
    first_seen: float


@dataclass(frozen=True, slots=True)
class LiveView:
    run_id: str
    phase: str
    started: float | None
    totals: dict[str, Any] = field(default_factory=dict)


class Board:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._agents: tuple[AgentView, ...] = ()
        self._live: LiveView | None = None
        self._stops: set[str] = set()
        self.queued = threading.Event()  # set by the API: look at the queue now

    # -- posted by the HQ thread ---------------------------------------------------------
    def post_agents(self, agents: tuple[AgentView, ...]) -> None:
        with self._lock:
            self._agents = agents

    def post_live(self, live: LiveView | None) -> None:
        with self._lock:
            self._live = live
            if live is None:
                self._stops.clear()

    def take_stop(self, run_id: str) -> bool:
        with self._lock:
            if run_id in self._stops:
                self._stops.discard(run_id)
                return True
            return False

    # -- read and requested by the API ---------------------------------------------------
    @property
    def agents(self) -> tuple[AgentView, ...]:
        with self._lock:
            return self._agents

    @property
    def live(self) -> LiveView | None:
        with self._lock:
            return self._live

    def request_stop(self, run_id: str) -> bool:
        """Ask the HQ to stop the run in progress; False if that is not ``run_id``."""
        with self._lock:
            if self._live is None or self._live.run_id != run_id:
                return False
            self._stops.add(run_id)
            return True
