"""RunController: one distributed run driven over fake agents and a fake clock.

The fake agents answer the controller's commands the way ``Agent._apply`` does (a
command is applied at most once, in seq order, and acknowledged in the next status)
and report the states ``Agent.status()`` reports; the tests decide when an agent has
loaded its scenario, finished its model, and so on.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from cannonade.clock import FakeClock
from cannonade.config import Partition
from cannonade.hq.membership import MISSING_AFTER, Roster
from cannonade.hq.run import (
    PREPARE_TIMEOUT,
    RELEASE_TIMEOUT,
    Outgoing,
    Phase,
    RunController,
    RunSpec,
)
from cannonade.protocol.control import (
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
)
from cannonade.scenarios.bundle import Bundle

RUN = "run-7"
BUNDLE = Bundle.from_bytes("scenario.py", b"from cannonade import ...\n")
OPTIONS = {"model": {"type": "Cycles", "users": [10]}, "http": {}}


@dataclass
class FakeAgent:
    """An agent as the HQ sees it: its status messages, and how it takes commands."""

    uuid: str
    name: str
    cannons: int
    hooks: list[str] = field(default_factory=list)
    state: AgentState = AgentState.READY
    run_id: str | None = None
    applied: int = -1
    setup: SetupResult | None = None
    totals: AgentTotals | None = None
    error: str = ""
    silent: bool = False  # no status reaches the HQ
    deaf: bool = False  # no command reaches the agent
    auto_release: bool = True  # cannons exit at once on release
    holds_partition_0: bool = False  # set from its PREPARE: it runs the hooks
    inbox: list[Outgoing] = field(default_factory=list)

    def status(self) -> Status:
        """Built the way Agent.status() builds it."""
        report = AgentReport(
            hostname="host-" + self.name,
            pid=100,
            run_id=self.run_id,
            ack=self.applied if self.run_id else -1,
            hooks=self.hooks if self.run_id else [],
            setup=self.setup,
            totals=self.totals,
            error=self.error,
            buffered=0,
        )
        return Status(
            turret=self.name,
            status=self.state.value,
            uuid=self.uuid,
            rampup=0.0,
            script=BUNDLE.filename if self.run_id else "",
            cannons=self.cannons,
            cannonade=report,
        )

    def receive(self, out: Outgoing) -> None:
        if self.deaf or out.channel not in ("", self.uuid):
            return
        self.inbox.append(out)
        msg = out.msg
        if isinstance(msg, Prepare):
            if self.run_id != msg.run_id:
                self.run_id, self.applied = msg.run_id, msg.seq
                self.state = AgentState.PREPARING
                self.setup = self.totals = None
                self.error = ""
            return
        if not isinstance(msg, RunRef) or msg.run_id != self.run_id or msg.seq <= self.applied:
            return
        self.applied = msg.seq
        command = out.command
        first = isinstance(msg, RunRef) and self.holds_partition_0
        if command is Command.SETUP and first:
            self.state = AgentState.SETUP
        elif command is Command.START:
            self.state = AgentState.RUNNING
        elif command in (Command.STOP, Command.KILL):
            if self.state is AgentState.RUNNING:
                self.state = AgentState.STOPPING
        elif command is Command.TEARDOWN and first:
            self.state = AgentState.TEARDOWN
        elif command is Command.RELEASE and self.auto_release:
            self.release()

    def release(self, deltas: int = 5) -> None:
        self.totals = AgentTotals(deltas, {"http_reqs": 10.0}, {"http_req_duration": 10})
        self.state = AgentState.READY


class World:
    """The HQ's side: a roster on a fake clock, a controller, and the fake agents."""

    def __init__(self, *agents: FakeAgent, **spec) -> None:
        self.clock = FakeClock()
        self.roster = Roster(self.clock)
        self.agents = {a.uuid: a for a in agents}
        self.sent: list[tuple[float, Outgoing]] = []
        self.heartbeat()
        self.rc = RunController(RunSpec(RUN, BUNDLE, OPTIONS, **spec), self.roster, self.clock)

    def heartbeat(self) -> None:
        for a in self.agents.values():
            if not a.silent:
                self.roster.observe(a.status())

    def step(self, dt: float = 0.125) -> list[Outgoing]:
        """Time passes; statuses arrive; the HQ sweeps and ticks; commands arrive."""
        self.clock.advance(dt)
        self.heartbeat()
        self.roster.sweep()
        outs = self.rc.tick()
        for out in outs:
            self.sent.append((self.clock.monotonic(), out))
            for a in self.agents.values():
                a.receive(out)
        for out in outs:
            a = self.agents.get(out.channel)
            if a is not None and isinstance(out.msg, Prepare):
                a.holds_partition_0 = out.msg.partition.first == 0
        return outs

    def run_until(self, predicate, limit: float = 600.0, dt: float = 0.125) -> None:
        t = 0.0
        while not predicate():
            assert t < limit, f"stuck in {self.rc.phase} after {limit}s"
            self.step(dt)
            t += dt

    def commands(self, uuid: str) -> list[Command]:
        return [o.command for _, o in self.sent if o.channel == uuid]


