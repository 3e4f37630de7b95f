"""SecondMerger: an agent's cannons' deltas folded into one delta per second."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cannonade.agent.merge import GAUGE_MEMORY, SecondMerger
from cannonade.model.aggregate import Aggregator
from cannonade.model.histogram import N_BUCKETS, SparseBins
from cannonade.model.metrics import ErrorGroup, IntervalDelta, Key, Kind, SourceId, TrendDelta

AGENT = "agent-1"
RUN = "run-1"
T0 = 1_700_000_000
REQS = Key("http_reqs", "/", "GET")
CHECK = Key("checks", "ok", "", "true")
CART = Key("cart")
DURATION = Key("http_req_duration", "/", "GET")
LOGIN = Key("login")
VUS = Key("vus")
VUS_MAX = Key("vus_max")
SERIES = frozenset({"http_req_duration", "login"})


def delta(
    cannon, seq, second, reqs=1.0, vus=None, *, trend=None, errors=(), final=False, kinds=None
):
    gauges = {} if vus is None else {VUS: float(vus)}
    return IntervalDelta(
        SourceId(AGENT, cannon),
        seq,
        second,
        counters={REQS: float(reqs)} if reqs else {},
        gauges=gauges,
        trends={DURATION: trend} if trend is not None else {},
        errors=list(errors),
        custom_kinds=kinds or {},
        final=final,
        run_id=RUN,
    )


def td(index, counts):
    n = sum(counts)
    return TrendDelta(
        n,
        0.5 * n,
        0.25,
        0.75,
        SparseBins(np.array(index, np.int32), np.array(counts, np.int64)),
    )


# -- when a second goes out -------------------------------------------------------------


def test_a_second_waits_for_every_cannon():
    m = SecondMerger(AGENT, RUN, cannons=2, patience=2.0)
    assert m.add(delta(0, 0, T0, reqs=3))
    assert m.ready(T0 + 1.5) == []
    assert m.add(delta(1, 0, T0, reqs=4))
    [out] = m.ready(T0 + 1.5)
    assert (out.source, out.seq, out.second, out.run_id, out.final) == (
        SourceId(AGENT, 0),
        0,
        T0,
        RUN,
        False,
    )
    assert out.counters == {REQS: 7.0}
    assert m.ready(T0 + 1.6) == []
    assert m.sent == 1


def test_a_cannon_ahead_does_not_release_the_seconds_another_has_not_reported():
    m = SecondMerger(AGENT, RUN, cannons=3, patience=2.0)
    for s in range(3):
        m.add(delta(0, s, T0 + s))
    m.add(delta(1, 0, T0))
    m.add(delta(1, 1, T0 + 1))
    m.add(delta(2, 0, T0 + 1))  # cannon 2 skipped T0 (it had nothing): its latest is T0+1
    assert [d.second for d in m.ready(T0 + 2.1)] == [T0, T0 + 1]
    assert m.ready(T0 + 2.9) == []  # T0+2 waits for cannons 1 and 2 ...
    [late] = m.ready(T0 + 5.0)  # ... until it is patience old: 2 + 1 + 2.0
    assert late.second == T0 + 2
    assert late.counters == {REQS: 1.0}


def test_patience_bounds_the_wait_for_a_silent_cannon():
    m = SecondMerger(AGENT, RUN, cannons=2, patience=2.0)
    m.add(delta(0, 0, T0))
    assert m.ready(T0 + 2.999) == []
    [out] = m.ready(T0 + 3.0)
    assert out.second == T0


def test_a_finished_cannon_is_not_waited_for():
    m = SecondMerger(AGENT, RUN, cannons=2, patience=60.0)
    m.add(delta(0, 0, T0))
    m.add(delta(1, 0, T0 - 1, final=True))  # cannon 1 is done: its final delta
    assert [d.second for d in m.ready(T0)] == [T0 - 1, T0]
    m2 = SecondMerger(AGENT, RUN, cannons=2, patience=60.0)
    m2.add(delta(0, 0, T0))
    assert m2.ready(T0) == []
    m2.cannon_finished(1)  # died without a word
    assert [d.second for d in m2.ready(T0)] == [T0]


def test_duplicates_and_strangers_are_ignored():
    m = SecondMerger(AGENT, RUN, cannons=2, patience=2.0)
    assert m.add(delta(0, 0, T0, reqs=3))
    assert not m.add(delta(0, 0, T0, reqs=3))
    assert not m.add(delta(2, 0, T0, reqs=3))  # no cannon 2 on this agent
    assert m.add(delta(1, 0, T0, reqs=1))
    [out] = m.ready(T0 + 1)
    assert out.counters == {REQS: 4.0}
    assert not m.add(delta(1, 0, T0, reqs=1))  # a duplicate of a second already sent
    assert m.ready(T0 + 100) == []
    assert m.cannon_gaps() == 0


def test_cannon_gaps_count_missing_seqs():
    m = SecondMerger(AGENT, RUN, cannons=2)
    m.add(delta(0, 0, T0))
    m.add(delta(0, 3, T0 + 3))
    m.add(delta(1, 1, T0 + 1))
    assert m.cannon_gaps() == 3  # cannon 0 lacks 1, 2; cannon 1 lacks 0


# -- gauges are levels --------------------------------------------------------------------


def test_gauges_are_summed_over_cannons_not_over_deltas():
    m = SecondMerger(AGENT, RUN, cannons=2, patience=2.0)
    m.add(delta(0, 0, T0, vus=3))
    m.add(delta(0, 1, T0, vus=5))  # cannon 0 again for the same second: its level is 5
    m.add(delta(1, 0, T0, vus=4))
    [out] = m.ready(T0 + 1)
    assert out.gauges == {VUS: 9.0}
    assert out.counters == {REQS: 3.0}


def test_a_late_delta_resends_the_full_gauge_sum():
    m = SecondMerger(AGENT, RUN, cannons=3, patience=2.0)
    m.add(delta(0, 0, T0, reqs=2, vus=3))
    m.add(delta(1, 0, T0, reqs=5, vus=4))
    [first] = m.ready(T0 + 3.0)  # cannon 2 is late: patience
    assert (first.seq, first.second, first.counters, first.gauges) == (
        0,
        T0,
        {REQS: 7.0},
        {VUS: 7.0},
    )
    m.add(delta(2, 0, T0, reqs=1, vus=10))
    [again] = m.ready(T0 + 3.5)
    # Amounts: only what is new. Gauges: every cannon's level, because the HQ keeps only
    # the agent's last gauge value for the second.
    assert (again.seq, again.second, again.counters, again.gauges) == (
        1,
        T0,
        {REQS: 1.0},
        {VUS: 17.0},
    )
    assert m.ready(T0 + 3.6) == []  # nothing new: nothing sent
    # a late delta without gauges still re-sends them whole
    m.add(delta(2, 1, T0, reqs=1))
    [third] = m.ready(T0 + 4)
    assert (third.second, third.counters, third.gauges) == (T0, {REQS: 1.0}, {VUS: 17.0})


def test_gauges_of_different_keys_and_cannons():
    m = SecondMerger(AGENT, RUN, cannons=2)
    a = delta(0, 0, T0, vus=2)
    a.gauges[VUS_MAX] = 10.0
    b = delta(1, 0, T0, vus=1)
    m.add(a)
    m.add(b)
    [out] = m.ready(T0 + 1)
    assert out.gauges == {VUS: 3.0, VUS_MAX: 10.0}


# -- drain ------------------------------------------------------------------------------


def test_drain_final_marks_the_last_delta():
    m = SecondMerger(AGENT, RUN, cannons=2, patience=60.0)
    m.add(delta(0, 0, T0))
    m.add(delta(0, 1, T0 + 1))
    out = m.drain(final=True)
    assert [(d.seq, d.second, d.final) for d in out] == [(0, T0, False), (1, T0 + 1, True)]
    assert m.drain() == []


def test_drain_final_with_nothing_pending_makes_an_empty_final_delta():
    m = SecondMerger(AGENT, RUN, cannons=2, patience=2.0)
    m.add(delta(0, 0, T0, vus=2))
    m.add(delta(1, 0, T0, vus=3))
    [sent] = m.ready(T0 + 1)
    [end] = m.drain(final=True)
    assert (end.seq, end.second, end.final, end.run_id) == (1, T0, True, RUN)
    assert end.counters == {}
    assert end.trends == {}
    assert end.errors == []
    assert end.gauges == {VUS: 5.0}  # the levels again: harmless, they are levels
    assert sent.final is False
    assert m.sent == 2


def test_drain_final_of_a_merger_that_saw_nothing():
    m = SecondMerger(AGENT, RUN, cannons=1)
    [end] = m.drain(final=True)
    assert (end.seq, end.final, end.is_empty()) == (0, True, True)
    assert m.sent == 1
    assert m.sent_counters == {}
    assert m.sent_trends == {}


def test_drain_without_final_marks_nothing():
    m = SecondMerger(AGENT, RUN, cannons=2, patience=60.0)
    m.add(delta(0, 0, T0))
    assert [d.final for d in m.drain()] == [False]
    assert m.drain() == []


# -- totals -------------------------------------------------------------------------------


def test_sent_totals_follow_what_went_out():
    m = SecondMerger(AGENT, RUN, cannons=2, patience=2.0)
    m.add(delta(0, 0, T0, reqs=2, trend=td([1, 2], [3, 4])))
    m.add(delta(1, 0, T0, reqs=3, trend=td([2], [1]), kinds={"cart": Kind.COUNTER}))
    m.ready(T0 + 1)
    m.add(delta(1, 1, T0 + 1, reqs=0, trend=td([5], [2])))
    m.drain(final=True)
    assert m.sent == 2
    assert m.sent_counters == {"http_reqs": 5.0}
    assert dict(m.sent_trends) == {"http_req_duration": 10}


# -- the property: nothing is lost or counted twice ---------------------------------------

ERRORS = [("timeout", "read timed out"), ("ValueError", "bad"), ("reset", "")]


@st.composite
def cannon_delta(draw, cannon, seq, second):
    counters = {}
    for key in (REQS, CHECK, CART):
        if draw(st.booleans()):
            counters[key] = float(draw(st.integers(0, 1000)))
    trends = {}
    for key in (DURATION, LOGIN):
        if draw(st.booleans()):
            index = draw(st.lists(st.integers(0, N_BUCKETS - 1), min_size=1, max_size=6))
            index = sorted(set(index))
            counts = [draw(st.integers(1, 50)) for _ in index]
            n = sum(counts)
            lo = draw(st.integers(0, 100)) / 4
            hi = lo + draw(st.integers(0, 100)) / 4
            trends[key] = TrendDelta(
                n,
                draw(st.integers(0, 10**6)) / 8,  # exact in binary: sums do not round
                lo,
                hi,
                SparseBins(np.array(index, np.int32), np.array(counts, np.int64)),
            )
    errors = [
        ErrorGroup(kind, msg, draw(st.integers(1, 5)), f"tb {cannon}.{seq}")
        for kind, msg in ERRORS
        if draw(st.integers(0, 3)) == 0
    ]
    gauges = {VUS: float(draw(st.integers(0, 50)))}
    if draw(st.booleans()):
        gauges[VUS_MAX] = float(draw(st.integers(0, 50)))
    return IntervalDelta(
        SourceId(AGENT, cannon),
        seq,
        second,
        trends=trends,
        counters=counters,
        gauges=gauges,
        errors=errors,
        custom_kinds={"login": Kind.TREND, "cart": Kind.COUNTER},
        run_id=RUN,
    )


@st.composite
def histories(draw):
    """Each cannon's deltas (one per second it had something, in order), interleaved
    with duplicates, ticks of the clock and cannons finishing."""
    cannons = draw(st.integers(2, 3))
    streams = []
    for c in range(cannons):
        seconds = sorted(draw(st.sets(st.integers(0, 6), max_size=5)))
        stream = [draw(cannon_delta(c, seq, T0 + s)) for seq, s in enumerate(seconds)]
        if stream and draw(st.booleans()):
            stream[-1].final = True
        streams.append(stream)
    events = []
    pos = [0] * cannons
    sent = []
    while True:
        left = [c for c in range(cannons) if pos[c] < len(streams[c])]
        choice = draw(st.integers(0, 9))
        if not left and choice < 8:
            break
        if left and choice < 6:
            c = draw(st.sampled_from(left))
            d = streams[c][pos[c]]
            pos[c] += 1
            events.append(("add", d))
            sent.append(d)
        elif choice < 8:
            events.append(("tick", draw(st.sampled_from([0.0, 0.5, 1.0, 2.5, 4.0]))))
        elif sent and choice == 8:
            events.append(("add", draw(st.sampled_from(sent))))  # a duplicate
        else:
            events.append(("finished", draw(st.integers(0, cannons - 1))))
    return cannons, draw(st.sampled_from([0.0, 1.0, 2.0])), events


def totals(agg: Aggregator):
    trends = {
        k: (h.count, h.sum, h.min, h.max, h.sparse().index.tolist(), h.sparse().count.tolist())
        for k, h in agg.trends.items()
    }
    errors = {k: g.count for k, g in agg.errors.items()}
    series = {}
    for s, p in agg.series.items():
        hists = {
            k: (h.count, h.sum, h.sparse().index.tolist(), h.sparse().count.tolist())
            for k, h in p.trends.items()
        }
        series[s] = (dict(p.counters), hists, p.gauges)
    return trends, dict(agg.counters), errors, series


def non_empty(series):
    return {s: v for s, v in series.items() if any(v)}


@settings(max_examples=150, deadline=None)
@given(histories())
def test_merged_deltas_add_up_to_the_cannons_deltas(history):
    cannons, patience, events = history
    m = SecondMerger(AGENT, RUN, cannons, patience=patience)
    inputs, outputs = Aggregator(SERIES), Aggregator(SERIES)
    latest = dict.fromkeys(range(cannons), -1)
    done: set[int] = set()
    now = float(T0)
    fresh_inputs = 0
    for what, arg in events:
        if what == "add":
            fresh = inputs.add(arg)
            assert m.add(arg) is fresh
            if fresh:
                fresh_inputs += 1
                latest[arg.source.cannon] = max(latest[arg.source.cannon], arg.second)
                if arg.final:
                    done.add(arg.source.cannon)
        elif what == "finished":
            m.cannon_finished(arg)
            done.add(arg)
        else:
            now += arg
            for d in m.ready(now):
                # never before every running cannon reached the second, or patience
                waiting = [latest[c] for c in range(cannons) if c not in done]
                assert all(s >= d.second for s in waiting) or d.second + 1 + patience <= now
                assert not d.final
                assert outputs.add(d)
    for d in m.drain(final=True):
        assert outputs.add(d)
    out = [(t.highest, t.gaps(), t.finished) for t in outputs.sources.values()]
    assert list(outputs.sources) == [(AGENT, 0)]
    assert out == [(m.sent - 1, [], True)]  # seqs 0..n-1, no gap, the last one final
    # a second goes out again only for something new (the +1: an empty final delta)
    assert m.sent <= fresh_inputs + 1

    want_trends, want_counters, want_errors, want_series = totals(inputs)
    got_trends, got_counters, got_errors, got_series = totals(outputs)
    assert got_counters == want_counters
    assert got_trends == want_trends
    assert got_errors == want_errors
    # every second: the same amounts and histograms, and the gauge levels summed over
    # the cannons (the HQ keeps the last value the agent sent for a second)
    assert non_empty(got_series) == non_empty(want_series)

    metrics_sum: dict[str, float] = {}
    for k, v in want_counters.items():
        metrics_sum[k.metric] = metrics_sum.get(k.metric, 0.0) + v
    trend_counts: dict[str, int] = {}
    for k, v in want_trends.items():
        trend_counts[k.metric] = trend_counts.get(k.metric, 0) + v[0]
    assert m.sent_counters == metrics_sum
    assert dict(m.sent_trends) == trend_counts
    assert m.cannon_gaps() == 0


# -- limits -------------------------------------------------------------------------------


def test_gauge_memory_is_bounded():
    m = SecondMerger(AGENT, RUN, cannons=1, patience=0.0)
    for i in range(3 * GAUGE_MEMORY):
        m.add(delta(0, i, T0 + i, vus=i))
        m.ready(T0 + i + 1)
    assert len(m._gauges) <= GAUGE_MEMORY + 2


@pytest.mark.parametrize("patience", [0.0, 2.0])
def test_seqs_are_contiguous_across_ready_and_drain(patience):
    m = SecondMerger(AGENT, RUN, cannons=2, patience=patience)
    seqs = []
    for i in range(10):
        m.add(delta(i % 2, i // 2, T0 + i))
        seqs += [d.seq for d in m.ready(T0 + i + 0.5)]
    seqs += [d.seq for d in m.drain(final=True)]
    assert seqs == list(range(len(seqs)))
    assert m.sent == len(seqs)
