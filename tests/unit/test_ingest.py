"""Ingest: which deltas the HQ accepts for a run, what it acknowledges, and the totals
check against each agent's own account."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cannonade.agent.outbox import Outbox
from cannonade.hq.ingest import AgentLedger, Ingest
from cannonade.model.aggregate import Aggregator
from cannonade.model.histogram import SparseBins
from cannonade.model.metrics import IntervalDelta, Key, SourceId, TrendDelta
from cannonade.protocol.control import AgentTotals
from cannonade.protocol.deltas import decode_delta, encode_delta

RUN = "run-1"
A, B = "agent-a", "agent-b"
T0 = 1_700_000_000
REQS = Key("http_reqs", "/", "GET")
FAILED = Key("http_req_failed", "/", "GET", "true")
DURATION = Key("http_req_duration", "/", "GET")


def delta(agent, seq, reqs=2.0, samples=0, run=RUN, second=None):
    trends = {}
    if samples:
        trends[DURATION] = TrendDelta(
            samples,
            0.1 * samples,
            0.1,
            0.1,
            SparseBins(np.array([7], np.int32), np.array([samples])),
        )
    return IntervalDelta(
        SourceId(agent, 0),
        seq,
        T0 + seq if second is None else second,
        counters={REQS: reqs, FAILED: 1.0},
        trends=trends,
        run_id=run,
    )


def ingest(*agents):
    ing = Ingest(RUN, Aggregator())
    for a in agents:
        ing.admit(a)
    return ing


def test_rejections_are_counted_by_reason():
    ing = ingest(A)
    assert not ing.add(delta(A, 0, run="run-0"))
    assert not ing.add(delta(B, 0))
    assert ing.add(delta(A, 0))
    assert not ing.add(delta(A, 0))
    assert not ing.add(delta(A, 0, reqs=99))  # same seq, other content: still a duplicate
    assert dict(ing.rejected) == {
        "delta for another run": 1,
        "delta from an agent outside the run": 1,
        "duplicate delta": 2,
    }
    assert ing.aggregator.counters == {REQS: 2.0, FAILED: 1.0}
    assert ing.agents[A].deltas == 1
    assert B not in ing.agents
    ing.admit(B)  # B joins the run: its deltas count from now on
    assert ing.add(delta(B, 0))
    assert ing.aggregator.counters == {REQS: 4.0, FAILED: 2.0}


def test_admit_twice_keeps_the_ledger():
    ing = ingest(A)
    ing.add(delta(A, 0))
    ing.admit(A)
    assert ing.agents[A].contiguous == 0


def test_contiguous_ack_with_out_of_order_seqs():
    ing = ingest(A, B)
    got = []
    for seq in (0, 2, 3, 5, 1, 4, 7):
        assert ing.add(delta(A, seq))
        got.append(ing.agents[A].contiguous)
    assert got == [0, 0, 0, 0, 3, 5, 5]
    ledger = ing.agents[A]
    assert ledger.seen == {7}  # only what is above the contiguous prefix is remembered
    assert ledger.deltas == 7
    assert ing.agents[B].contiguous == -1
    assert ing.add(delta(B, 1))
    assert ing.agents[B].contiguous == -1  # 0 has not arrived: nothing to acknowledge


@settings(max_examples=200, deadline=None)
@given(st.permutations(range(12)), st.integers(0, 12))
def test_contiguous_is_the_longest_received_prefix(order, n):
    ledger = AgentLedger()
    received = set()
    for seq in order[:n]:
        ledger.accept(seq)
        received.add(seq)
        prefix = 0
        while prefix in received:
            prefix += 1
        assert ledger.contiguous == prefix - 1
        assert ledger.seen == {s for s in received if s > prefix}


def test_per_agent_sums_feed_the_totals_check():
    ing = ingest(A, B)
    for seq in range(3):
        ing.add(delta(A, seq, reqs=2.0, samples=5))
    ing.add(delta(B, 0, reqs=1.0))
    assert ing.agents[A].counters == {"http_reqs": 6.0, "http_req_failed": 3.0}
    assert dict(ing.agents[A].trend_counts) == {"http_req_duration": 15}
    good = AgentTotals(3, {"http_reqs": 6.0, "http_req_failed": 3.0}, {"http_req_duration": 15})
    assert ing.complete(A, good)
    assert ing.discrepancies(A, good) == []


def test_missing_intervals_are_reported():
    ing = ingest(A)
    for seq in (0, 1, 3):
        ing.add(delta(A, seq))
    totals = AgentTotals(5, {"http_reqs": 10.0, "http_req_failed": 5.0}, {})
    assert not ing.complete(A, totals)
    assert ing.discrepancies(A, totals) == ["3 of 5 intervals never arrived"]
    ing.add(delta(A, 2))
    ing.add(delta(A, 4))
    assert ing.complete(A, totals)
    assert ing.discrepancies(A, totals) == []


def test_mismatched_counters_and_trend_counts_are_reported():
    ing = ingest(A)
    ing.add(delta(A, 0, reqs=2.0, samples=4))
    ing.add(delta(A, 1, reqs=3.0))
    totals = AgentTotals(
        2,
        {"http_reqs": 6.0, "http_req_failed": 2.0, "iterations": 1.0},
        {"http_req_duration": 5, "login": 2},
    )
    assert ing.discrepancies(A, totals) == [
        "http_reqs: agent sent 6, HQ stored 5",
        "iterations: agent sent 1, HQ stored 0",
        "http_req_duration: agent sent 5 samples, HQ stored 4",
        "login: agent sent 2 samples, HQ stored 0",
    ]


def test_counters_within_float_tolerance_agree():
    ing = ingest(A)
    for seq in range(10):
        ing.add(delta(A, seq, reqs=0.1))
    stored = ing.agents[A].counters["http_reqs"]
    assert stored != 1.0  # 0.1 added ten times
    totals = AgentTotals(10, {"http_reqs": 1.0, "http_req_failed": 10.0}, {})
    assert ing.discrepancies(A, totals) == []


def test_agent_side_losses_are_reported_too():
    ing = ingest(A)
    ing.add(delta(A, 0))
    totals = AgentTotals(
        1, {"http_reqs": 2.0, "http_req_failed": 1.0}, {}, dropped_deltas=4, cannon_gaps=2
    )
    assert ing.discrepancies(A, totals) == [
        "4 intervals dropped by a full agent buffer",
        "2 cannon intervals never reached the agent",
    ]


def test_an_agent_that_sent_nothing():
    ing = ingest(A)
    assert ing.complete(A, AgentTotals(0, {}, {}))
    assert ing.discrepancies(A, AgentTotals(0, {}, {})) == []
    assert not ing.complete("stranger", AgentTotals(0, {}, {}))
    assert ing.discrepancies("stranger", AgentTotals(2, {}, {})) == [
        "2 of 2 intervals never arrived"
    ]


def test_deltas_dropped_by_a_full_agent_buffer_do_not_stall_the_acks():
    up = False
    wire: list[bytes] = []

    def send(frame: bytes) -> bool:
        if up:
            wire.append(frame)
        return up

    box = Outbox(send, max_frames=3)
    ing = ingest(A)
    for seq in range(6):  # the HQ is away: 0, 1 and 2 are dropped
        box.put(seq, encode_delta(delta(A, seq)), now=float(seq))
    assert box.dropped == 3
    up = True
    box.resend(100.0)
    for frame in wire:
        ing.add(decode_delta(frame))
    assert ing.aggregator.counters[REQS] == 6.0  # the HQ holds all the agent still had
    # The agent's status says what it gave up on; the HQ stops waiting for it.
    assert box.dropped_upto == 2
    ing.settle(A, box.dropped_upto)
    assert ing.agents[A].contiguous == 5
    assert ing.agents[A].lost == 3
    box.ack(ing.agents[A].contiguous)
    assert len(box) == 0