def agents(*cannons: int, hooks: tuple[str, ...] = ()) -> list[FakeAgent]:
    return [
        FakeAgent(f"{chr(97 + i) * 8}-uuid", f"agent-{chr(97 + i)}", n, hooks=list(hooks))
        for i, n in enumerate(cannons)
    ]


def prepared(w: World) -> None:
    for a in w.agents.values():
        if a.state is AgentState.PREPARING:
            a.state = AgentState.PREPARED


def done(w: World) -> None:
    for a in w.agents.values():
        if a.state in (AgentState.RUNNING, AgentState.STOPPING):
            a.state = AgentState.DONE


# -- the happy path -----------------------------------------------------------------------


def test_happy_path():
    a, b, c = agents(3, 2, 4)
    w = World(a, b, min_agents=3, wait_agents=60.0)
    for _ in range(20):
        assert w.step() == []
    assert w.rc.phase is Phase.WAITING
    w.agents[c.uuid] = c  # the third agent joins
    outs = w.step()
    assert w.rc.phase is Phase.PREPARING
    assert [(o.channel, o.command) for o in outs] == [
        (a.uuid, Command.PREPARE),
        (b.uuid, Command.PREPARE),
        (c.uuid, Command.PREPARE),
    ]
    parts = {o.channel: o.msg.partition for o in outs}
    assert [(p.first, p.cannons, p.total) for p in parts.values()] == [
        (0, 3, 9),
        (3, 2, 9),
        (5, 4, 9),
    ]
    for o in outs:
        msg = o.msg
        assert isinstance(msg, Prepare)
        assert (msg.run_id, msg.options) == (RUN, OPTIONS)
        assert msg.bundle.raw() == BUNDLE.data
        assert msg.bundle.sha256 == BUNDLE.sha256
    assert len({o.msg.seq for o in outs}) == 3
    assert {s.uuid: (s.first, s.cannons) for s in w.rc.slots.values()} == {
        a.uuid: (0, 3),
        b.uuid: (3, 2),
        c.uuid: (5, 4),
    }

    for _ in range(30):
        assert w.step() == []  # acknowledged: nothing re-sent while they load
    prepared(w)
    outs = w.step()
    assert w.rc.phase is Phase.RUNNING
    assert {o.channel for o in outs} == {a.uuid, b.uuid, c.uuid}
    assert {o.command for o in outs} == {Command.START}
    starts = {o.msg.start_at for o in outs}
    assert starts == {w.clock.wall() + w.rc.spec.start_delay} == {w.rc.start_at}
    assert all(o.msg.setup_data is None for o in outs)
    assert w.rc.hooks == ()

    for _ in range(50):
        assert w.step() == []
    a.state = AgentState.DONE
    b.state = AgentState.DONE
    assert w.step() == []
    assert w.rc.phase is Phase.RUNNING  # c is still running
    c.state = AgentState.DONE
    a.auto_release = False
    assert w.rc.load_ended_at is None
    outs = w.step()
    assert w.rc.phase is Phase.RELEASING
    assert w.rc.load_ended_at == w.clock.wall()  # the load ended: releasing is not load
    assert [o.command for o in outs] == [Command.RELEASE] * 3
    w.step()
    assert w.rc.phase is Phase.RELEASING  # a has not sent its totals yet
    assert w.rc.ended_at is None
    a.release(deltas=9)
    w.step()
    assert w.rc.phase is Phase.FINISHED
    assert w.rc.finished
    assert w.rc.ended_at == w.clock.wall()
    assert w.rc.slots[a.uuid].totals == AgentTotals(
        9, {"http_reqs": 10.0}, {"http_req_duration": 10}
    )
    assert all(s.totals is not None for s in w.rc.slots.values())
    assert (w.rc.error, w.rc.degraded, w.rc.stopped, w.rc.setup_failed) == ("", False, False, False)
    assert w.step() == []  # a finished run sends nothing
    for x in (a, b, c):
        assert w.commands(x.uuid) == [Command.PREPARE, Command.START, Command.RELEASE]


