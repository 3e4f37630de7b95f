"""Which agents the HQ knows, and which of them are alive.

An agent is alive while its status messages keep coming; after ``MISSING_AFTER``
silent seconds it is missing. A missing agent that speaks again is alive again (its
buffered deltas follow), and an HQ that restarts learns every agent back from the
next heartbeat — nothing here needs the agent to re-register explicitly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cannonade.clock import Clock
from cannonade.protocol.control import AgentReport, Status

MISSING_AFTER = 3.0


class Liveness(enum.StrEnum):
    ALIVE = "alive"
    MISSING = "missing"


@dataclass(slots=True)
class Member:
    uuid: str
    name: str
    cannons: int
    status: str
    report: AgentReport | None
    first_seen: float  # wall clock
    last_seen: float  # monotonic
    liveness: Liveness = Liveness.ALIVE
    script: str = ""
    rampup: str = ""

    @property
    def is_cannonade(self) -> bool:
        """A cannonade agent (it reports run state), not a plain OCT turret."""
        return self.report is not None


@dataclass(frozen=True, slots=True)
class Change:
    uuid: str
    name: str
    what: str  # "joined", "status", "missing", "back"
    status: str
    at: float  # wall clock


@dataclass(slots=True)
class Roster:
    clock: Clock
    missing_after: float = MISSING_AFTER
    members: dict[str, Member] = field(default_factory=dict)

    def observe(self, status: Status) -> list[Change]:
        now, wall = self.clock.monotonic(), self.clock.wall()
        m = self.members.get(status.uuid)
        value = status.status
        if m is None:
            m = Member(
                status.uuid,
                status.turret or status.uuid[:8],
                status.cannon_count,
                value,
                status.cannonade,
                wall,
                now,
                script=status.script,
                rampup=str(status.rampup),
            )
            self.members[status.uuid] = m
            return [Change(m.uuid, m.name, "joined", value, wall)]
        changes = []
        if m.liveness is Liveness.MISSING:
            m.liveness = Liveness.ALIVE
            changes.append(Change(m.uuid, m.name, "back", value, wall))
        if value != m.status:
            changes.append(Change(m.uuid, m.name, "status", value, wall))
        m.status = value
        m.report = status.cannonade
        m.last_seen = now
        m.name = status.turret or m.name
        m.cannons = status.cannon_count
        m.script = status.script
        m.rampup = str(status.rampup)
        return changes

    def touch(self, uuid: str) -> None:
        """Any frame from an agent proves it alive, not only its status."""
        m = self.members.get(uuid)
        if m is not None and m.liveness is Liveness.ALIVE:
            m.last_seen = self.clock.monotonic()

    def sweep(self) -> list[Change]:
        """Mark agents silent for too long as missing."""
        now, wall = self.clock.monotonic(), self.clock.wall()
        out = []
        for m in self.members.values():
            if m.liveness is Liveness.ALIVE and now - m.last_seen > self.missing_after:
                m.liveness = Liveness.MISSING
                out.append(Change(m.uuid, m.name, "missing", m.status, wall))
        return out

    def alive(self) -> list[Member]:
        return [m for m in self.members.values() if m.liveness is Liveness.ALIVE]

    def ready(self) -> list[Member]:
        """Alive agents that can take a run now, oldest first (a stable assignment)."""
        return sorted(
            (m for m in self.alive() if m.status.lower() == "ready" and m.cannons > 0),
            key=lambda m: (m.first_seen, m.uuid),
        )
