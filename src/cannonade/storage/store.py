"""The HQ's database of runs: what ran, who ran it, what was measured.

Threading contract: a :class:`Store` is one SQLite connection, used only from the thread
that opened it (the HQ's event-loop thread); sqlite3 refuses use from any other. Other
*processes* may read and write the same file at the same time: WAL keeps readers from
blocking the writer, and a writer waits up to ``BUSY_TIMEOUT_MS`` for another's lock.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from cannonade.model.aggregate import Aggregator
from cannonade.storage import queue as _queue
from cannonade.storage.db import Database, Row
from cannonade.storage.errors import StorageError
from cannonade.storage.queue import BundleRecord, QueuedRun
from cannonade.storage.reader import SERIES_TRENDS, headline, load_aggregator
from cannonade.storage.records import (
    ACTIVE_STATUSES,
    FINAL_STATUSES,
    AgentRecord,
    EventRecord,
    Headline,
    RunRow,
    RunStatus,
    StoredRun,
    run_status,
)
from cannonade.storage.schema import connect
from cannonade.storage.writer import RunWriter

DEFAULT_PATH = "cannonade.db"

_RUN_COLUMNS = (
    "id, status, scenario, scenario_sha256, options, thresholds, created, updated, started,"
    " ended, verdict"
)


def _json(value: object) -> str:
    # Options are plain values; anything else (a Path, an enum) is kept as its text
    # rather than failing the run.
    return json.dumps(value, default=str, sort_keys=True)


def _run_row(r: Row) -> RunRow:
    return RunRow(
        id=r[0],
        status=r[1],
        scenario=r[2],
        scenario_sha256=r[3],
        options=json.loads(r[4]),
        thresholds=tuple(json.loads(r[5])),
        created=r[6],
        updated=r[7],
        started=r[8],
        ended=r[9],
        verdict=r[10],
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class Store:
    """Open with :meth:`open`; close with :meth:`close` (or use it as a context manager)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, create: bool = True) -> Store:
        """The database at ``path``, made (file and schema) if missing and ``create``.
        Raises StorageError naming the file if it cannot be used."""
        p = Path(path)
        if not create and not p.exists():
            raise StorageError(f"no database at {p}")
        return cls(Database(connect(p), p))

    @property
    def path(self) -> Path:
        return self._db.path

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs ----------------------------------------------------------------------------
    def create_run(
        self,
        run_id: str,
        *,
        scenario: str,
        scenario_sha256: str,
        options: Mapping[str, object],
        thresholds: Sequence[str],
        created: float,
    ) -> None:
        """A new run in status ``queued``."""
        with self._db.transaction() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
                raise self._db.error(f"run {run_id!r} already exists")
            conn.execute(
                f"INSERT INTO runs ({_RUN_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL)",
                (
                    run_id,
                    RunStatus.QUEUED.value,
                    scenario,
                    scenario_sha256,
                    _json(dict(options)),
                    _json(list(thresholds)),
                    created,
                    created,
                ),
            )

    def set_status(
        self,
        run_id: str,
        status: str,
        *,
        at: float,
        started: float | None = None,
        ended: float | None = None,
        verdict: str | None = None,
    ) -> None:
        """Change a run's status; ``started``, ``ended`` and ``verdict`` are set when given
        and otherwise keep their value. Raises ValueError for an unknown status."""
        value = run_status(status).value
        with self._db.transaction() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, updated = ?, started = coalesce(?, started),"
                " ended = coalesce(?, ended), verdict = coalesce(?, verdict) WHERE id = ?",
                (value, at, started, ended, verdict, run_id),
            )
            if cur.rowcount == 0:
                raise self._db.error(f"no run {run_id!r}")

    def interrupt_unfinished(self, at: float) -> list[str]:
        """Mark runs a dead HQ left waiting, running or stopping as interrupted; their
        data stays. Their end becomes the second after their last data (else their
        start), not ``at``, which may be hours later. Returns their ids."""
        active = sorted(s.value for s in ACTIVE_STATUSES)
        marks = ", ".join("?" * len(active))
        with self._db.transaction() as conn:
            left = conn.execute(
                f"SELECT id, status FROM runs WHERE status IN ({marks}) ORDER BY created, id",
                active,
            ).fetchall()
            for run_id, status in left:
                conn.execute(
                    "UPDATE runs SET status = ?, updated = ?, ended = coalesce(ended,"
                    " (SELECT max(second) + 1 FROM seconds WHERE run_id = runs.id), started, ?)"
                    " WHERE id = ?",
                    (RunStatus.INTERRUPTED.value, at, at, run_id),
                )
                conn.execute(
                    "INSERT INTO events (run_id, at, kind, message) VALUES (?, ?, ?, ?)",
                    (run_id, at, "interrupted", f"the HQ stopped while the run was {status}"),
                )
        return [r[0] for r in left]

    def list_runs(
        self, limit: int = 50, status: str | None = None, offset: int = 0
    ) -> list[RunRow]:
        """The newest runs first; ``offset`` skips that many (pagination)."""
        if status is None:
            rows = self._db.rows(
                f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY created DESC, id LIMIT ? OFFSET ?",
                (limit, offset),
            )
        else:
            rows = self._db.rows(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE status = ?"
                " ORDER BY created DESC, id LIMIT ? OFFSET ?",
                (run_status(status).value, limit, offset),
            )
        return [_run_row(r) for r in rows]

    def run_row(self, run_id: str) -> RunRow | None:
        rows = self._db.rows(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        return _run_row(rows[0]) if rows else None

    def resolve(self, prefix: str) -> str:
        """The id of the one run whose id is or starts with ``prefix`` (as git does)."""
        if prefix and self._db.rows("SELECT 1 FROM runs WHERE id = ?", (prefix,)):
            return prefix
        found = (
            [
                r[0]
                for r in self._db.rows(
                    "SELECT id FROM runs WHERE substr(id, 1, length(?1)) = ?1 ORDER BY id LIMIT 6",
                    (prefix,),
                )
            ]
            if prefix
            else []
        )
        if not found:
            raise StorageError(f"no run {prefix!r} in {self.path}")
        if len(found) > 1:
            more = ", ..." if len(found) > 5 else ""
            raise StorageError(f"run id {prefix!r} is ambiguous: {', '.join(found[:5])}{more}")
        return str(found[0])

    def headline(self, run_id: str) -> Headline:
        """Requests and p95 of ``http_req_duration``, without rebuilding the run;
        remembered once the run is over."""
        rows = self._db.rows(
            "SELECT status, headline_requests, headline_p95 FROM runs WHERE id = ?", (run_id,)
        )
        if not rows:
            raise StorageError(f"no run {run_id!r} in {self.path}")
        status, requests, p95 = rows[0]
        if requests is not None:
            return Headline(requests, p95)
        head = headline(self._db, run_id)
        if status in FINAL_STATUSES:
            with self._db.transaction() as conn:
                conn.execute(
                    "UPDATE runs SET headline_requests = ?, headline_p95 = ? WHERE id = ?",
                    (head.requests, head.p95, run_id),
                )
        return head

    def load(self, run_id: str, *, series_trends: frozenset[str] = SERIES_TRENDS) -> StoredRun:
        """A run read back; its aggregator equals the live one fed the same deltas
        (``series_trends`` as the live one's)."""
        rows = self._db.rows(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        if not rows:
            raise StorageError(f"no run {run_id!r} in {self.path}")
        row = _run_row(rows[0])
        aggregator: Aggregator = load_aggregator(self._db, run_id, series_trends)
        return StoredRun(
            **{f.name: getattr(row, f.name) for f in dataclasses.fields(RunRow)},
            aggregator=aggregator,
            agents=self._run_agents(run_id),
            events=tuple(
                EventRecord(r[0], r[1], r[2])
                for r in self._db.rows(
                    "SELECT at, kind, message FROM events WHERE run_id = ? ORDER BY at, id",
                    (run_id,),
                )
            ),
        )

    def writer(self, run_id: str) -> RunWriter:
        """The writer of a run's measurements (one per run at a time)."""
        return RunWriter(self._db, run_id)

    # -- agents and events ---------------------------------------------------------------
    def record_agent(
        self,
        run_id: str | None,
        agent: str,
        *,
        name: str,
        status: str,
        at: float,
        info: Mapping[str, object],
    ) -> None:
        """An agent's report (a heartbeat, a status change). ``info`` may carry
        ``hostname`` and ``cannons``. The timeline gets a row only when the agent's
        status, or the run it reports for, differs from its last recorded row: a
        heartbeat repeating the same status only moves ``last_seen``."""
        hostname = str(info.get("hostname", ""))
        cannons = _int(info.get("cannons"))
        with self._db.transaction() as conn:
            last = conn.execute(
                "SELECT status, status_run FROM agents WHERE id = ?", (agent,)
            ).fetchone()
            if last is None:
                conn.execute(
                    "INSERT INTO agents (id, name, hostname, cannons, info, first_seen,"
                    " last_seen, status, status_run) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (agent, name, hostname, cannons, _json(dict(info)), at, at, status, run_id),
                )
            else:
                conn.execute(
                    "UPDATE agents SET name = ?, hostname = ?, cannons = ?, info = ?,"
                    " last_seen = max(last_seen, ?), status = ?, status_run = ? WHERE id = ?",
                    (name, hostname, cannons, _json(dict(info)), at, status, run_id, agent),
                )
            if last is None or tuple(last) != (status, run_id):
                conn.execute(
                    "INSERT INTO agent_status (agent, run_id, at, status) VALUES (?, ?, ?, ?)",
                    (agent, run_id, at, status),
                )

    def event(self, run_id: str | None, at: float, kind: str, message: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO events (run_id, at, kind, message) VALUES (?, ?, ?, ?)",
                (run_id, at, kind, message),
            )

    def _run_agents(self, run_id: str) -> tuple[AgentRecord, ...]:
        timelines: dict[str, list[tuple[float, str]]] = {}
        for agent, at, status in self._db.rows(
            "SELECT agent, at, status FROM agent_status WHERE run_id = ? ORDER BY id", (run_id,)
        ):
            timelines.setdefault(agent, []).append((at, status))
        out: list[AgentRecord] = []
        for agent, timeline in timelines.items():
            r = self._db.rows(
                "SELECT id, name, hostname, cannons, info, first_seen, last_seen FROM agents"
                " WHERE id = ?",
                (agent,),
            )[0]
            out.append(
                AgentRecord(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], tuple(timeline))
            )
        return tuple(out)

    # -- bundles and the queue (the HTTP API) ----------------------------------------------
    def put_bundle(
        self, bundle_id: str, *, filename: str, kind: str, data: bytes, created: float
    ) -> BundleRecord:
        return _queue.put_bundle(
            self._db, bundle_id, filename=filename, kind=kind, data=data, created=created
        )

    def bundle(self, bundle_id: str, *, with_data: bool = True) -> BundleRecord | None:
        return _queue.get_bundle(self._db, bundle_id, with_data=with_data)

    def enqueue(
        self,
        run_id: str,
        *,
        scenario: str,
        scenario_sha256: str,
        options: dict[str, object],
        thresholds: list[str],
        created: float,
        request: dict[str, object],
    ) -> None:
        """A new run, status ``queued``, at the end of the queue."""
        _queue.enqueue(
            self._db,
            run_id,
            scenario=scenario,
            scenario_sha256=scenario_sha256,
            options=options,
            thresholds=thresholds,
            created=created,
            request=request,
        )

    def queued(self) -> list[QueuedRun]:
        return _queue.queued(self._db)

    def take_queued(self, run_id: str) -> bool:
        return _queue.take(self._db, run_id)

    def delete_run(self, run_id: str) -> bool:
        return _queue.delete_run(self._db, run_id)

    def has_run(self, run_id: str) -> bool:
        return bool(self._db.rows("SELECT 1 FROM runs WHERE id = ?", (run_id,)))