@pytest.mark.parametrize("cannons", [(1,), (3, 2), (1, 1, 1, 1), (5, 1, 7)])
def test_partitions_cover_every_global_id_exactly_once(cannons):
    fleet = agents(*cannons)
    w = World(*fleet, min_agents=len(fleet))
    outs = w.step()
    total = sum(cannons)
    cannon_parts = []
    for o in outs:
        p = o.msg.partition
        assert p.total == total
        assert p.cannons == w.agents[o.channel].cannons
        cannon_parts += [Partition(p.first + j, p.total) for j in range(p.cannons)]
    assert sorted(p.index for p in cannon_parts) == list(range(total))
    for vu in range(10 * total + 3):
        assert sum(p.owns(vu) for p in cannon_parts) == 1
    assert sum(p.share(1000) for p in cannon_parts) == 1000


def test_agents_that_are_not_ready_or_not_cannonade_are_not_used():
    a, b = agents(2, 2)
    busy = FakeAgent("busy-uuid", "busy", 4, state=AgentState.RUNNING, run_id="other")
    empty = FakeAgent("empty-uuid", "empty", 0)
    w = World(a, b, busy, empty)
    oct_turret = Status(turret="oct", status="READY", uuid="oct-uuid", cannons=250)
    w.roster.observe(oct_turret)
    outs = w.step()
    assert {o.channel for o in outs} == {a.uuid, b.uuid}
    assert outs[0].msg.partition.total == 4


# -- republishing -------------------------------------------------------------------------


def test_commands_are_republished_with_backoff_until_acknowledged():
    # A subscriber that has just connected often misses its first message: retry soon
    # (after 0.2 s), then back off (0.4, 0.8) to once a second. Ticks are 0.125 s apart.
    (a,) = agents(2)
    a.deaf = True
    w = World(a)
    w.step()
    assert [o.command for _, o in w.sent] == [Command.PREPARE]
    w.step()
    assert len(w.sent) == 1  # 0.125 s later: not yet
    w.step()
    assert len(w.sent) == 2  # 0.25 s later: again
    assert w.sent[1][1] == w.sent[0][1]  # the same command, the same seq
    for _ in range(60):
        w.step()
    times = [t for t, _ in w.sent]
    gaps = [t2 - t1 for t1, t2 in itertools.pairwise(times)]
    assert gaps[:3] == [0.25, 0.5, 0.875]
    assert set(gaps[3:]) == {1.0}
    a.deaf = False  # the next copy gets through and its ack comes back
    w.run_until(lambda: a.applied >= 0, dt=0.25)
    n = len(w.sent)
    for _ in range(50):
        w.step(0.25)
    assert len(w.sent) == n  # acknowledged: never again
    assert w.rc.phase is Phase.PREPARING


