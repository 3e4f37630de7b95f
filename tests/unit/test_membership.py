"""Roster: which agents the HQ knows and which of them are alive (with a fake clock)."""

from cannonade.clock import FakeClock
from cannonade.hq.membership import MISSING_AFTER, Change, Liveness, Roster
from cannonade.protocol.control import AgentReport, Status, decode_status

A = "aaaaaaaa-0000-0000-0000-000000000001"
B = "bbbbbbbb-0000-0000-0000-000000000002"
C = "cccccccc-0000-0000-0000-000000000003"


def status(uuid, state="ready", cannons=2, name="", report=True, **kw):
    return Status(
        turret=name,
        status=state,
        uuid=uuid,
        cannons=cannons,
        cannonade=AgentReport(hostname="h", pid=1) if report else None,
        **kw,
    )


def test_join_status_missing_and_back():
    clock = FakeClock()
    roster = Roster(clock)
    wall = clock.wall()
    assert roster.observe(status(A, name="alpha")) == [Change(A, "alpha", "joined", "ready", wall)]
    m = roster.members[A]
    assert (m.name, m.cannons, m.status, m.liveness, m.first_seen) == (
        "alpha",
        2,
        "ready",
        Liveness.ALIVE,
        wall,
    )
    assert m.is_cannonade
    clock.advance(1.0)
    assert roster.observe(status(A, name="alpha")) == []  # a heartbeat: nothing changed
    clock.advance(0.5)
    assert roster.observe(status(A, "preparing", name="alpha")) == [
        Change(A, "alpha", "status", "preparing", clock.wall())
    ]
    clock.advance(MISSING_AFTER)
    assert roster.sweep() == []  # exactly 3 s silent: not yet
    clock.advance(0.01)
    assert roster.sweep() == [Change(A, "alpha", "missing", "preparing", clock.wall())]
    assert m.liveness is Liveness.MISSING
    assert roster.alive() == []
    assert roster.sweep() == []  # reported once
    clock.advance(60)
    assert roster.observe(status(A, "ready", name="alpha")) == [
        Change(A, "alpha", "back", "ready", clock.wall()),
        Change(A, "alpha", "status", "ready", clock.wall()),
    ]
    assert m.liveness is Liveness.ALIVE
    assert m.first_seen == wall  # it is the same member
    clock.advance(1)
    assert roster.sweep() == []


def test_back_with_the_same_status_is_one_change():
    clock = FakeClock()
    roster = Roster(clock)
    roster.observe(status(A))
    clock.advance(4)
    assert [c.what for c in roster.sweep()] == ["missing"]
    assert roster.observe(status(A)) == [Change(A, A[:8], "back", "ready", clock.wall())]


def test_touch_keeps_an_agent_alive_but_does_not_revive_it():
    clock = FakeClock()
    roster = Roster(clock)
    roster.observe(status(A))
    roster.observe(status(B))
    for _ in range(5):
        clock.advance(2)
        roster.touch(A)  # A's deltas keep coming, its status does not
        roster.touch(C)  # unknown: nothing happens
    changes = roster.sweep()
    assert [(c.uuid, c.what) for c in changes] == [(B, "missing")]
    assert [m.uuid for m in roster.alive()] == [A]
    assert C not in roster.members
    roster.touch(B)  # a delta from a missing agent does not bring it back ...
    assert roster.members[B].liveness is Liveness.MISSING
    assert [c.what for c in roster.observe(status(B))] == ["back"]  # ... its status does


def test_status_updates_fields():
    clock = FakeClock()
    roster = Roster(clock)
    roster.observe(status(A, name="alpha", cannons=2, rampup=1.5, script="s.py"))
    roster.observe(status(A, name="", cannons="8", rampup="30", script="t.py", report=False))
    m = roster.members[A]
    assert (m.name, m.cannons, m.rampup, m.script, m.report) == ("alpha", 8, "30", "t.py", None)
    assert not m.is_cannonade


def test_ready_is_alive_ready_with_cannons_oldest_first():
    clock = FakeClock()
    roster = Roster(clock)
    roster.observe(status(C))
    clock.advance(1)
    roster.observe(status(B))
    roster.observe(status(A))  # same wall time as B: uuid breaks the tie
    clock.advance(1)
    roster.observe(status("dddd", "running"))
    roster.observe(status("eeee", cannons=0))
    roster.observe(status("ffff", "READY"))  # OCT's spelling counts
    assert [m.uuid for m in roster.ready()] == [C, A, B, "ffff"]
    # a status change does not reorder: the assignment stays stable
    for uuid in (A, B, C):
        roster.observe(status(uuid, "preparing"))
        roster.observe(status(uuid, "ready"))
    assert [m.uuid for m in roster.ready()] == [C, A, B, "ffff"]
    clock.advance(2.5)
    roster.observe(status(A))
    roster.observe(status(C))
    roster.observe(status("ffff", "READY"))
    clock.advance(1)
    roster.sweep()  # B went silent
    assert [m.uuid for m in roster.ready()] == [C, A, "ffff"]


def test_oct_turrets_are_members_but_not_cannonade_agents():
    clock = FakeClock()
    roster = Roster(clock)
    oct_status = decode_status(
        b'{"turret": "navigation", "status": "READY", "uuid": "d7b8a1cc-639a-405c-9b16-'
        b'62ce5cd66f36", "rampup": "30", "script": "tests/navigation.py", "cannons": "250"}'
    )
    [joined] = roster.observe(oct_status)
    assert (joined.name, joined.what, joined.status) == ("navigation", "joined", "READY")
    m = roster.members[oct_status.uuid]
    assert (m.cannons, m.rampup, m.script) == (250, "30", "tests/navigation.py")
    assert not m.is_cannonade
    assert roster.ready() == [m]  # ready as OCT means it; the run controller filters


def test_missing_after_is_configurable():
    clock = FakeClock()
    roster = Roster(clock, missing_after=10.0)
    roster.observe(status(A))
    clock.advance(9.5)
    assert roster.sweep() == []
    clock.advance(1)
    assert [c.what for c in roster.sweep()] == ["missing"]
