"""What the HQ does with each delta of a run: dedupe, merge, store, acknowledge.

Deltas are accepted only for the current run and only from agents that are in it;
anything else is rejected and counted by reason. The per-agent sums kept here are
what the end-of-run totals check compares with each agent's own account.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from cannonade.model.aggregate import Aggregator
from cannonade.model.metrics import IntervalDelta
from cannonade.protocol.control import AgentTotals


@dataclass(slots=True)
class AgentLedger:
    contiguous: int = -1  # every seq up to this one has arrived
    seen: set[int] = field(default_factory=set)
    counters: dict[str, float] = field(default_factory=dict)
    trend_counts: Counter[str] = field(default_factory=Counter)
    deltas: int = 0
    acked: int = -1  # the last ack published
    lost: int = 0  # seqs the agent gave up on (its buffer was full) that never arrived

    def settle(self, upto: int) -> None:
        """The agent will never send seqs up to ``upto`` that are not here yet."""
        if upto <= self.contiguous:
            return
        here = {s for s in self.seen if s <= upto}
        self.lost += upto - self.contiguous - len(here)
        self.seen -= here
        self.contiguous = upto
        self._advance()

    def _advance(self) -> None:
        while self.contiguous + 1 in self.seen:
            self.contiguous += 1
            self.seen.discard(self.contiguous)

    def accept(self, seq: int) -> None:
        if seq > self.contiguous:
            self.seen.add(seq)
        self.deltas += 1
        self._advance()


@dataclass(slots=True)
class Ingest:
    run_id: str
    aggregator: Aggregator
    agents: dict[str, AgentLedger] = field(default_factory=dict)
    rejected: Counter[str] = field(default_factory=Counter)

    def admit(self, uuid: str) -> None:
        self.agents.setdefault(uuid, AgentLedger())

    def add(self, delta: IntervalDelta) -> bool:
        """True when the delta is new and was merged."""
        if delta.run_id != self.run_id:
            self.rejected["delta for another run"] += 1
            return False
        ledger = self.agents.get(delta.source.agent)
        if ledger is None:
            self.rejected["delta from an agent outside the run"] += 1
            return False
        if not self.aggregator.add(delta):
            self.rejected["duplicate delta"] += 1
            return False
        ledger.accept(delta.seq)
        for key, n in delta.counters.items():
            ledger.counters[key.metric] = ledger.counters.get(key.metric, 0.0) + n
        for key, t in delta.trends.items():
            ledger.trend_counts[key.metric] += t.count
        return True

    def settle(self, uuid: str, upto: int) -> None:
        ledger = self.agents.get(uuid)
        if ledger is not None:
            ledger.settle(upto)

    def complete(self, uuid: str, totals: AgentTotals) -> bool:
        ledger = self.agents.get(uuid)
        return ledger is not None and ledger.contiguous + 1 >= totals.deltas

    def discrepancies(self, uuid: str, totals: AgentTotals) -> list[str]:
        """Where the stored series disagree with what the agent says it sent."""
        ledger = self.agents.get(uuid, AgentLedger())
        out = []
        if ledger.contiguous + 1 < totals.deltas:
            missing = totals.deltas - (ledger.contiguous + 1)
            out.append(f"{missing} of {totals.deltas} intervals never arrived")
        else:
            for metric in sorted(set(totals.counters) | set(ledger.counters)):
                sent, got = totals.counters.get(metric, 0.0), ledger.counters.get(metric, 0.0)
                if abs(sent - got) > 1e-6 * max(1.0, abs(sent)):
                    out.append(f"{metric}: agent sent {sent:g}, HQ stored {got:g}")
            for metric in sorted(set(totals.trend_counts) | set(ledger.trend_counts)):
                sent_n = totals.trend_counts.get(metric, 0)
                got_n = ledger.trend_counts.get(metric, 0)
                if sent_n != got_n:
                    out.append(f"{metric}: agent sent {sent_n} samples, HQ stored {got_n}")
        if totals.dropped_deltas:
            out.append(f"{totals.dropped_deltas} intervals dropped by a full agent buffer")
        if totals.cannon_gaps:
            out.append(f"{totals.cannon_gaps} cannon intervals never reached the agent")
        return out
