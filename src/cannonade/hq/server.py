"""The HQ process: binds PUB (commands) and PULL (status and results), keeps the roster
of agents, drives runs and stores what they measure.

One thread, one poll loop. Every frame from the PULL socket goes through one total
decoder: a typed message, or a rejection counted by reason — a malformed frame can
cost the HQ a counter increment, never its loop.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from cannonade.clock import Clock, SystemClock
from cannonade.errors import CannonadeError, ConfigError, ProtocolError
from cannonade.hq.foreign import ForeignIngest
from cannonade.hq.ingest import Ingest
from cannonade.hq.membership import Change, Roster
from cannonade.hq.run import Controller, Phase, RunController, RunSpec
from cannonade.hq.turrets import TurretRunController
from cannonade.model.aggregate import Aggregator
from cannonade.model.metrics import IntervalDelta
from cannonade.model.summary import RunInfo, compute_summary
from cannonade.model.thresholds import parse_threshold
from cannonade.protocol.control import (
    Ack,
    AgentState,
    Command,
    RunRef,
    Status,
    encode_command,
)
from cannonade.protocol.deltas import MAX_FRAME
from cannonade.protocol.foreign import ForeignEvent
from cannonade.protocol.results import decode_result_frame
from cannonade.storage import RunStatus, RunWriter, Store
from cannonade.transport.security import Curve
from cannonade.transport.sockets import REJECTED_MULTIPART, Poller, Transport

ACK_EVERY = 0.5
FLUSH_EVERY = 1.0
DRAIN_TIMEOUT = 5.0  # after the agents' totals: how long to wait for their last deltas
FOREVER = 1 << 62  # a sequence number above any real one
REJECTIONS_LOGGED = 3  # per reason: kept as events with the decoder's message
MAX_AGENTS = 10_000  # a roster bound, so a flood of made-up uuids cannot exhaust memory


@dataclass(frozen=True, slots=True)
class HQConfig:
    listen: str = "127.0.0.1"
    publisher_port: int = 5000
    results_port: int = 5001
    curve: Curve | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class AgentOutcome:
    uuid: str
    name: str
    cannons: int
    status: str
    lost_at: float | None
    losses: int
    intervals: int  # deltas of it that arrived
    expected: int | None  # deltas it says it sent (None: it never said)
    discrepancies: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    run_id: str
    status: RunStatus
    started: float
    ended: float
    error: str
    setup_failed: bool
    degraded: bool
    agents: tuple[AgentOutcome, ...]
    rejected: dict[str, int]


@dataclass(slots=True)
class Interrupts:
    """Set from a signal handler, read by the loop: 1 = stop, 2 = kill, 3 = give up."""

    level: int = 0


Progress = Callable[[Aggregator, Controller], None]


@dataclass(slots=True)
class _Timers:
    ack: float = 0.0
    flush: float = 0.0
    housekeeping: float = 0.0
    stale: float = 0.0
    progress: float = 0.0


class HQ:
    def __init__(self, config: HQConfig, store: Store, clock: Clock | None = None) -> None:
        if not is_loopback(config.listen) and config.curve is None:
            raise ConfigError(
                f"--listen {config.listen} is not a loopback address: refusing to accept "
                "agents from the network without CURVE (--curve-key and --curve-allow)"
            )
        self.config = config
        self.store = store
        self.clock = clock or SystemClock()
        self.transport = Transport()
        self.gatekeeper = self.transport.secure(config.curve) if config.curve else None
        self.pub = self.transport.bind("pub", config.listen, config.publisher_port, config.curve)
        self.pull = self.transport.bind("pull", config.listen, config.results_port, config.curve)
        self._poller = Poller(self.pull)
        self.roster = Roster(self.clock)
        self.rejected: Counter[str] = Counter()
        self.run: Controller | None = None
        self.ingest: Ingest | None = None
        self.foreign: ForeignIngest | None = None
        self._timers = _Timers()
        self._writer: RunWriter | None = None
        self._judged: tuple[tuple[str, ...], dict[str, object]] = (
            (),
            {},
        )  # the run's verdict inputs
        self.on_change: Callable[[Change], None] | None = None
        self.on_reject: Callable[[str], None] | None = None

    @property
    def publisher_port(self) -> int:
        return self.pub.port

    @property
    def results_port(self) -> int:
        return self.pull.port

    def close(self) -> None:
        self.pub.close()
        self.pull.close()
        if self.gatekeeper is not None:
            self.gatekeeper.stop()
        self.transport.close()

    # -- receiving -------------------------------------------------------------------
    def pump(self, timeout: float) -> None:
        if not self.pull_ready(timeout):
            return
        for _ in range(20_000):
            frame = self.pull.recv()
            if frame is None:
                return
            self.handle(frame)

    def pull_ready(self, timeout: float) -> bool:
        return bool(self._poller.poll(timeout))

    def handle(self, frame: bytes) -> None:
        if frame is REJECTED_MULTIPART or not frame:
            self._reject("multipart or empty frame", f"{len(frame)} bytes")
            return
        if len(frame) > MAX_FRAME:
            self._reject(f"frame over the {MAX_FRAME >> 20} MiB cap", f"{len(frame)} bytes")
            return
        try:
            msg = decode_result_frame(frame)
        except ProtocolError as e:
            self._reject("malformed frame", str(e))
            return
        if isinstance(msg, Status):
            self._status(msg)
        elif isinstance(msg, list):
            self._foreign(msg)
        else:
            self._delta(msg)

    def _reject(self, reason: str, detail: str) -> None:
        """Count a rejected frame; the first few of each reason are kept as events (the
        decoder's message names the field), so a broken runner can be found later."""
        self.rejected[reason] += 1
        n = self.rejected[reason]
        if n <= REJECTIONS_LOGGED:
            run_id = self.run.spec.run_id if self.run is not None else None
            text = f"{reason}: {detail[:300]}"
            if n == REJECTIONS_LOGGED:
                text += f" (further {reason} rejections are only counted)"
            self.store.event(run_id, self.clock.wall(), "rejected", text)
            if self.on_reject is not None:
                self.on_reject(text)

    def _status(self, status: Status) -> None:
        if status.uuid not in self.roster.members and len(self.roster.members) >= MAX_AGENTS:
            self._reject("status from an agent beyond the roster's limit", status.uuid[:64])
            return
        run_id = self.run.spec.run_id if self.run is not None else None
        for change in self.roster.observe(status):
            self._record(change, run_id, status)
        report = status.cannonade
        # Deltas the agent's full buffer gave up on: stop waiting (and acking) for them.
        if (
            self.ingest is not None
            and report is not None
            and report.run_id == run_id
            and report.dropped_upto >= 0
        ):
            self.ingest.settle(status.uuid, report.dropped_upto)

    def _record(self, change: Change, run_id: str | None, status: Status | None = None) -> None:
        m = self.roster.members.get(change.uuid)
        info: dict[str, object] = {"cannons": m.cannons if m else 0, "event": change.what}
        if m is not None:  # what an OCT turret says of itself, for the report's workload
            info["script"] = m.script
            info["rampup"] = m.rampup
        if status is not None and status.cannonade is not None:
            info["hostname"] = status.cannonade.hostname
            info["pid"] = status.cannonade.pid
        in_run = run_id is not None and self.run is not None and change.uuid in self.run.slots
        status_text = "missing" if change.what == "missing" else change.status
        self.store.record_agent(
            run_id if in_run else None,
            change.uuid,
            name=change.name,
            status=status_text,
            at=change.at,
            info=info,
        )
        if change.what in ("missing", "back", "joined") or status_text == AgentState.ABORTED:
            self.store.event(
                run_id if in_run else None,
                change.at,
                f"agent_{change.what}",
                f"agent {change.name} ({change.uuid}) {change.what}: {status_text}",
            )
        if self.on_change is not None:
            self.on_change(change)

    def _foreign(self, events: list[ForeignEvent]) -> None:
        if self.foreign is None:
            self.rejected["runner message with no run in progress"] += len(events)
            return
        self.foreign.add(events)
        marks = self.foreign.take_marks()
        if marks:
            now = self.clock.wall()
            for source, outcome in marks:
                self.store.event(
                    self.foreign.run_id, now, "test_run", f"{outcome.value} from {source}"
                )

    def _flush_foreign(self, final: bool = False) -> None:
        if self.foreign is None or self.ingest is None:
            return
        for delta in self.foreign.flush(self.clock.wall(), final=final):
            self.ingest.admit(delta.source.agent)
            if self.ingest.add(delta) and self._writer is not None:
                self._writer.add(delta)

    def _delta(self, delta: IntervalDelta) -> None:
        self.roster.touch(delta.source.agent)
        ingest = self.ingest
        if ingest is None:
            self._reject("delta with no run in progress", f"from agent {delta.source.agent[:64]}")
            return
        if ingest.add(delta):
            assert self._writer is not None
            self._writer.add(delta)

    # -- periodic work ---------------------------------------------------------------
    def housekeeping(self) -> None:
        now = self.clock.monotonic()
        t = self._timers
        if now - t.housekeeping >= 0.1:
            t.housekeeping = now
            run_id = self.run.spec.run_id if self.run is not None else None
            for change in self.roster.sweep():
                self._record(change, run_id)
            if self.run is not None:
                for out in self.run.tick():
                    self.pub.send(encode_command(out.command, out.msg, out.channel))
        if now - t.ack >= ACK_EVERY:
            t.ack = now
            self._ack()
        if now - t.stale >= 1.0:
            t.stale = now
            self._release_strays()
        if self._writer is not None and now - t.flush >= FLUSH_EVERY:
            t.flush = now
            self._flush_foreign()
            self._writer.flush()

    def _ack(self) -> None:
        if self.ingest is None:
            return
        for uuid, ledger in self.ingest.agents.items():
            m = self.roster.members.get(uuid)
            if m is None or not m.is_cannonade:
                continue  # a foreign runner keeps no buffer, and an OCT turret would choke
            buffered = m.report.buffered if m is not None and m.report is not None else 0
            if ledger.contiguous > ledger.acked or buffered:
                ledger.acked = ledger.contiguous
                ack = Ack(run_id=self.ingest.run_id, upto=ledger.contiguous)
                self.pub.send(encode_command(Command.ACK, ack, uuid))

    def _release_strays(self) -> None:
        """Agents still busy with a run this HQ is not driving (it was restarted, or the
        run ended without them) are told to release it, so they come back ready."""
        current = self.run.spec.run_id if self.run is not None else None
        for m in self.roster.alive():
            r = m.report
            if r is None or r.run_id is None or r.run_id == current:
                continue
            if m.status != AgentState.READY:
                ref = RunRef(run_id=r.run_id, seq=FOREVER)
                self.pub.send(encode_command(Command.RELEASE, ref, m.uuid))
            if r.buffered:
                # Deltas of a run this HQ does not hold: it cannot store them.
                ack = Ack(run_id=r.run_id, upto=FOREVER)
                self.pub.send(encode_command(Command.ACK, ack, m.uuid))

    def serve(self, interrupts: Interrupts) -> None:
        """``cannonade hq`` without the API: keep the roster until interrupted."""
        while interrupts.level == 0:
            self.pump(0.1)
            self.housekeeping()

    # -- a run -----------------------------------------------------------------------
    def execute(
        self,
        spec: RunSpec,
        *,
        scenario: str,
        thresholds: tuple[str, ...],
        options_view: dict[str, object],
        interrupts: Interrupts,
        progress: Progress | None = None,
    ) -> RunOutcome:
        store = self.store
        created = self.clock.wall()
        if not store.has_run(spec.run_id):  # a run from the API's queue has its row
            store.create_run(
                spec.run_id,
                scenario=scenario,
                scenario_sha256=spec.bundle.sha256 if spec.bundle is not None else "",
                options=options_view,
                thresholds=thresholds,
                created=created,
            )
        store.set_status(spec.run_id, RunStatus.WAITING, at=created)
        run: Controller
        if spec.bundle is None:
            run = TurretRunController(spec, self.roster, self.clock, duration=spec.bound or 0.0)
        else:
            run = RunController(spec, self.roster, self.clock)
        self.run = run
        aggregator = Aggregator()
        self.ingest = Ingest(spec.run_id, aggregator)
        self.foreign = ForeignIngest(spec.run_id)
        self._writer = store.writer(spec.run_id)
        self._judged = (thresholds, options_view)
        handled = 0
        phase = run.phase
        try:
            while not run.finished:
                if interrupts.level > handled:
                    handled = interrupts.level
                    if handled == 1:
                        run.stop()
                    elif handled >= 2:
                        run.kill()
                    if handled >= 3:
                        break
                self.pump(0.05)
                for uuid in run.slots:
                    self.ingest.admit(uuid)
                self.housekeeping()
                if run.phase is not phase:
                    phase = run.phase
                    self._phase_changed(run)
                if progress is not None and self.clock.monotonic() - self._timers.progress >= 1.0:
                    self._timers.progress = self.clock.monotonic()
                    progress(aggregator, run)
            self._drain(run, interrupts)
        finally:
            outcome = self._finish(run)
            self.run = None
            self.ingest = None
            self.foreign = None
            self._writer = None
        return outcome

    def _phase_changed(self, run: Controller) -> None:
        at = self.clock.wall()
        rid = run.spec.run_id
        self.store.event(rid, at, "phase", f"run {rid} is {run.phase.value}")
        if run.phase is Phase.PREPARING or isinstance(run, TurretRunController):
            for slot in run.slots.values():
                self.store.record_agent(
                    rid,
                    slot.uuid,
                    name=slot.name,
                    status="assigned",
                    at=at,
                    info={"cannons": slot.cannons, "first_partition": slot.first},
                )
        if run.phase is Phase.RUNNING and run.start_at is not None:
            self.store.set_status(rid, RunStatus.RUNNING, at=at, started=run.start_at)

    def _drain(self, run: Controller, interrupts: Interrupts) -> None:
        """Wait (briefly) for the deltas the agents' totals say are still in flight."""
        assert self.ingest is not None
        deadline = self.clock.monotonic() + DRAIN_TIMEOUT
        while self.clock.monotonic() < deadline and interrupts.level < 3:
            waiting = [
                s
                for s in run.live()
                if s.totals is not None and not self.ingest.complete(s.uuid, s.totals)
            ]
            if not waiting:
                break
            self.pump(0.05)
            self.housekeeping()
        self._ack()

    def _verdict(
        self, aggregator: Aggregator, started: float, ended: float, status: str
    ) -> str | None:
        thresholds, options = self._judged
        return _summary_verdict(aggregator, started, ended, status, options, thresholds)

    def _finish(self, run: Controller) -> RunOutcome:
        assert self.ingest is not None
        assert self._writer is not None
        ingest = self.ingest
        self._flush_foreign(final=True)
        self._writer.flush()
        self._writer.record_sources(ingest.aggregator.sources)
        self._writer.flush()
        # Rates are per second of load: the release that follows is not part of it.
        ended = run.load_ended_at or run.ended_at or self.clock.wall()
        agents = []
        for slot in run.slots.values():
            ledger = ingest.agents.get(slot.uuid)
            m = self.roster.members.get(slot.uuid)
            problems = ingest.discrepancies(slot.uuid, slot.totals) if slot.totals else []
            lost = slot.lost_at is not None
            if (
                slot.reports_totals
                and slot.totals is None
                and run.phase is Phase.FINISHED
                and not run.error
                and not lost
            ):
                problems.append("never reported its totals")
            agents.append(
                AgentOutcome(
                    slot.uuid,
                    slot.name,
                    slot.cannons,
                    m.status if m is not None else "unknown",
                    slot.lost_at,
                    slot.losses,
                    ledger.deltas if ledger else 0,
                    slot.totals.deltas if slot.totals else None,
                    tuple(problems),
                )
            )
            for p in problems:
                self.store.event(run.spec.run_id, ended, "totals", f"agent {slot.name}: {p}")
        if run.error:
            self.store.event(run.spec.run_id, ended, "error", run.error)
        if run.error and not run.start_at:
            status = RunStatus.FAILED
        elif run.phase is not Phase.FINISHED or run.stopped:
            status = RunStatus.INTERRUPTED
        elif run.degraded:
            status = RunStatus.DEGRADED
        elif run.error:
            status = RunStatus.FAILED
        else:
            status = RunStatus.FINISHED
        started = run.start_at if run.start_at is not None else ended
        # The final status and the verdict land together: a reader (the API, `runs`)
        # never sees a finished run without one.
        verdict = self._verdict(ingest.aggregator, started, ended, status)
        self.store.set_status(
            run.spec.run_id, status, at=ended, started=started, ended=ended, verdict=verdict
        )
        foreign_rejected = self.foreign.rejected if self.foreign is not None else Counter()
        rejected = dict(self.rejected + ingest.rejected + foreign_rejected)
        refused = self.gatekeeper.refusals.by_key if self.gatekeeper is not None else {}
        if refused:
            keys = ", ".join(sorted(refused)[:5]) + (", ..." if len(refused) > 5 else "")
            why = f"CURVE handshake(s) from key(s) not on the allow-list ({keys})"
            rejected[why] = sum(refused.values())
        return RunOutcome(
            run.spec.run_id,
            status,
            started,
            ended,
            run.error,
            run.setup_failed,
            run.degraded,
            tuple(agents),
            rejected,
        )


def _summary_verdict(
    aggregator: Aggregator,
    started: float,
    ended: float,
    status: str,
    options: dict[str, object],
    thresholds: tuple[str, ...],
) -> str | None:
    """The verdict ``cannonade show`` gives the stored run, from the same numbers."""
    try:
        parsed = [parse_threshold(e, kinds=aggregator.kinds) for e in thresholds]
    except CannonadeError:
        return None
    info = RunInfo(
        started=started,
        ended=max(started, ended),
        interrupted=status == RunStatus.INTERRUPTED,
        options=options,
    )
    return compute_summary(aggregator, info, parsed).verdict


def model_bound(planned: float | None, max_duration: float) -> float:
    """How long a run's model may take: its planned length, or the bound of a
    count-driven model (hits, iterations)."""
    return planned if planned is not None and math.isfinite(planned) else max_duration
