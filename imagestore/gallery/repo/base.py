"""The connection every part of the repository shares, and the select helpers of the tables
whose rows live in a resource group."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self, TypeVar

from .. import db
from ..backends import Database
from .rows import Row

#: a typed row
R = TypeVar("R", bound=Row)


def sub_of(table: str) -> str:
    """A select column: the subscription of ``table``'s resource group (NULL without a row)."""
    return (f"(SELECT r.subscription_id FROM resource_groups r WHERE r.name = {table}.rg) "
            f"AS subscription")


def select_table(table: str) -> str:
    """``SELECT`` every column of ``table`` and its subscription ``FROM table``."""
    return f"SELECT {table}.*, {sub_of(table)} FROM {table} "


class RepositoryBase:
    """The gallery database of one store, opened and migrated: ``db_path`` is the SQLite file
    (``<store>/gallery.sqlite``) or a ``postgresql://`` URL (see :func:`..backends.locate`)."""

    con: Database
    db_path: str

    def __init__(self, db_path: str) -> None:
        self.db_path = db_path
        self.con = db.connect(db_path)

    @classmethod
    def open_readonly(cls, db_path: str) -> Self:
        """The database opened read-only and not migrated (for reports such as ``store
        verify``). A SQLite file must exist."""
        repo = cls.__new__(cls)
        repo.db_path = db_path
        repo.con = db.open_readonly(db_path)
        return repo

    @classmethod
    def on(cls, con: Database) -> Self:
        """A repository over a connection someone else opened (and closes)."""
        repo = cls.__new__(cls)
        repo.db_path = con.label
        repo.con = con
        return repo

    @property
    def backend(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.con.backend

    def now(self) -> float:
        """The database's clock in epoch seconds (the same for every host sharing it)."""
        return self.con.now()

    def close(self) -> None:
        """Close the connection."""
        self.con.close()

    @contextmanager
    def transaction(self) -> Iterator[Self]:
        """One write transaction: everything inside is committed together, or nothing."""
        with db.transaction(self.con):
            yield self

    def _one(self, sql: str, args: tuple = ()) -> Any:
        return self.con.execute(sql, args).fetchone()

    def _all(self, sql: str, args: tuple = ()) -> list[Any]:
        return self.con.execute(sql, args).fetchall()

    def _find_named(self, table: str, row_type: type[R], rg: str, name: str) -> R | None:
        """The row of resource ``name`` in resource group ``rg`` of ``table``, or None."""
        row = self._one(select_table(table) + "WHERE rg = ? AND name = ?", (rg, name))
        return row_type.from_sql(row) if row else None

    def _list_named(self, table: str, row_type: type[R], rg: str | None) -> list[R]:
        """The rows of ``table`` in resource group ``rg`` by name (all, by resource group and
        name, when ``rg`` is None)."""
        if rg is None:
            rows = self._all(select_table(table) + "ORDER BY rg, name")
        else:
            rows = self._all(select_table(table) + "WHERE rg = ? ORDER BY name", (rg,))
        return [row_type.from_sql(r) for r in rows]
