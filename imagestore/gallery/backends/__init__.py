"""The gallery database behind one small seam: SQLite (one machine, the default) or
PostgreSQL (``IMAGESTORE_DATABASE_URL=postgresql://…``, several hosts sharing one gallery).

:func:`connect` returns a :class:`Database`. The repository writes plain SQL in SQLite's
style — ``?`` placeholders, ``COLLATE NOCASE``, ``INTEGER``/``REAL``/``BLOB`` columns,
``INSERT OR IGNORE``, ``INSERT … ON CONFLICT … DO UPDATE``, ``RETURNING``, ``json_extract``,
``IS ?``/``IS NOT ?``, ``ORDER BY rowid`` — and each backend runs it as is (SQLite) or
translated once per statement text (PostgreSQL, see :mod:`.dialect`). What stays
backend-specific lives here, not in the repository:

- :meth:`Database.transaction`: one write transaction; ``BEGIN IMMEDIATE`` on SQLite, on
  PostgreSQL ``BEGIN`` plus a transaction-scoped advisory lock that serialises writers the same
  way (docs/architecture.md, "Gallery metadata on PostgreSQL", says why per operation);
- :meth:`Database.migration_lock`: held while migrations run (an advisory lock on PostgreSQL);
- :meth:`Database.now`: the database's clock (epoch seconds) — one clock for every host;
- errors: a unique violation is :class:`~imagestore.errors.Conflict` (exit 5), a busy or
  locked database :class:`~imagestore.errors.StoreBusy` (exit 9), an unreachable PostgreSQL
  :class:`~imagestore.errors.DatabaseUnavailable` (exit 13), a malformed URL
  :class:`~imagestore.errors.InvalidArgument` (exit 3). A password never appears in a message.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

ENV_URL = "IMAGESTORE_DATABASE_URL"


def locate(sqlite_path: str) -> str:
    """Where a store's gallery lives: ``$IMAGESTORE_DATABASE_URL`` when set, else the store's
    own SQLite file ``sqlite_path``."""
    url = os.environ.get(ENV_URL, "").strip()
    return url or sqlite_path


def is_url(target: str) -> bool:
    """Whether ``target`` names a database server (a URL) rather than a SQLite file."""
    return "://" in target and not target.startswith("file:")


def exists(target: str) -> bool:
    """Whether a gallery may already be there (a server always may; a SQLite file exists)."""
    return is_url(target) or os.path.exists(target)


class Cursor(Protocol):
    """What ``Database.execute`` returns (a ``sqlite3.Cursor`` on SQLite)."""

    rowcount: int
    lastrowid: int | None

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Database(Protocol):
    """One connection to a gallery database. Rows answer ``row["col"]``, ``row[0]``,
    ``row.keys()`` and ``tuple(row)`` on both backends."""

    backend: str  #: "sqlite" or "postgresql"
    label: str  #: the file, or the URL without its password, for messages

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Cursor: ...

    def executemany(self, sql: str, seq: Sequence[Sequence[Any]]) -> Any: ...

    def transaction(self) -> AbstractContextManager[Any]: ...

    def migration_lock(self) -> AbstractContextManager[Any]: ...

    @property
    def in_transaction(self) -> bool: ...

    def table_names(self) -> list[str]: ...

    def now(self) -> float: ...

    def close(self) -> None: ...


def connect(target: str, *, readonly: bool = False) -> Database:
    """Open the gallery database at ``target`` (a SQLite path or a ``postgresql://`` URL),
    not migrated (see :func:`imagestore.gallery.db.connect`)."""
    if is_url(target):
        from .postgres import PostgresDatabase, check_url

        check_url(target)
        return PostgresDatabase(target, readonly=readonly)
    from .sqlite import SqliteDatabase

    return SqliteDatabase(target, readonly=readonly)
