"""The HQ's SQLite storage: runs, agents, events and every run's merged measurements.

    store = Store.open("cannonade.db")
    store.create_run(run_id, scenario=..., scenario_sha256=..., options=..., thresholds=...,
                     created=now)
    w = store.writer(run_id)
    w.add(delta)        # each accepted delta; in memory
    w.flush()           # about once a second, and at the end: one transaction
    store.load(run_id)  # the run back, with an Aggregator rebuilt from the rows

See ``store.py`` for the threading contract and ``schema.py`` for the tables.
"""

from cannonade.storage.errors import StorageError
from cannonade.storage.queue import BundleRecord, QueuedRun
from cannonade.storage.records import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    AgentRecord,
    EventRecord,
    Headline,
    RunRow,
    RunStatus,
    SourceState,
    StoredRun,
)
from cannonade.storage.store import DEFAULT_PATH, Store
from cannonade.storage.writer import RunWriter

__all__ = [
    "ACTIVE_STATUSES",
    "DEFAULT_PATH",
    "FINAL_STATUSES",
    "AgentRecord",
    "BundleRecord",
    "EventRecord",
    "Headline",
    "QueuedRun",
    "RunRow",
    "RunStatus",
    "RunWriter",
    "SourceState",
    "StorageError",
    "Store",
    "StoredRun",
]