def test_an_ack_for_an_older_command_does_not_stop_the_new_one():
    (a,) = agents(2)
    w = World(a)
    w.step()
    prepared(w)
    a.deaf = True  # START is lost
    w.step()
    assert w.rc.phase is Phase.RUNNING
    for _ in range(20):  # 2.5 s: sent at 0, 0.25, 0.75, 1.625 and 2.625 s
        w.step()
    starts = [o for _, o in w.sent if o.command is Command.START]
    assert len(starts) == 4
    assert len({o.msg for o in starts}) == 1  # the same start_at every time
    a.deaf = False
    w.step(1.0)
    assert a.state is AgentState.RUNNING
    n = len(w.sent)
    for _ in range(20):
        w.step()
    assert len(w.sent) == n


def test_an_ack_of_another_run_is_not_an_ack():
    (a,) = agents(2)
    w = World(a)
    a.deaf = True
    w.step()
    a.run_id, a.applied, a.state = "old-run", 999, AgentState.PREPARING
    for _ in range(20):  # 2.5 s: sent at 0, 0.25, 0.75 and 1.625 s
        w.step()
    assert [o.command for _, o in w.sent] == [Command.PREPARE] * 4


# -- hooks --------------------------------------------------------------------------------


def test_setup_and_teardown_run_on_the_agent_holding_partition_0():
    a, b = agents(2, 3, hooks=("setup", "teardown"))
    w = World(a, b, min_agents=2)
    w.step()
    prepared(w)
    outs = w.step()
    assert w.rc.phase is Phase.SETUP
    assert w.rc.hooks == ("setup", "teardown")
    assert [(o.channel, o.command) for o in outs] == [(a.uuid, Command.SETUP)]
    assert a.state is AgentState.SETUP
    for _ in range(30):
        assert w.step() == []
    a.setup = SetupResult(True, {"token": "s3cret", "ids": [1, 2, 3]})
    a.state = AgentState.SETUP_DONE
    outs = w.step()
    assert w.rc.phase is Phase.RUNNING
    assert w.rc.setup_data == {"token": "s3cret", "ids": [1, 2, 3]}
    assert {o.channel for o in outs} == {a.uuid, b.uuid}
    for o in outs:
        assert isinstance(o.msg, Start)
        assert o.msg.setup_data == {"token": "s3cret", "ids": [1, 2, 3]}
    done(w)
    outs = w.step()
    assert w.rc.phase is Phase.TEARDOWN
    assert [(o.channel, o.command) for o in outs] == [(a.uuid, Command.TEARDOWN)]
    assert isinstance(outs[0].msg, Teardown)
    assert outs[0].msg.setup_data == {"token": "s3cret", "ids": [1, 2, 3]}
    for _ in range(30):
        assert w.step() == []
    a.state = AgentState.TEARDOWN_DONE
    outs = w.step()
    assert w.rc.phase is Phase.RELEASING
    assert {o.command for o in outs} == {Command.RELEASE}
    w.step()
    assert w.rc.phase is Phase.FINISHED
    assert w.commands(a.uuid) == [
        Command.PREPARE,
        Command.SETUP,
        Command.START,
        Command.TEARDOWN,
        Command.RELEASE,
    ]
    assert w.commands(b.uuid) == [Command.PREPARE, Command.START, Command.RELEASE]
    assert w.rc.error == ""


@pytest.mark.parametrize(
    ("result", "error"),
    [
        (SetupResult(False, None, "KeyError: 'token'"), "KeyError: 'token'"),
        (SetupResult(False), "@setup failed"),
        (None, "@setup failed"),
    ],
)
def test_a_failed_setup_releases_without_starting(result, error):
    a, b = agents(2, 3, hooks=("setup",))
    w = World(a, b, min_agents=2)
    w.step()
    prepared(w)
    w.step()
    a.setup = result
    a.state = AgentState.SETUP_DONE
    outs = w.step()
    assert w.rc.phase is Phase.RELEASING
    assert w.rc.setup_failed
    assert w.rc.error == error
    assert w.rc.start_at is None
    assert {(o.channel, o.command) for o in outs} == {
        (a.uuid, Command.RELEASE),
        (b.uuid, Command.RELEASE),
    }
    w.step()
    assert w.rc.phase is Phase.FINISHED
    assert Command.START not in w.commands(a.uuid) + w.commands(b.uuid)


