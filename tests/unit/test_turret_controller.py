"""The HQ's run for OCT turrets: wait for N ready turrets, broadcast start, stop after the
duration, collect; Aborted and silent turrets leave the run."""

from cannonade.clock import FakeClock
from cannonade.hq.membership import Roster
from cannonade.hq.run import Phase, RunSpec
from cannonade.hq.turrets import COLLECT, TurretRunController
from cannonade.protocol.control import Command, Status


def status(uuid, value="ready", name="navigation"):
    return Status(turret=name, status=value, uuid=uuid, rampup=1, script="v_user.py", cannons=2)


def world(min_agents=2, duration=10.0, wait=5.0):
    clock = FakeClock()
    roster = Roster(clock)
    spec = RunSpec("r1", None, {}, min_agents=min_agents, wait_agents=wait, bound=duration)
    return clock, roster, TurretRunController(spec, roster, clock, duration=duration)


def commands(outs):
    return [(o.channel, o.command, o.msg) for o in outs]


def test_waits_for_n_turrets_then_broadcasts_start_and_stop():
    clock, roster, rc = world()
    roster.observe(status("t1", "READY"))  # status values in any case
    assert commands(rc.tick()) == [("", Command.STATUS_REQUEST, None)]
    assert rc.phase is Phase.WAITING
    roster.observe(status("t2", "ready"))
    clock.advance(0.5)
    assert commands(rc.tick()) == [("", Command.START, "open fire")]
    assert rc.phase is Phase.RUNNING
    assert set(rc.slots) == {"t1", "t2"}
    starts = []
    for i in range(79):  # 0.125 s steps: exact in binary
        clock.advance(0.125)
        roster.observe(status("t1", "Running"))
        roster.observe(status("t2", "Running"))
        if ("", Command.START, "open fire") in commands(rc.tick()):
            starts.append((i + 1) * 0.125)
    # Repeated twice for turrets whose subscription arrived after their status.
    assert starts == [0.5, 1.5]
    clock.advance(0.125)
    assert ("", Command.STOP, "stop") in commands(rc.tick())
    assert rc.phase is Phase.RELEASING
    clock.advance(COLLECT)
    rc.tick()
    assert rc.finished
    assert not rc.degraded
    assert rc.load_ended_at is not None


def test_an_aborted_turret_leaves_the_run_at_that_time():
    clock, roster, rc = world()
    roster.observe(status("t1"))
    roster.observe(status("t2"))
    rc.tick()
    clock.advance(2.0)
    roster.observe(status("t2", "Aborted"))
    rc.tick()
    assert rc.slots["t2"].lost_at == clock.wall()
    assert rc.degraded
    assert [s.uuid for s in rc.live()] == ["t1"]


def test_too_few_turrets_is_an_error_and_cannonade_agents_do_not_count():
    clock, roster, rc = world(min_agents=1, wait=5.0)
    from cannonade.protocol.control import AgentReport

    agent = Status(turret="a", status="ready", uuid="a1", cannons=2, cannonade=AgentReport())
    roster.observe(agent)
    for _ in range(60):
        clock.advance(0.1)
        rc.tick()
    assert rc.finished
    assert rc.error == "only 0 of 1 turrets were ready after 5s"


def test_stop_and_kill_are_broadcast():
    for how, expected in (
        ("stop", (Command.STOP, "premature stop")),
        ("kill", (Command.KILL, None)),
    ):
        clock, roster, rc = world(min_agents=1)
        roster.observe(status("t1"))
        rc.tick()
        getattr(rc, how)()
        clock.advance(0.1)
        assert ("", *expected) in commands(rc.tick())
        assert rc.stopped


def test_a_second_ctrl_c_after_the_stop_still_kills():
    clock, roster, rc = world(min_agents=1)
    roster.observe(status("t1"))
    rc.tick()
    rc.stop()
    clock.advance(0.1)
    assert ("", Command.STOP, "premature stop") in commands(rc.tick())
    rc.kill()
    clock.advance(0.1)
    assert ("", Command.KILL, None) in commands(rc.tick())
    clock.advance(0.1)
    assert ("", Command.KILL, None) not in commands(rc.tick())  # once
