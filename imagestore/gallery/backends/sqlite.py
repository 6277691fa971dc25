"""The SQLite backend: ``<store>/gallery.sqlite`` (WAL, foreign keys on, synchronous=FULL),
opened through :mod:`imagestore.store.sqlitedb` so its errors name the file. SQL runs as
written; a write transaction is ``BEGIN IMMEDIATE`` (one writer at a time, readers go on)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ...errors import Conflict, StoreBusy
from ...store import sqlitedb

BUSY_TIMEOUT_MS = 30000


def _unique(err: sqlite3.IntegrityError, label: str) -> Conflict | None:
    text = str(err)
    if text.startswith("UNIQUE constraint failed"):
        return Conflict(f"gallery database {label}: {text} (created concurrently?)")
    return None


class SqliteDatabase:
    """A gallery database in one SQLite file."""

    backend = "sqlite"

    def __init__(self, path: str, *, readonly: bool = False) -> None:
        self.label = path
        self.path = path
        self.readonly = readonly or not sqlitedb.writable(path)  # a store we may only read
        con = sqlitedb.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, readonly=self.readonly)
        con.row_factory = sqlite3.Row
        if not self.readonly:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA foreign_keys=ON")
        con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self.raw = con

    def execute(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self.raw.execute(sql, args)
        except sqlite3.IntegrityError as e:
            mapped = _unique(e, self.label)
            if mapped is None:
                raise
            raise mapped from None

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> sqlite3.Cursor:
        try:
            return self.raw.executemany(sql, seq)
        except sqlite3.IntegrityError as e:
            mapped = _unique(e, self.label)
            if mapped is None:
                raise
            raise mapped from None

    @property
    def in_transaction(self) -> bool:
        return self.raw.in_transaction

    @contextmanager
    def transaction(self) -> Iterator[SqliteDatabase]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception."""
        try:
            self.raw.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise StoreBusy(f"gallery database is busy (another imagestore is writing): "
                                f"{e}") from None
            raise
        try:
            yield self
        except BaseException:
            if self.raw.in_transaction:  # SQLite has already rolled back after a full disk
                self.raw.execute("ROLLBACK")
            raise
        self.raw.execute("COMMIT")

    @contextmanager
    def migration_lock(self) -> Iterator[None]:
        """Nothing to hold: each migration re-checks inside its ``BEGIN IMMEDIATE``."""
        yield

    def table_names(self) -> list[str]:
        return [r[0] for r in self.raw.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]

    def now(self) -> float:
        """This machine's clock (every process sharing the file runs on it)."""
        return time.time()

    def close(self) -> None:
        self.raw.close()