def test_only_the_lead_agents_hooks_count():
    a, b = agents(2, 3)
    b.hooks = ["setup", "teardown"]  # not partition 0: it does not run them
    w = World(a, b, min_agents=2)
    w.step()
    prepared(w)
    w.step()
    assert w.rc.phase is Phase.RUNNING
    done(w)
    w.step()
    assert w.rc.phase is Phase.RELEASING


def test_teardown_is_skipped_after_a_kill():
    a, b = agents(2, 3, hooks=("teardown",))
    w = World(a, b, min_agents=2)
    w.step()
    prepared(w)
    w.step()
    w.rc.kill()
    w.step()
    done(w)
    w.step()
    assert w.rc.phase is Phase.RELEASING
    assert Command.TEARDOWN not in w.commands(a.uuid)


def test_teardown_times_out():
    (a,) = agents(2, hooks=("teardown",))
    w = World(a, graceful_stop=10.0)
    w.step()
    prepared(w)
    w.step()
    done(w)
    w.step()
    assert w.rc.phase is Phase.TEARDOWN
    since = w.clock.monotonic()
    w.run_until(lambda: w.rc.phase is not Phase.TEARDOWN, dt=0.5)
    assert w.rc.phase is Phase.RELEASING
    assert w.clock.monotonic() - since == 40.5  # more than graceful_stop + 30 s


# -- stop and kill ------------------------------------------------------------------------


def test_stop_while_waiting_finishes_at_once():
    w = World()
    w.step()
    w.rc.stop()
    w.step()
    assert w.rc.phase is Phase.FINISHED
    assert w.rc.stopped
    assert w.sent == []


def test_stop_before_the_start_releases_without_starting():
    a, b = agents(2, 3)
    w = World(a, b, min_agents=2)
    w.step()
    w.rc.stop()
    outs = w.step()
    assert w.rc.phase is Phase.RELEASING
    assert {o.command for o in outs} == {Command.RELEASE}
    prepared(w)  # too late to matter
    w.run_until(lambda: w.rc.finished)
    assert w.rc.start_at is None
    assert w.rc.stopped
    for x in (a, b):
        assert w.commands(x.uuid) == [Command.PREPARE, Command.RELEASE]


def test_stop_during_setup_releases_without_starting():
    (a,) = agents(2, hooks=("setup",))
    w = World(a)
    w.step()
    prepared(w)
    w.step()
    assert w.rc.phase is Phase.SETUP
    w.rc.stop()
    w.step()
    assert w.rc.phase is Phase.RELEASING
    assert Command.START not in w.commands(a.uuid)


@pytest.mark.parametrize("how", ["stop", "kill", "stop then kill"])
def test_stop_and_kill_while_running(how):
    a, b = agents(2, 3)
    w = World(a, b, min_agents=2)
    w.step()
    prepared(w)
    w.step()
    for _ in range(20):
        w.step()
    if how == "stop then kill":
        w.rc.stop()
        w.step()
        assert {a.state, b.state} == {AgentState.STOPPING}
        w.rc.kill()
        outs = w.step()
        expected = [Command.STOP, Command.KILL]
    else:
        getattr(w.rc, how)()
        outs = w.step()
        expected = [Command.STOP if how == "stop" else Command.KILL]
    assert [o.command for o in outs] == [expected[-1]] * 2
    assert {a.state, b.state} == {AgentState.STOPPING}
    for _ in range(20):
        assert w.step() == []  # acknowledged
    done(w)
    w.run_until(lambda: w.rc.finished)
    for x in (a, b):
        assert w.commands(x.uuid) == [Command.PREPARE, Command.START, *expected, Command.RELEASE]
    assert w.rc.stopped
    assert w.rc.killed == (how != "stop")


