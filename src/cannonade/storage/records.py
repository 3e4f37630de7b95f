"""What the store hands back: plain frozen records, no connection attached."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from cannonade.model.aggregate import Aggregator


class RunStatus(enum.StrEnum):
    QUEUED = "queued"  # created, not started
    WAITING = "waiting"  # waiting for agents
    RUNNING = "running"
    STOPPING = "stopping"  # graceful stop under way
    FINISHED = "finished"
    DEGRADED = "degraded"  # finished, but an agent or some data was lost
    INTERRUPTED = "interrupted"  # stopped early by the user, or the HQ died
    FAILED = "failed"  # could not run (setup failed, no agents...)
    ABORTED = "aborted"


# A run in one of these when an HQ starts was left behind by an HQ that died.
ACTIVE_STATUSES = frozenset({RunStatus.WAITING, RunStatus.RUNNING, RunStatus.STOPPING})
# No more data comes for a run in one of these.
FINAL_STATUSES = frozenset(RunStatus) - ACTIVE_STATUSES - {RunStatus.QUEUED}


def run_status(value: str) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        known = ", ".join(s.value for s in RunStatus)
        raise ValueError(f"unknown run status {value!r}; one of {known}") from None


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as listed. Times are epoch seconds; ``thresholds`` are the expressions."""

    id: str
    status: str
    scenario: str
    scenario_sha256: str
    options: Mapping[str, object]
    thresholds: tuple[str, ...]
    created: float
    updated: float
    started: float | None
    ended: float | None
    verdict: str | None


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """An agent, with its status changes while it served one run."""

    id: str
    name: str
    hostname: str
    cannons: int
    info: Mapping[str, object]
    first_seen: float
    last_seen: float
    timeline: tuple[tuple[float, str], ...]  # (at, status), oldest first


@dataclass(frozen=True, slots=True)
class EventRecord:
    at: float
    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class StoredRun(RunRow):
    """A run read back whole: its row, an aggregator rebuilt from the stored series,
    the agents that served it and its events."""

    aggregator: Aggregator
    agents: tuple[AgentRecord, ...]
    events: tuple[EventRecord, ...]


@dataclass(frozen=True, slots=True)
class Headline:
    """The numbers ``cannonade runs`` shows per run, read without rebuilding it."""

    requests: int
    p95: float | None  # seconds, over every request of the run


class SourceState(Protocol):
    """What the HQ knows of one cannon's sequence numbers (``SeqTracker`` is one)."""

    @property
    def highest(self) -> int: ...

    @property
    def duplicates(self) -> int: ...

    @property
    def finished(self) -> bool: ...

    def gaps(self) -> list[int]: ...
