"""A connection with its file name: every SQLite error becomes a StorageError naming it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cannonade.storage.errors import StorageError

Row = tuple[Any, ...]


class Database:
    """One connection, used from the thread that opened it (sqlite3 checks)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    def error(self, e: sqlite3.Error | str) -> StorageError:
        return StorageError(f"database {self.path}: {e}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Everything inside commits together or not at all."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise self.error(e) from None
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except sqlite3.Error as e:
            self._rollback()
            raise self.error(e) from None
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def rows(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        try:
            return self.conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise self.error(e) from None

    def iterate(self, sql: str, params: Sequence[object] = ()) -> Iterable[Row]:
        """Rows one by one, for results too big to hold twice."""
        try:
            yield from self.conn.execute(sql, params)
        except sqlite3.Error as e:
            raise self.error(e) from None

    def close(self) -> None:
        self.conn.close()
