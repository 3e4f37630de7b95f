"""The agent process: takes the HQ's commands, runs cannons, relays their measurements.

One thread runs a poll loop over three sockets: SUB (the HQ's commands), PUSH (status
and deltas to the HQ) and an ipc ROUTER to its cannons. A second thread only repeats
the current status every second on its own PUSH socket — the heartbeat, which no
amount of work in the loop can delay past the HQ's 3-second liveness window.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from cannonade.agent.cannons import CannonProc, reap, spawn, stop_idle
from cannonade.agent.merge import SecondMerger
from cannonade.agent.outbox import DEFAULT_MAX_FRAMES, Outbox
from cannonade.config import Cycles
from cannonade.errors import CannonadeError, ProtocolError, ScenarioError
from cannonade.protocol.control import (
    Ack,
    AgentReport,
    AgentState,
    AgentTotals,
    Command,
    Prepare,
    RunRef,
    SetupResult,
    Start,
    Status,
    Teardown,
    decode_command,
    encode_status,
    split_channel,
)
from cannonade.protocol.deltas import decode_delta, encode_delta
from cannonade.protocol.foreign import TestOutcome
from cannonade.protocol.loads import encode_test_run
from cannonade.protocol.options import options_from_wire
from cannonade.scenarios.archive import is_archive, unpack
from cannonade.scenarios.bundle import Bundle
from cannonade.transport.security import Curve
from cannonade.transport.sockets import Poller, Socket, Transport, handshake_failure

HEARTBEAT = 1.0
EXIT_GRACE = 10.0  # how long cannons get to ship their last numbers after "exit"


@dataclass(frozen=True, slots=True)
class AgentConfig:
    hq: str
    publisher_port: int = 5000
    results_port: int = 5001
    name: str = ""
    cannons: int = 1
    curve: Curve | None = None
    uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    max_buffer: int = DEFAULT_MAX_FRAMES


@dataclass(slots=True)
class AgentRun:
    """One run on this agent, from ``prepare`` to ``release``."""

    run_id: str
    partition: tuple[int, int, int]  # first global index, cannons, total
    workdir: Path
    merger: SecondMerger
    outbox: Outbox
    script: str
    rampup: float
    options: dict[str, Any]
    scenario_path: Path
    applied: int = -1
    cannons: list[CannonProc] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    setup: SetupResult | None = None
    totals: AgentTotals | None = None
    error: str = ""
    releasing_since: float | None = None
    teardown_done: bool = False


class Agent:
    def __init__(self, config: AgentConfig, transport: Transport | None = None) -> None:
        self.config = config
        self.uuid = config.uuid
        self.name = config.name or socket.gethostname()
        self.transport = transport or Transport()
        c = config
        self.sub = self.transport.connect("sub", c.hq, c.publisher_port, c.curve, self.uuid)
        self.push = self.transport.connect("push", c.hq, c.results_port, c.curve)
        self._beat_push = self.transport.connect("push", c.hq, c.results_port, c.curve)
        self.home = Path(tempfile.mkdtemp(prefix="cannonade-agent-"))
        self.ipc_path = str(self.home / "cannons.ipc")
        self.router = self.transport.bind_ipc(self.ipc_path)
        self.poller = Poller(self.sub, self.router)
        self.handshakes = self.transport.watch_handshakes(self.push) if c.curve else None
        if self.handshakes is not None:
            self.poller.add(self.handshakes)
        self._said: set[str] = set()
        self.state = AgentState.READY
        self.run: AgentRun | None = None
        # Cannons are started ahead of the run that will use them, so a run waits for
        # no interpreter start-up; each run gets fresh processes (a scenario's imports
        # and globals never leak into the next run).
        self.pool: list[CannonProc] = []
        self._generation = 0
        self.rejected = 0  # command frames that did not decode
        self._status_frame = b""
        self._stop = threading.Event()
        self._aborting = False

    # -- status ---------------------------------------------------------------------
    def status(self) -> Status:
        run = self.run
        report = AgentReport(
            hostname=socket.gethostname(),
            pid=os.getpid(),
            run_id=run.run_id if run else None,
            ack=run.applied if run else -1,
            hooks=run.hooks if run else [],
            setup=run.setup if run else None,
            totals=run.totals if run else None,
            error=run.error if run else "",
            buffered=len(run.outbox) if run else 0,
            dropped_upto=run.outbox.dropped_upto if run else -1,
        )
        return Status(
            turret=self.name,
            status=self.state.value,
            uuid=self.uuid,
            rampup=run.rampup if run else 0,
            script=run.script if run else "",
            cannons=self.config.cannons,
            cannonade=report,
        )

    def announce(self) -> None:
        frame = encode_status(self.status())
        self._status_frame = frame
        self.push.send(frame)

    def _set(self, state: AgentState) -> None:
        if state is not self.state:
            self.state = state
            self.announce()

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            if self._status_frame:
                self._beat_push.send(self._status_frame)

    # -- the loop -------------------------------------------------------------------
    def serve(self, should_stop: threading.Event | None = None) -> None:
        stop = should_stop or threading.Event()
        self._refill()
        self.announce()
        beat = threading.Thread(target=self._heartbeat, name="heartbeat", daemon=True)
        beat.start()
        next_tick = 0.0
        try:
            while not stop.is_set():
                for sock in self.poller.poll(0.05):
                    if sock is self.sub:
                        self._drain_commands()
                    elif sock is self.router:
                        self._drain_cannons()
                    else:
                        self._handshake_failed(sock)
                now = time.time()
                if now >= next_tick:
                    self._tick(now)
                    next_tick = now + 0.1
        finally:
            # The heartbeat thread owns its socket: stop it before closing anything.
            self._stop.set()
            beat.join()
            self._shutdown()

    def _shutdown(self) -> None:
        self._stop_pool(self.pool)
        self.pool = []
        run = self.run
        if run is not None and any(not c.exited for c in run.cannons):
            self._aborting = True
            self._send_cannons({"k": "kill"})
            self._send_cannons({"k": "exit"})
            reap(run.cannons, wait=3.0)
        if self.state is not AgentState.READY or run is not None:
            self.state = AgentState.ABORTED
            self.announce()
        if self.handshakes is not None:
            self.handshakes.close()
        self.router.close()
        self.sub.close()
        self.push.close()
        self._beat_push.close()
        self.transport.close()
        shutil.rmtree(self.home, ignore_errors=True)

    def _handshake_failed(self, monitor: Socket) -> None:
        why = handshake_failure(monitor)
        if why is not None and why not in self._said:
            self._said.add(why)  # once: ZeroMQ retries, the reason stays the same
            print(
                f"cannonade agent: cannot join {self.config.hq}: {why}", file=sys.stderr, flush=True
            )

    def _drain_commands(self) -> None:
        for _ in range(1000):
            frame = self.sub.recv()
            if frame is None:
                return
            try:
                channel, body = split_channel(frame)
                if channel and channel != self.uuid:
                    continue  # another turret's directed command
                command, msg = decode_command(body)
            except ProtocolError:
                self.rejected += 1
                continue
            self._apply(command, msg)

    def _apply(self, command: Command, msg: object) -> None:
        run = self.run
        if command is Command.STATUS_REQUEST:
            self.announce()
        elif isinstance(msg, Ack):
            if run is not None and msg.run_id == run.run_id:
                run.outbox.ack(msg.upto)
        elif isinstance(msg, Prepare):
            if run is None or run.run_id != msg.run_id:
                self._prepare(msg)
        elif isinstance(msg, RunRef):
            if run is None or msg.run_id != run.run_id or msg.seq <= run.applied:
                return
            run.applied = msg.seq
            self._run_command(run, command, msg)
            self.announce()
        elif command in (Command.STOP, Command.KILL) and run is not None:
            # OCT's bare form, broadcast by an OCT-style HQ.
            self._send_cannons({"k": command.value})

    def _run_command(self, run: AgentRun, command: Command, msg: RunRef) -> None:
        if command is Command.SETUP:
            if run.partition[0] == 0 and run.cannons:
                self._send_cannon(run.cannons[0], {"k": "setup"})
                self._set(AgentState.SETUP)
        elif command is Command.START and isinstance(msg, Start):
            self._send_cannons(
                {"k": "start", "start_at": msg.start_at, "setup_data": msg.setup_data}
            )
            self._set(AgentState.RUNNING)
            self._test_run(run, TestOutcome.START_RUN)
        elif command is Command.STOP:
            self._send_cannons({"k": "stop"})
            if self.state is AgentState.RUNNING:
                self._set(AgentState.STOPPING)
        elif command is Command.KILL:
            self._send_cannons({"k": "kill"})
            if self.state is AgentState.RUNNING:
                self._set(AgentState.STOPPING)
        elif command is Command.TEARDOWN and isinstance(msg, Teardown):
            if run.partition[0] == 0 and run.cannons:
                self._send_cannon(run.cannons[0], {"k": "teardown", "setup_data": msg.setup_data})
                self._set(AgentState.TEARDOWN)
        elif command is Command.RELEASE:
            self._send_cannons({"k": "exit"})
            run.releasing_since = time.time()

    # -- a run ----------------------------------------------------------------------
    def _prepare(self, msg: Prepare) -> None:
        if self.run is not None:
            self._abandon(self.run)
        first, count, total = msg.partition.first, msg.partition.cannons, msg.partition.total
        workdir = self.home / f"run-{len(os.listdir(self.home))}"
        workdir.mkdir()
        merger = SecondMerger(self.uuid, msg.run_id, count)
        outbox = Outbox(self.push.send, max_frames=self.config.max_buffer)
        options = msg.options
        run = AgentRun(
            msg.run_id,
            (first, count, total),
            workdir,
            merger,
            outbox,
            msg.bundle.filename,
            0.0,
            options,
            workdir / Path(msg.bundle.filename).name,
            applied=msg.seq,
        )
        self.run = run
        self.state = AgentState.PREPARING
        try:
            bundle = Bundle(msg.bundle.filename, msg.bundle.raw(), msg.bundle.sha256)
            bundle.verify()
            model = options_from_wire(options).model
            run.rampup = model.rampup if isinstance(model, Cycles) else 0.0
            if count < 1 or not 0 <= first < first + count <= total:
                raise ProtocolError(f"impossible partition {first}+{count} of {total}")
            if "/" in bundle.filename or bundle.filename.startswith("."):
                raise ProtocolError(f"bundle file name {bundle.filename!r} is not a plain name")
            if is_archive(bundle.filename):
                run.scenario_path = _unpack(bundle, workdir, options.get("entry"))
            else:
                run.scenario_path.write_bytes(bundle.data)
            if "exec" in options:  # an executable (--exec), not a Python scenario
                run.scenario_path.chmod(0o700)
        except CannonadeError as e:
            run.error = str(e)
            self._set(AgentState.FAILED)
            return
        pool, self.pool = self.pool, []
        if len(pool) != count or any(c.proc.poll() is not None for c in pool):
            self._stop_pool(pool)
            pool = [self._spawn(j) for j in range(count)]
        run.cannons = pool
        for c in pool:
            if c.hello:
                self._load(run, c)
        self.announce()

    def _refill(self) -> None:
        """A fresh pool of cannons for the next run."""
        if not self.pool:
            self.pool = [self._spawn(j) for j in range(self.config.cannons)]

    def _stop_pool(self, pool: list[CannonProc]) -> None:
        stop_idle(pool)

    def _spawn(self, index: int) -> CannonProc:
        self._generation += 1
        return spawn(self.ipc_path, self.uuid, index, str(self._generation))

    def _abandon(self, run: AgentRun) -> None:
        self._send_cannons({"k": "kill"})
        self._send_cannons({"k": "exit"})
        reap(run.cannons, wait=2.0)
        shutil.rmtree(run.workdir, ignore_errors=True)
        self.run = None
        self._refill()

    def _send_cannon(self, c: CannonProc, cmd: dict[str, Any]) -> None:
        if not c.exited:
            self.router.send_routed(c.identity, msgspec.json.encode(cmd))

    def _send_cannons(self, cmd: dict[str, Any]) -> None:
        if self.run is not None:
            for c in self.run.cannons:
                self._send_cannon(c, cmd)

    def _drain_cannons(self) -> None:
        for _ in range(10_000):
            got = self.router.recv_routed()
            if got is None:
                return
            peer, frame = got
            run = self.run
            pooled = next((c for c in self.pool if c.identity == peer), None)
            if pooled is not None:
                pooled.hello = pooled.hello or frame.startswith(b'{"k":"hello"')
                continue
            cannon = None
            if run is not None:
                cannon = next((c for c in run.cannons if c.identity == peer), None)
            if run is None or cannon is None:
                continue
            index = cannon.index
            if frame[:1] == b"{":
                self._cannon_says(run, cannon, frame)
                continue
            try:
                delta = decode_delta(frame)
            except ProtocolError:
                continue
            if delta.run_id == run.run_id and delta.source.cannon == index:
                run.merger.add(delta)

    def _load(self, run: AgentRun, cannon: CannonProc) -> None:
        if self.state is not AgentState.PREPARING:
            return  # the run failed before this cannon was ready
        first, _, total = run.partition
        load = {
            "k": "load",
            "run_id": run.run_id,
            "path": str(run.scenario_path),
            "options": run.options,
            "partition": [first + cannon.index, total],
        }
        self._send_cannon(cannon, load)

    def _cannon_says(self, run: AgentRun, cannon: CannonProc, frame: bytes) -> None:
        try:
            msg = msgspec.json.decode(frame)
            kind = msg["k"]
        except (msgspec.DecodeError, KeyError, TypeError):
            return
        if kind == "hello":
            cannon.hello = True
            self._load(run, cannon)
        elif kind == "loaded":
            cannon.loaded = True
            if cannon.index == 0:
                run.hooks = list(msg.get("hooks", []))
            if all(c.loaded for c in run.cannons) and self.state is AgentState.PREPARING:
                self._set(AgentState.PREPARED)
        elif kind == "error":
            run.error = str(msg.get("message", "cannon failed"))
            self._set(AgentState.FAILED)
        elif kind == "setup_done":
            run.setup = SetupResult(bool(msg.get("ok")), msg.get("data"), str(msg.get("error", "")))
            self._set(AgentState.SETUP_DONE)
        elif kind == "done":
            cannon.done = True
            self._check_done(run)
        elif kind == "teardown_done":
            run.teardown_done = True
            self._set(AgentState.TEARDOWN_DONE)

    def _check_done(self, run: AgentRun) -> None:
        if all(c.done or c.exited for c in run.cannons) and self.state in (
            AgentState.RUNNING,
            AgentState.STOPPING,
        ):
            self._ship(run, run.merger.drain())
            self._set(AgentState.DONE)
            self._test_run(run, TestOutcome.STOP_RUN)

    def _test_run(self, run: AgentRun, outcome: TestOutcome) -> None:
        """As a loads agent does around its external runners (not around anything else)."""
        if "test_runner" in run.options:
            self.push.send(encode_test_run(outcome, self.uuid, run.run_id))

    def _ship(self, run: AgentRun, deltas: list[Any]) -> None:
        now = time.time()
        for d in deltas:
            run.outbox.put(d.seq, encode_delta(d), now)

    def _tick(self, now: float) -> None:
        run = self.run
        if run is None:
            return
        for c in run.cannons:
            if not c.exited and c.proc.poll() is not None:
                c.exited = True
                run.merger.cannon_finished(c.index)
                if run.releasing_since is None and not self._aborting:
                    run.error = f"cannon {c.index} exited with code {c.proc.returncode}"
                    if self.state is AgentState.PREPARING:
                        self._set(AgentState.FAILED)
                    self._check_done(run)
        self._ship(run, run.merger.ready(now))
        if run.releasing_since is not None and run.totals is None:
            overdue = now - run.releasing_since > EXIT_GRACE
            if overdue:
                for c in run.cannons:
                    if not c.exited:
                        c.proc.kill()
            if all(c.exited for c in run.cannons):
                self._release(run)
        run.outbox.resend(now)

    def _release(self, run: AgentRun) -> None:
        for c in run.cannons:
            run.merger.cannon_finished(c.index)
        self._ship(run, run.merger.drain(final=True))
        m = run.merger
        run.totals = AgentTotals(
            deltas=m.sent,
            counters=dict(m.sent_counters),
            trend_counts=dict(m.sent_trends),
            dropped_deltas=run.outbox.dropped,
            cannon_gaps=m.cannon_gaps(),
        )
        shutil.rmtree(run.workdir, ignore_errors=True)
        self._refill()
        self._set(AgentState.READY)
        self.announce()


def _unpack(bundle: Bundle, workdir: Path, entry: object) -> Path:
    """An archive bundle unpacked into the run's directory; the path of its entry file."""
    if not isinstance(entry, str) or not entry:
        raise ProtocolError("an archive bundle needs options.entry, the file to run")
    root = workdir / "bundle"
    root.mkdir()
    files = unpack(bundle.filename, bundle.data, root)
    if entry not in files:
        raise ScenarioError(f"the bundle {bundle.filename!r} holds no file {entry!r}")
    return root / entry
