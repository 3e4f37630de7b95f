"""One run, as the HQ drives it: a state machine over the agents' reported states.

The controller holds, per agent, the *desired* command (with the run's sequence
number) and re-publishes it (after 0.2 s, backing off to once a second) until the
agent's status acknowledges that sequence number — so a command lost to PUB/SUB's
slow-joiner problem, or to an HQ restart, is simply sent again. It does no I/O:
:meth:`tick` returns what to publish.

Phases and their legal moves::

    waiting -> preparing -> [setup] -> running -> [teardown] -> releasing -> finished
    waiting -> finished                      (no agents in time, or stopped)
    preparing | setup -> releasing           (a failure, or stopped before start)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import msgspec

from cannonade.clock import Clock
from cannonade.hq.membership import Liveness, Member, Roster
from cannonade.protocol.control import (
    AgentState,
    AgentTotals,
    Command,
    PartitionWire,
    Prepare,
    RunRef,
    Start,
    Teardown,
    bundle_wire,
)
from cannonade.scenarios.bundle import Bundle

REPUBLISH = 1.0  # the longest wait before an unacknowledged command is sent again
FIRST_RETRY = 0.2  # a subscriber that has just connected often misses its first message
PREPARE_TIMEOUT = 60.0
RELEASE_TIMEOUT = 20.0


class Phase(enum.StrEnum):
    WAITING = "waiting"
    PREPARING = "preparing"
    SETUP = "setup"
    RUNNING = "running"
    TEARDOWN = "teardown"
    RELEASING = "releasing"
    FINISHED = "finished"


@dataclass(frozen=True, slots=True)
class RunSpec:
    run_id: str
    bundle: Bundle | None  # None: OCT turrets that bring their own scripts
    options: dict[str, Any]  # EngineOptions on the wire
    min_agents: int = 1
    wait_agents: float = 120.0  # how long to wait for min_agents
    bound: float | None = None  # the longest the model may run, seconds
    graceful_stop: float = 30.0
    start_delay: float = 0.5  # from the start command to the common start time


@dataclass(slots=True)
class Slot:
    """An agent's place in the run."""

    uuid: str
    name: str
    cannons: int
    first: int  # its first global partition index
    command: Command | None = None
    msg: msgspec.Struct | None = None
    seq: int = -1
    last_sent: float = -1e9
    sends: int = 0  # of the current command: retries back off 0.2, 0.4, 0.8, 1 s
    lost_at: float | None = None  # wall clock, the last time it went missing
    losses: int = 0
    totals: AgentTotals | None = None
    reports_totals: bool = True  # a cannonade agent does; an OCT turret does not


@dataclass(frozen=True, slots=True)
class Outgoing:
    channel: str  # "" broadcasts
    command: Command
    msg: msgspec.Struct | str | None


@dataclass(slots=True)
class Controller:
    """What every kind of run shares: its phase and slots, the user's stop and kill,
    and the times the HQ reports. Subclasses drive the phases in ``tick``."""

    spec: RunSpec
    roster: Roster
    clock: Clock
    phase: Phase = Phase.WAITING
    slots: dict[str, Slot] = field(default_factory=dict)
    hooks: tuple[str, ...] = ()
    setup_data: Any = None
    setup_failed: bool = False
    error: str = ""
    stopped: bool = False
    killed: bool = False
    start_at: float | None = None
    ended_at: float | None = None  # the run finished (agents released)
    load_ended_at: float | None = None  # the load stopped: every agent done, or stopped
    _created: float = 0.0
    _phase_since: float = 0.0
    _stop_requested: Command | None = None

    def __post_init__(self) -> None:
        self._created = self._phase_since = self.clock.monotonic()

    # -- requests from the user ------------------------------------------------------
    def stop(self) -> None:
        self._stop_requested = self._stop_requested or Command.STOP
        self.stopped = True

    def kill(self) -> None:
        self._stop_requested = Command.KILL
        self.stopped = self.killed = True

    @property
    def finished(self) -> bool:
        return self.phase is Phase.FINISHED

    @property
    def degraded(self) -> bool:
        return any(s.losses for s in self.slots.values())

    def live(self) -> list[Slot]:
        return [s for s in self.slots.values() if s.lost_at is None]

    def tick(self) -> list[Outgoing]:
        raise NotImplementedError

    def _move(self, phase: Phase) -> None:
        if self.phase is Phase.RUNNING and phase is not Phase.RUNNING:
            self.load_ended_at = self.clock.wall()
        self.phase = phase
        self._phase_since = self.clock.monotonic()
        if phase is Phase.FINISHED:
            self.ended_at = self.clock.wall()