def test_a_run_past_its_bound_is_killed():
    (a,) = agents(2)
    w = World(a, bound=60.0, graceful_stop=5.0, start_delay=1.0)
    w.step()
    prepared(w)
    w.step()
    started = w.clock.monotonic()
    w.run_until(lambda: w.rc.killed, limit=200, dt=1.0)
    assert w.clock.monotonic() - started == pytest.approx(97.0)  # 60 + 5 + 1 + 30, then > it
    assert w.rc.error == "agents still running 96s after the start: killed"
    w.step()
    assert w.commands(a.uuid)[-1] is Command.KILL
    done(w)
    w.run_until(lambda: w.rc.finished)


# -- losing agents -------------------------------------------------------------------------


def test_an_agent_lost_mid_run_degrades_the_run_which_completes_on_the_others():
    a, b = agents(2, 3)
    w = World(a, b, min_agents=2)
    w.step()
    prepared(w)
    w.step()
    for _ in range(10):
        w.step()
    b.silent = True
    b.deaf = True
    w.run_until(lambda: w.rc.slots[b.uuid].lost_at is not None, dt=0.5)
    lost_wall = w.clock.wall()
    assert w.rc.slots[b.uuid].lost_at == lost_wall
    assert w.rc.slots[b.uuid].losses == 1
    assert w.rc.degraded
    assert [s.uuid for s in w.rc.live()] == [a.uuid]
    done(w)
    outs = w.step()
    assert w.rc.phase is Phase.RELEASING
    assert [(o.channel, o.command) for o in outs] == [(a.uuid, Command.RELEASE)]
    w.step()
    assert w.rc.phase is Phase.FINISHED  # the lost agent's totals are not waited for
    assert w.rc.slots[b.uuid].totals is None
    assert w.rc.error == ""
    assert w.rc.degraded


def test_a_lost_agent_that_comes_back_is_live_again():
    a, b = agents(2, 3)
    w = World(a, b, min_agents=2)
    w.step()
    prepared(w)
    w.step()
    b.silent = True
    w.step(MISSING_AFTER + 0.5)
    assert w.rc.slots[b.uuid].losses == 1
    b.silent = False
    w.step()
    assert w.rc.slots[b.uuid].lost_at is None
    assert w.rc.slots[b.uuid].losses == 1
    a.state = AgentState.DONE
    w.step()
    assert w.rc.phase is Phase.RUNNING  # b is live again: it is waited for
    b.state = AgentState.DONE
    w.run_until(lambda: w.rc.finished)
    assert w.rc.slots[b.uuid].totals is not None
    assert w.rc.degraded


def test_every_agent_lost():
    a, b = agents(2, 3)
    w = World(a, b, min_agents=2)
    w.step()
    prepared(w)
    w.step()
    a.silent = b.silent = True
    w.run_until(lambda: w.rc.phase is not Phase.RUNNING)
    assert w.rc.error == "every agent was lost"
    w.step()
    assert w.rc.phase is Phase.FINISHED


def test_losing_the_lead_before_the_start_fails_the_run():
    a, b = agents(2, 3)
    w = World(a, b, min_agents=2)
    w.step()
    a.silent = True
    w.run_until(lambda: w.rc.phase is not Phase.PREPARING)
    assert w.rc.phase is Phase.RELEASING
    assert w.rc.error == "the agent holding partition 0 was lost before the start"
    assert Command.START not in w.commands(b.uuid)


def test_losing_the_lead_during_setup_fails_the_run():
    a, b = agents(2, 3, hooks=("setup",))
    w = World(a, b, min_agents=2)
    w.step()
    prepared(w)
    w.step()
    assert w.rc.phase is Phase.SETUP
    a.silent = True
    w.run_until(lambda: w.rc.phase is not Phase.SETUP)
    assert w.rc.phase is Phase.RELEASING
    assert w.rc.error == "the agent running @setup was lost"


