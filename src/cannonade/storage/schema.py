"""The database file: connection settings, the schema, and its version.

One file holds every run. WAL lets a reader (``cannonade runs`` in another terminal)
read while the HQ writes, and ``synchronous=NORMAL`` makes a commit cost no fsync: a
power cut may lose the last second or so of a run, never corrupt the file.

Tables are STRICT, so a wrong type is refused when written, not found when read.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cannonade.storage.errors import StorageError

SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 5000
PAGE_SIZE = 8192

SCHEMA = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    scenario TEXT NOT NULL,
    scenario_sha256 TEXT NOT NULL,
    options TEXT NOT NULL,      -- JSON object
    thresholds TEXT NOT NULL,   -- JSON array of the expressions as written
    created REAL NOT NULL,
    updated REAL NOT NULL,      -- when the status last changed
    started REAL,
    ended REAL,
    verdict TEXT,
    -- `cannonade runs` figures, kept once the run is over (a long run takes a moment
    -- to merge); any flush clears them.
    headline_requests INTEGER,
    headline_p95 REAL
) STRICT;
CREATE INDEX runs_by_created ON runs (created);
CREATE INDEX runs_by_status ON runs (status);

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hostname TEXT NOT NULL,
    cannons INTEGER NOT NULL,
    info TEXT NOT NULL,         -- JSON object, as the agent last reported it
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    status TEXT NOT NULL,       -- the last status recorded, and the run it was for:
    status_run TEXT             -- a timeline row is written only when either changes
) STRICT;

CREATE TABLE agent_status (
    id INTEGER PRIMARY KEY,
    agent TEXT NOT NULL REFERENCES agents (id),
    run_id TEXT REFERENCES runs (id),
    at REAL NOT NULL,
    status TEXT NOT NULL
) STRICT;
CREATE INDEX agent_status_by_run ON agent_status (run_id, agent);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    run_id TEXT REFERENCES runs (id),
    at REAL NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
) STRICT;
CREATE INDEX events_by_run ON events (run_id, at);

-- Keys are interned per run: series rows carry a small integer, not four strings.
CREATE TABLE metric_keys (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id),
    metric TEXT NOT NULL,
    name TEXT NOT NULL,
    method TEXT NOT NULL,
    tag TEXT NOT NULL,
    UNIQUE (run_id, metric, name, method, tag)
) STRICT;

-- Kinds of custom metrics (built-in kinds are known to the code).
CREATE TABLE metric_kinds (
    run_id TEXT NOT NULL REFERENCES runs (id),
    metric TEXT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (run_id, metric)
) STRICT, WITHOUT ROWID;

-- Every second some delta was for, even one that carried no data.
CREATE TABLE seconds (
    run_id TEXT NOT NULL REFERENCES runs (id),
    second INTEGER NOT NULL,
    PRIMARY KEY (run_id, second)
) STRICT, WITHOUT ROWID;

-- One row per (second, key) per flush: a late delta adds a row; readers sum them in id order.
CREATE TABLE trend_series (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id),
    second INTEGER NOT NULL,
    key_id INTEGER NOT NULL REFERENCES metric_keys (id),
    count INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    bins_index BLOB NOT NULL,   -- little-endian int32 bucket indices
    bins_count BLOB NOT NULL    -- little-endian int64 counts
) STRICT;
CREATE INDEX trend_series_by_second ON trend_series (run_id, second);
CREATE INDEX trend_series_by_key ON trend_series (run_id, key_id);

CREATE TABLE counter_series (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id),
    second INTEGER NOT NULL,
    key_id INTEGER NOT NULL REFERENCES metric_keys (id),
    value REAL NOT NULL
) STRICT;
CREATE INDEX counter_series_by_second ON counter_series (run_id, second);

-- Gauges are levels: one row per source, a later value replaces (keeping the row id,
-- which fixes the order the per-second sum adds sources in).
CREATE TABLE gauge_series (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id),
    second INTEGER NOT NULL,
    agent TEXT NOT NULL,
    cannon INTEGER NOT NULL,
    key_id INTEGER NOT NULL REFERENCES metric_keys (id),
    value REAL NOT NULL,
    UNIQUE (run_id, second, agent, cannon, key_id)
) STRICT;

-- Run-wide totals, kept as the live aggregator computes them (float sums depend on
-- the order of additions, so summing per-second rows afterwards could differ in the
-- last bit). Bucket counts are integers and are summed from trend_series.
CREATE TABLE trend_totals (
    run_id TEXT NOT NULL REFERENCES runs (id),
    key_id INTEGER NOT NULL REFERENCES metric_keys (id),
    count INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL NOT NULL,
    max REAL NOT NULL,
    PRIMARY KEY (run_id, key_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE counter_totals (
    run_id TEXT NOT NULL REFERENCES runs (id),
    key_id INTEGER NOT NULL REFERENCES metric_keys (id),
    value REAL NOT NULL,
    PRIMARY KEY (run_id, key_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE errors (
    run_id TEXT NOT NULL REFERENCES runs (id),
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    count INTEGER NOT NULL,
    sample TEXT NOT NULL,       -- the first traceback seen
    PRIMARY KEY (run_id, kind, message)
) STRICT;

-- Per cannon: what arrived, so a rebuilt run reports the same gaps and unfinished cannons.
CREATE TABLE sources (
    run_id TEXT NOT NULL REFERENCES runs (id),
    agent TEXT NOT NULL,
    cannon INTEGER NOT NULL,
    highest INTEGER NOT NULL,
    duplicates INTEGER NOT NULL,
    finished INTEGER NOT NULL,
    gaps BLOB NOT NULL,         -- little-endian int64 sequence numbers never received
    PRIMARY KEY (run_id, agent, cannon)
) STRICT, WITHOUT ROWID;

-- Version 2: what the HTTP API keeps. An uploaded bundle is kept whole (its size is
-- capped by the API well below the 16 MiB frame it travels in).
CREATE TABLE bundles (
    id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    filename TEXT NOT NULL,
    kind TEXT NOT NULL,         -- python, yaml, exec or archive
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    data BLOB NOT NULL
) STRICT;

-- Runs waiting for agents, in order. A row leaves when the HQ takes the run; the run's
-- own row (status queued) was written with it, so a listing shows queued runs.
CREATE TABLE queue (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE REFERENCES runs (id),
    request TEXT NOT NULL       -- JSON: the run request as the API accepted it
) STRICT;
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path``, checked and ready to use."""
    if path.is_dir():
        raise StorageError(f"database {path}: is a directory")
    if not path.parent.is_dir():
        # Not created on purpose: a mistyped --db should not grow a directory tree.
        raise StorageError(f"database {path}: directory {path.parent} does not exist")
    try:
        # Autocommit: every transaction is an explicit BEGIN IMMEDIATE ... COMMIT.
        conn = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as e:
        raise StorageError(f"database {path}: {_describe(e)}") from None
    try:
        _configure(conn, path)
        _check_schema(conn, path)
    except sqlite3.DatabaseError as e:
        conn.close()
        raise StorageError(f"database {path}: {_describe(e)}") from None
    except BaseException:
        conn.close()
        raise
    return conn


