import pytest

from cannonade.config import (
    ArrivalRate,
    Partition,
    Stage,
    parse_duration,
    parse_rate,
    parse_stages,
    parse_users,
)
from cannonade.engine.executors import arrival_times, stage_value
from cannonade.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("1m30s", 90), ("250ms", 0.25), ("2h", 7200), ("1.5", 1.5), ("500us", 5e-4)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "10x", "1m 30", "-5", "s", "inf"])
def test_bad_durations_name_the_option(text):
    with pytest.raises(ConfigError, match="--duration"):
        parse_duration(text, "--duration")


def test_users_and_rates():
    assert parse_users("10:50:100") == (10, 50, 100)
    assert parse_rate("500/s") == 500
    assert parse_rate("30/m") == 0.5
    assert parse_rate("7") == 7
    for bad in ("0", "a:b", "10::2", "-1"):
        with pytest.raises(ConfigError, match="--users"):
            parse_users(bad)
    for bad in ("fast", "5/x", "-3/s"):
        with pytest.raises(ConfigError, match="--rate"):
            parse_rate(bad)


def test_stages():
    assert parse_stages("30s:100,1m:100,10s:0") == (
        Stage(30, 100),
        Stage(60, 100),
        Stage(10, 0),
    )
    assert parse_stages("10s:200/s", rate=True) == (Stage(10, 200),)
    with pytest.raises(ConfigError, match="stage 2"):
        parse_stages("30s:100,oops")
    with pytest.raises(ConfigError, match="whole number"):
        parse_stages("30s:1.5")


def test_partitions_cover_everything_exactly_once():
    for count in (1, 2, 3, 5):
        parts = [Partition(i, count) for i in range(count)]
        for total in (0, 1, 7, 100):
            assert sum(p.share(total) for p in parts) == total
            owners = [sum(p.owns(j) for p in parts) for j in range(total)]
            assert all(o == 1 for o in owners)
    with pytest.raises(ConfigError):
        Partition(2, 2)


def test_constant_arrivals_are_exact():
    times = list(arrival_times(ArrivalRate(rate=200, duration=5)))
    assert len(times) == 1000
    assert times[0] == 0
    assert times[-1] == pytest.approx(4.995)


def test_ramped_arrivals_follow_the_integral_of_the_rate():
    # 0 -> 100/s over 10 s is 500 arrivals, then 100/s for 5 s is 500 more.
    model = ArrivalRate(rate=0, stages=(Stage(10, 100), Stage(5, 100)))
    times = list(arrival_times(model))
    assert len(times) == 1000
    assert times == sorted(times)
    # Half of the ramp's arrivals come in its last 30 % (count grows with t squared).
    assert sum(1 for t in times if t < 10 * (0.5**0.5)) == pytest.approx(250, abs=1)


def test_stage_interpolation():
    stages = (Stage(10, 10), Stage(10, 10), Stage(10, 0))
    assert stage_value(0, stages, 0) == 0
    assert stage_value(0, stages, 5) == 5
    assert stage_value(0, stages, 15) == 10
    assert stage_value(0, stages, 25) == 5
    assert stage_value(0, stages, 99) == 0


def _ns(*argv):
    import argparse

    from cannonade.launch.options import add_run_arguments

    p = argparse.ArgumentParser()
    add_run_arguments(p)
    return p.parse_args(list(argv))


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--rate", "10/s", "-d", "5s", "--rampup", "3"], "--rampup"),
        (["--rate", "10/s", "-d", "5s", "-u", "4"], "--users"),
        (["--rate-stages", "10s:5/s", "-d", "5s"], "--duration"),
        (["--stages", "10s:5", "-d", "5s"], "--duration"),
        (["--stages", "10s:5", "--rampup", "2"], "--rampup"),
        (["--stages", "10s:5", "-u", "1:2"], "--users"),
        (["-u", "3", "--iterations", "10", "-d", "5s"], "--duration"),
        (["-u", "3", "--hits", "2", "--max-vus", "5"], "--max-vus"),
    ],
)
def test_options_a_model_would_ignore_are_refused(argv, named):
    from cannonade.launch.options import build_model

    with pytest.raises(ConfigError, match=named):
        build_model(_ns(*argv))


def test_model_choice():
    from cannonade.config import Cycles, RampingVus, SharedIterations
    from cannonade.launch.options import build_model

    assert build_model(_ns("-u", "2:3", "--hits", "2")) == Cycles((2, 3), None, 2, 0.0)
    assert build_model(_ns("-u", "5", "-d", "1m", "--rampup", "10")) == Cycles((5,), 60, None, 10)
    assert build_model(_ns()) == Cycles((1,), None, 1, 0.0)
    assert isinstance(build_model(_ns("--stages", "5s:3")), RampingVus)
    assert build_model(_ns("-u", "4", "--iterations", "9")) == SharedIterations(4, 9)
    model = build_model(_ns("--rate", "200/s", "-d", "5s", "--max-vus", "2"))
    assert isinstance(model, ArrivalRate)
    assert (model.rate, model.duration, model.max_vus) == (200, 5, 2)