def test_an_agent_back_after_the_start_does_not_hang_the_run():
    a, b = agents(2, 3)
    w = World(a, b, min_agents=2, bound=30.0)
    w.step()
    prepared(w)
    b.silent = b.deaf = True  # a network blip across the start
    w.step(MISSING_AFTER + 0.5)
    assert w.rc.phase is Phase.RUNNING
    assert Command.START not in w.commands(b.uuid)
    b.silent = b.deaf = False
    for _ in range(30):
        w.step()
        if b.state is AgentState.RUNNING:  # whatever the fix: a started agent finishes
            b.state = AgentState.DONE
    a.state = AgentState.DONE
    w.run_until(lambda: w.rc.finished, limit=300)


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_a_stop_reaches_an_agent_that_was_missing_when_it_was_asked(how):
    a, b = agents(2, 3)
    w = World(a, b, min_agents=2)
    w.step()
    prepared(w)
    w.step()
    b.silent = b.deaf = True
    w.step(MISSING_AFTER + 0.5)
    getattr(w.rc, how)()
    w.step()
    b.silent = b.deaf = False
    for _ in range(20):
        w.step()
    assert b.state is AgentState.STOPPING
    assert w.commands(b.uuid)[-1] is (Command.STOP if how == "stop" else Command.KILL)


# -- failures and timeouts ----------------------------------------------------------------


def test_prepare_failure_reports_the_agents_error_and_releases():
    a, b = agents(2, 3)
    w = World(a, b, min_agents=2)
    w.step()
    a.state = AgentState.PREPARED
    b.state = AgentState.FAILED
    b.error = "scenario.py:3: NameError: name 'x' is not defined"
    outs = w.step()
    assert w.rc.phase is Phase.RELEASING
    assert w.rc.error == "agent agent-b: scenario.py:3: NameError: name 'x' is not defined"
    assert {o.command for o in outs} == {Command.RELEASE}
    w.step()
    assert w.rc.phase is Phase.FINISHED
    assert w.rc.start_at is None


def test_prepare_failure_without_a_message():
    (a,) = agents(2)
    w = World(a)
    w.step()
    a.state = AgentState.FAILED
    w.step()
    assert w.rc.error == "agent agent-a: failed to prepare"


def test_no_agents_within_wait_agents():
    (a,) = agents(2)
    w = World(a, min_agents=2, wait_agents=30.0)
    w.run_until(lambda: w.rc.finished, dt=1.0)
    assert w.clock.monotonic() - w.rc._created == pytest.approx(31.0)
    assert w.rc.error == "only 1 of 2 agents were ready after 30s"
    assert w.rc.start_at is None
    assert w.sent == []


def test_prepare_timeout():
    a, b = agents(2, 3)
    w = World(a, b, min_agents=2)
    w.step()
    a.state = AgentState.PREPARED  # b never finishes loading
    since = w.clock.monotonic()
    w.run_until(lambda: w.rc.phase is not Phase.PREPARING, dt=1.0, limit=120)
    assert w.clock.monotonic() - since == pytest.approx(PREPARE_TIMEOUT + 1)
    assert w.rc.phase is Phase.RELEASING
    assert w.rc.error == "agents did not load the scenario within 60s"


def test_release_timeout():
    a, b = agents(2, 3)
    b.auto_release = False  # its cannons never exit
    w = World(a, b, min_agents=2)
    w.step()
    prepared(w)
    w.step()
    done(w)
    w.step()
    assert w.rc.phase is Phase.RELEASING
    since = w.clock.monotonic()
    w.run_until(lambda: w.rc.finished, dt=1.0)
    assert w.clock.monotonic() - since == pytest.approx(RELEASE_TIMEOUT + 1)
    assert w.rc.slots[a.uuid].totals is not None
    assert w.rc.slots[b.uuid].totals is None
    # b was re-sent RELEASE? No: it acknowledged it; it is only slow.
    assert w.commands(b.uuid).count(Command.RELEASE) == 1


def test_release_needs_totals_of_this_run_and_a_ready_agent():
    (a,) = agents(2)
    a.auto_release = False
    w = World(a)
    w.step()
    prepared(w)
    w.step()
    done(w)
    w.step()
    a.totals = AgentTotals(3, {}, {})  # totals, but still "done": not yet released
    w.step()
    assert w.rc.phase is Phase.RELEASING
    a.state = AgentState.READY
    w.step()
    assert w.rc.phase is Phase.FINISHED
    assert w.rc.slots[a.uuid].totals == AgentTotals(3, {}, {})
