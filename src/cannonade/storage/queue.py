"""What the HTTP API keeps beside the runs: uploaded bundles and the queue of runs.

Functions over a :class:`Database`, called through :class:`Store` (which owns the
connection and its thread). A queued run is two rows written in one transaction: its
``runs`` row (status ``queued``, so listings show it) and its ``queue`` row holding the
request, which the HQ takes when it starts the run. Both survive an HQ restart.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from cannonade.storage.db import Database
from cannonade.storage.records import ACTIVE_STATUSES, RunStatus

# Every table holding rows of one run, children before the runs row itself.
_RUN_TABLES = (
    "queue",
    "trend_series",
    "counter_series",
    "gauge_series",
    "trend_totals",
    "counter_totals",
    "seconds",
    "metric_kinds",
    "metric_keys",
    "errors",
    "sources",
    "events",
    "agent_status",
)


@dataclass(frozen=True, slots=True)
class BundleRecord:
    id: str
    sha256: str
    filename: str
    kind: str
    size: int
    created: float
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class QueuedRun:
    run_id: str
    position: int
    request: dict[str, Any]


def put_bundle(
    db: Database, bundle_id: str, *, filename: str, kind: str, data: bytes, created: float
) -> BundleRecord:
    digest = hashlib.sha256(data).hexdigest()
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO bundles (id, sha256, filename, kind, size, created, data)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (bundle_id, digest, filename, kind, len(data), created, data),
        )
    return BundleRecord(bundle_id, digest, filename, kind, len(data), created)


def get_bundle(db: Database, bundle_id: str, *, with_data: bool = True) -> BundleRecord | None:
    data_column = "data" if with_data else "x''"
    rows = db.rows(
        f"SELECT id, sha256, filename, kind, size, created, {data_column} FROM bundles"
        " WHERE id = ?",
        (bundle_id,),
    )
    if not rows:
        return None
    r = rows[0]
    return BundleRecord(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6]))


def enqueue(
    db: Database,
    run_id: str,
    *,
    scenario: str,
    scenario_sha256: str,
    options: dict[str, object],
    thresholds: list[str],
    created: float,
    request: dict[str, Any],
) -> None:
    with db.transaction() as conn:
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
            raise db.error(f"run {run_id!r} already exists")
        conn.execute(
            "INSERT INTO runs (id, status, scenario, scenario_sha256, options, thresholds,"
            " created, updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                RunStatus.QUEUED.value,
                scenario,
                scenario_sha256,
                json.dumps(options, sort_keys=True, default=str),
                json.dumps(thresholds),
                created,
                created,
            ),
        )
        conn.execute(
            "INSERT INTO queue (run_id, request) VALUES (?, ?)",
            (run_id, json.dumps(request, sort_keys=True)),
        )


def queued(db: Database) -> list[QueuedRun]:
    """The queue, first in line first."""
    return [
        QueuedRun(r[0], r[1], json.loads(r[2]))
        for r in db.rows("SELECT run_id, position, request FROM queue ORDER BY position")
    ]


def take(db: Database, run_id: str) -> bool:
    """Remove a run from the queue (it starts, or is cancelled); False if it was not in it."""
    with db.transaction() as conn:
        return conn.execute("DELETE FROM queue WHERE run_id = ?", (run_id,)).rowcount > 0


def delete_run(db: Database, run_id: str) -> bool:
    """A run and everything measured for it; refused (False) while it is in progress."""
    with db.transaction() as conn:
        row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None or row[0] in {s.value for s in ACTIVE_STATUSES}:
            return False
        for table in _RUN_TABLES:
            conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
    return True
