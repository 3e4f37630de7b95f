"""A stored run's summary, computed from the stored data only: what ``cannonade show``
prints, the HTML report renders and the HTTP API serves."""

from __future__ import annotations

from cannonade.model.summary import AgentLine, RunInfo, Summary, compute_summary
from cannonade.model.thresholds import parse_threshold
from cannonade.storage import RunStatus, StoredRun


def stored_summary(stored: StoredRun) -> Summary:
    """The summary of a stored run, computed from the stored data only. Raises
    ThresholdError if a stored expression no longer parses."""
    agg = stored.aggregator
    started = stored.started if stored.started is not None else stored.created
    if stored.ended is not None:
        ended = stored.ended
    else:  # still running, or never started: up to the last stored second
        last = agg.last_second
        ended = max(started, float(last + 1)) if last is not None else started
    info = RunInfo(
        started=started,
        ended=ended,
        interrupted=stored.status == RunStatus.INTERRUPTED,
        options=stored.options,
        scenario=stored.scenario,
        run_id=stored.id,
        agents=agent_lines(stored),
        notes=tuple(e.message for e in stored.events if e.kind in ("error", "totals")),
    )
    thresholds = [parse_threshold(e, kinds=agg.kinds) for e in stored.thresholds]
    return compute_summary(agg, info, thresholds)


def agent_lines(stored: StoredRun) -> tuple[AgentLine, ...]:
    """Each agent's part in a stored run, from its status timeline and the HQ's record
    of its interval sequence numbers."""
    out = []
    for a in stored.agents:
        losses = sum(1 for _, status in a.timeline if status == "missing")
        last_at, last = a.timeline[-1] if a.timeline else (None, "")
        source = stored.aggregator.sources.get((a.id, 0))
        intervals = source.highest + 1 - len(source.gaps()) if source is not None else 0
        out.append(
            AgentLine(
                a.name,
                a.id,
                a.cannons,
                last,
                last_at if last == "missing" else None,
                losses,
                intervals,
            )
        )
    return tuple(out)