@dataclass(slots=True)
class RunController(Controller):
    """A run for cannonade agents."""

    _seq: int = 0

    # -- the machine -----------------------------------------------------------------
    def tick(self) -> list[Outgoing]:
        now = self.clock.monotonic()
        for slot in self.slots.values():
            m = self.roster.members.get(slot.uuid)
            if m is not None and m.liveness is Liveness.MISSING and slot.lost_at is None:
                slot.lost_at = self.clock.wall()
                slot.losses += 1
            elif m is not None and m.liveness is Liveness.ALIVE and slot.lost_at is not None:
                slot.lost_at = None  # back: its buffered deltas follow
        step = {
            Phase.WAITING: self._waiting,
            Phase.PREPARING: self._preparing,
            Phase.SETUP: self._setup,
            Phase.RUNNING: self._running,
            Phase.TEARDOWN: self._teardown,
            Phase.RELEASING: self._releasing,
        }.get(self.phase)
        if step is not None:
            step(now)
        return self._due(now)

    def _command(self, slot: Slot, command: Command, make: type[RunRef], **fields: Any) -> None:
        self._seq += 1
        slot.command, slot.seq = command, self._seq
        slot.msg = make(run_id=self.spec.run_id, seq=self._seq, **fields)
        slot.last_sent = -1e9  # send now
        slot.sends = 0

    def _due(self, now: float) -> list[Outgoing]:
        out = []
        for slot in self.live():
            if slot.command is None or slot.msg is None or self._acked(slot):
                continue
            if now - slot.last_sent >= min(REPUBLISH, FIRST_RETRY * 2 ** max(0, slot.sends - 1)):
                slot.last_sent = now
                slot.sends += 1
                out.append(Outgoing(slot.uuid, slot.command, slot.msg))
        return out

    def _member(self, slot: Slot) -> Member | None:
        return self.roster.members.get(slot.uuid)

    def _state(self, slot: Slot) -> str:
        m = self._member(slot)
        if m is None or m.report is None or m.report.run_id != self.spec.run_id:
            return ""
        return m.status

    def _acked(self, slot: Slot) -> bool:
        m = self._member(slot)
        return (
            m is not None
            and m.report is not None
            and m.report.run_id == self.spec.run_id
            and m.report.ack >= slot.seq
        )

    def _all_live(self, *states: AgentState) -> bool:
        live = self.live()
        return bool(live) and all(self._state(s) in states for s in live)

    def _first(self) -> Slot | None:
        """The agent whose first cannon is global partition 0: it runs the hooks."""
        for s in self.slots.values():
            if s.first == 0:
                return s
        return None

    def _fail(self, why: str) -> None:
        self.error = self.error or why
        self._release()

    def _release(self) -> None:
        for slot in self.slots.values():
            self._command(slot, Command.RELEASE, RunRef)
        self._move(Phase.RELEASING)

    # -- each phase ------------------------------------------------------------------
    def _waiting(self, now: float) -> None:
        if self._stop_requested is not None:
            self._move(Phase.FINISHED)
            return
        ready = [m for m in self.roster.ready() if m.is_cannonade]
        if len(ready) < self.spec.min_agents:
            if now - self._created > self.spec.wait_agents:
                self.error = (
                    f"only {len(ready)} of {self.spec.min_agents} agents were ready "
                    f"after {self.spec.wait_agents:g}s"
                )
                self._move(Phase.FINISHED)
            return
        total = sum(m.cannons for m in ready)
        first = 0
        bundle = self.spec.bundle
        if bundle is None:
            self.error = "a run for cannonade agents needs a scenario"
            self._move(Phase.FINISHED)
            return
        wire = bundle_wire(bundle.filename, bundle.sha256, bundle.data)
        for m in ready:
            slot = Slot(m.uuid, m.name, m.cannons, first)
            self.slots[m.uuid] = slot
            part = PartitionWire(first, m.cannons, total)
            self._command(
                slot,
                Command.PREPARE,
                Prepare,
                bundle=wire,
                options=self.spec.options,
                partition=part,
            )
            first += m.cannons
        self._move(Phase.PREPARING)

    def _preparing(self, now: float) -> None:
        for slot in self.live():
            if self._state(slot) == AgentState.FAILED:
                m = self._member(slot)
                why = m.report.error if m is not None and m.report is not None else ""
                self._fail(f"agent {slot.name}: {why or 'failed to prepare'}")
                return
        if self._stop_requested is not None:
            self._release()
            return
        lead = self._first()
        if lead is None or lead.lost_at is not None:
            self._fail("the agent holding partition 0 was lost before the start")
            return
        if self._all_live(AgentState.PREPARED):
            m = self._member(lead)
            self.hooks = tuple(m.report.hooks) if m is not None and m.report is not None else ()
            if "setup" in self.hooks:
                self._command(lead, Command.SETUP, RunRef)
                self._move(Phase.SETUP)
            else:
                self._start()
        elif now - self._phase_since > PREPARE_TIMEOUT:
            self._fail(f"agents did not load the scenario within {PREPARE_TIMEOUT:g}s")

    def _setup(self, now: float) -> None:
        lead = self._first()
        if lead is None or lead.lost_at is not None:
            self._fail("the agent running @setup was lost")
            return
        if self._stop_requested is not None:
            self._release()
            return
        m = self._member(lead)
        if self._state(lead) == AgentState.SETUP_DONE and m is not None and m.report is not None:
            result = m.report.setup
            if result is None or not result.ok:
                self.setup_failed = True
                self._fail((result.error if result else "") or "@setup failed")
                return
            self.setup_data = result.data
            self._start()

    def _start(self) -> None:
        self.start_at = self.clock.wall() + self.spec.start_delay
        # Every slot, the missing ones too: a command waits in its slot and goes out
        # when the agent is back (an agent left "prepared" would hang the run).
        for slot in self.slots.values():
            self._command(
                slot, Command.START, Start, start_at=self.start_at, setup_data=self.setup_data
            )
        self._move(Phase.RUNNING)

    def _running(self, now: float) -> None:
        if self._stop_requested is not None:
            command, self._stop_requested = self._stop_requested, None
            for slot in self.slots.values():
                self._command(slot, command, RunRef)
        if not self.live():
            self._fail("every agent was lost")
            return
        if self._all_live(AgentState.DONE):
            lead = self._first()
            if (
                "teardown" in self.hooks
                and not self.killed
                and lead is not None
                and lead.lost_at is None
            ):
                self._command(lead, Command.TEARDOWN, Teardown, setup_data=self.setup_data)
                self._move(Phase.TEARDOWN)
            else:
                self._release()
            return
        limit = (self.spec.bound or 0.0) + self.spec.graceful_stop + self.spec.start_delay + 30.0
        if self.spec.bound is not None and now - self._phase_since > limit and not self.killed:
            self.error = f"agents still running {limit:g}s after the start: killed"
            self.kill()

    def _teardown(self, now: float) -> None:
        if self._stop_requested is Command.KILL:
            self._release()  # a hard stop skips teardown hooks
            return
        lead = self._first()
        done = (
            lead is None
            or lead.lost_at is not None
            or self._state(lead) == AgentState.TEARDOWN_DONE
        )
        if done or now - self._phase_since > self.spec.graceful_stop + 30.0:
            self._release()

    def _releasing(self, now: float) -> None:
        for slot in self.live():
            m = self._member(slot)
            report = m.report if m is not None else None
            if (
                m is not None
                and report is not None
                and report.run_id == self.spec.run_id
                and report.totals is not None
                and m.status == AgentState.READY
            ):
                slot.totals = report.totals
        if (
            all(s.totals is not None for s in self.live())
            or now - self._phase_since > RELEASE_TIMEOUT
        ):
            self._move(Phase.FINISHED)
