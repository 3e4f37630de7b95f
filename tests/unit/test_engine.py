"""The engine's executors, in process, with scenarios that do no I/O."""

import asyncio
import textwrap

import pytest

from cannonade.config import (
    ArrivalRate,
    Cycles,
    EngineOptions,
    Partition,
    RampingVus,
    SharedIterations,
    Stage,
)
from cannonade.engine.engine import Engine
from cannonade.model.aggregate import Aggregator
from cannonade.model.metrics import SourceId
from cannonade.model.recorder import Recorder
from cannonade.scenarios.loader import load_path

COUNTING = """
from cannonade import scenario, setup, teardown, vu_setup

SEEN = []

@setup
async def s(vu):
    return {"token": "abc"}

@vu_setup
async def v(vu):
    vu.state["n"] = 0

@scenario(weight=1)
async def a(vu):
    assert vu.setup_data == {"token": "abc"}
    vu.state["n"] += 1
    SEEN.append(vu.id)
    await vu.sleep(0)

@scenario(weight=1)
async def b(vu):
    vu.check(vu.id >= 0, "id is global")
    await vu.sleep(0.001)
"""


@pytest.fixture
def counting(tmp_path):
    p = tmp_path / "counting.py"
    p.write_text(textwrap.dedent(COUNTING))
    return load_path(p)


def run(scenario, model, partitions=1, **kw):
    agg = Aggregator()

    async def main():
        engines = [
            Engine(
                scenario,
                EngineOptions(model=model, graceful_stop=5, seed=1, **kw),
                agg.add,
                partition=Partition(i, partitions),
                recorder=Recorder(SourceId("a", i)),
                # Setup runs once per run (partition 0); the others are handed its data,
                # as the HQ hands it to agents.
                setup_data=None if i == 0 else {"token": "abc"},
            )
            for i in range(partitions)
        ]
        await asyncio.gather(*(e.run() for e in engines))

    asyncio.run(main())
    return agg


@pytest.mark.parametrize("partitions", [1, 2, 3])
def test_cycles_with_hits_are_exact_across_partitions(counting, partitions):
    agg = run(counting, Cycles(users=(2, 3), hits=2), partitions)
    assert agg.count("iterations") == 10
    assert agg.count("iteration_errors") == 0
    assert agg.count("checks", tag="true") == agg.count("iterations", name="b")
    assert not agg.gaps()


@pytest.mark.parametrize("partitions", [1, 2, 4])
def test_shared_iterations_are_exact(counting, partitions):
    agg = run(counting, SharedIterations(vus=5, iterations=37), partitions)
    assert agg.count("iterations") == 37


def test_duration_cycles_stop_on_time(counting):
    agg = run(counting, Cycles(users=(3,), duration=0.5))
    assert agg.count("iterations") > 10
    assert agg.gauge("vus").max <= 3


def test_ramping_vus_reach_their_target(counting):
    agg = run(counting, RampingVus(stages=(Stage(0.3, 4), Stage(0.5, 4))))
    assert agg.gauge("vus_max").max == 4
    assert agg.count("iterations") > 0


@pytest.mark.parametrize("partitions", [1, 2])
def test_arrival_rate_starts_every_arrival(counting, partitions):
    agg = run(counting, ArrivalRate(rate=100, duration=1.0), partitions)
    assert agg.count("iterations") + agg.count("dropped_iterations") == 100
    assert agg.count("iterations") >= 98


def test_exceptions_are_grouped_with_one_sample(tmp_path):
    p = tmp_path / "boom.py"
    p.write_text(
        textwrap.dedent("""
        from cannonade import scenario

        @scenario
        async def boom(vu):
            raise KeyError(vu.iteration % 2)
    """)
    )
    agg = run(load_path(p), Cycles(users=(2,), hits=3))
    assert agg.count("iterations") == 6
    assert agg.count("iteration_errors") == 6
    groups = sorted((e.message, e.count) for e in agg.errors.values())
    assert groups == [("0", 4), ("1", 2)]
    assert all("Traceback" in e.sample and "boom.py" in e.sample for e in agg.errors.values())