def _describe(e: sqlite3.Error) -> str:
    text = str(e)
    if text == "file is not a database":
        return "not an SQLite database (wrong file?)"
    if text in ("unable to open database file", "attempt to write a readonly database"):
        return f"{text} (is its directory writable?)"
    return text


def _configure(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    # A trend row's buckets are a few kB: with 4 kB pages most rows would fill half a
    # page alone (measured: 150 MB for 83 MB of rows). Takes effect only on a new file.
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    if str(mode).lower() != "wal":
        raise StorageError(f"database {path}: cannot use WAL mode (journal_mode is {mode})")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    # IMMEDIATE takes the write lock first, so two processes opening a new file at once
    # do not both create the schema.
    conn.execute("BEGIN IMMEDIATE")
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
        if not tables:
            for statement in SCHEMA.split(";\n"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        else:
            _check_version(conn, path, tables)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _check_version(conn: sqlite3.Connection, path: Path, tables: set[str]) -> None:
    row = None
    if "meta" in tables:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        raise StorageError(f"database {path}: an SQLite database, but not cannonade's")
    try:
        version = int(row[0])
    except ValueError:
        raise StorageError(f"database {path}: unreadable schema version {row[0]!r}") from None
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"database {path}: schema version {version} was written by a newer cannonade "
            f"(this one reads up to {SCHEMA_VERSION}); upgrade cannonade to read it"
        )
    if version == 1:
        # Version 2 only added tables: a version 1 file gains them in place.
        for statement in SCHEMA[SCHEMA.index("-- Version 2") :].split(";\n"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
        )
        return
    if version < SCHEMA_VERSION:
        raise StorageError(
            f"database {path}: schema version {version} is older than {SCHEMA_VERSION} "
            "and cannot be upgraded"
        )