def test_failing_setup_runs_no_load(tmp_path):
    p = tmp_path / "nosetup.py"
    p.write_text(
        textwrap.dedent("""
        from cannonade import scenario, setup

        @setup
        async def s(vu):
            raise RuntimeError("no database")

        @scenario
        async def a(vu):
            pass
    """)
    )
    agg = run(load_path(p), Cycles(users=(2,), hits=3))
    assert agg.count("iterations") == 0
    assert [e.kind for e in agg.errors.values()] == ["RuntimeError"]


def test_sys_exit_and_self_raised_cancel_are_iteration_errors(tmp_path):
    p = tmp_path / "rude.py"
    p.write_text(
        textwrap.dedent("""
        import asyncio, sys
        from cannonade import scenario

        @scenario
        async def rude(vu):
            if vu.iteration % 2:
                sys.exit(3)
            raise asyncio.CancelledError()
    """)
    )
    agg = run(load_path(p), Cycles(users=(2,), hits=5))
    assert agg.count("iterations") == 10
    assert agg.count("iteration_errors") == 10
    assert agg.count("interrupted_iterations") == 0
    assert sorted(e.kind for e in agg.errors.values()) == ["CancelledError", "SystemExit"]


def test_max_duration_bounds_the_whole_run_not_each_cycle(tmp_path):
    p = tmp_path / "slow.py"
    p.write_text(
        textwrap.dedent("""
        from cannonade import scenario

        @scenario
        async def slow(vu):
            await vu.sleep(0.05)
    """)
    )
    agg = Aggregator()

    async def main():
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        engine = Engine(
            load_path(p),
            EngineOptions(
                model=Cycles(users=(1, 1, 1), hits=1000), max_duration=0.6, graceful_stop=0
            ),
            agg.add,
        )
        await engine.run()
        return loop.time() - t0

    elapsed = asyncio.run(main())
    assert elapsed < 1.5
    assert 5 <= agg.count("iterations") <= 14


@pytest.mark.parametrize(("vus", "partitions"), [(2, 5), (1, 3), (3, 4)])
def test_shared_iterations_with_more_partitions_than_vus(counting, vus, partitions):
    agg = run(counting, SharedIterations(vus=vus, iterations=10), partitions)
    assert agg.count("iterations") == 10


def test_hard_stop_cancels_and_still_flushes(tmp_path):
    p = tmp_path / "hang.py"
    p.write_text(
        textwrap.dedent("""
        from cannonade import scenario, vu_teardown

        @scenario
        async def hang(vu):
            await vu.sleep(0.01)
            vu.counter("before_hang").add(1)
            await vu.sleep(60)

        @vu_teardown
        async def slow_bye(vu):
            await vu.sleep(60)
    """)
    )
    agg = Aggregator()

    async def main():
        engine = Engine(load_path(p), EngineOptions(model=Cycles(users=(3,), duration=60)), agg.add)
        task = asyncio.create_task(engine.run())
        await asyncio.sleep(0.3)
        engine.stop()
        await asyncio.sleep(0.1)
        engine.kill()
        result = await asyncio.wait_for(task, 5)
        return result

    result = asyncio.run(main())
    assert result.stopped_early
    assert agg.count("before_hang") == 3
    assert agg.count("interrupted_iterations") == 3
    assert not agg.unfinished()


def test_a_metric_name_that_is_not_text_is_an_error_where_it_is_used():
    from cannonade.engine.vu import Metrics
    from cannonade.model.recorder import Recorder

    metrics = Metrics(Recorder())
    with pytest.raises(TypeError, match=r"a check's name is text, got True: vu.check\(condition"):
        metrics.check(True, ok=True)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a counter's name is text"):
        metrics.counter(7)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="a timer's name is text"):
        metrics.timer_samples(None)  # type: ignore[arg-type]
    metrics.check("fine", ok=True)  # the cannon records on, its intervals still encode
