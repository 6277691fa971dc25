"""The chunk index: chunk id -> location, in SQLite (WAL).

SQLite keeps the index on disk in a B-tree, so 100 million chunks cost disk pages, not Python
objects; lookups are point queries on a WITHOUT ROWID primary key. Index rows are published
only after the pack data they point at has been fsynced (see ``cas.py``).

``psum`` is a checksum of the record's *stored* payload (xxh3-64, top bit cleared to fit a
signed SQLite integer), taken when the record is written. Replication checks it on arrival
instead of decompressing and re-hashing every chunk (``regions/replicate.py``); ``store
verify`` still decompresses and checks the chunk id itself. NULL in stores written before
the column existed (added by :func:`migrate`); readers then fall back to the full check.

**Damage.** The index is derived data: every row can be rebuilt from the packs' self-describing
records (``store/rebuild.py``). :func:`open_index` never creates a missing index (that would hide
the loss behind an empty one) and reports a missing, empty or malformed file as
:class:`~imagestore.errors.IntegrityError` naming the file; :func:`check` runs ``PRAGMA
quick_check`` for ``store verify`` and ``store gc`` (which must never delete packs on the word of
a damaged index).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator

import xxhash

from ..errors import IntegrityError
from . import sqlitedb

SCHEMA = """
CREATE TABLE IF NOT EXISTS packs (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS chunks (
    id         BLOB PRIMARY KEY,
    pack       INTEGER NOT NULL REFERENCES packs(id),
    offset     INTEGER NOT NULL,
    raw_len    INTEGER NOT NULL,
    stored_len INTEGER NOT NULL,
    flags      INTEGER NOT NULL,
    psum       INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_by_pack ON chunks(pack, offset);
"""


def connect(path: str, *, readonly: bool = False,
            private: bool | None = None) -> sqlite3.Connection:
    """Open the index; its connection names the file in errors (``sqlitedb``; ``private``:
    its choice of WAL index, made by free space when None)."""
    con = sqlitedb.connect(path, readonly=readonly, private=private)
    con.execute("PRAGMA busy_timeout=60000")
    if not readonly:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA foreign_keys=ON")
    return con


#: SQLite result codes that mean the file itself is damaged (not busy, full or read-only)
_DAMAGE_CODES = {11, 26}  # SQLITE_CORRUPT, SQLITE_NOTADB
_REBUILD = "it can be rebuilt from the packs"


def is_damage(err: sqlite3.Error) -> bool:
    """True when ``err`` says the database file is malformed or is not a database."""
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _DAMAGE_CODES
    text = str(err)
    return "malformed" in text or "not a database" in text


def problem(path: str) -> str | None:
    """What is wrong with the index file at ``path`` (None when ``PRAGMA quick_check`` passes
    and both tables are there). Never creates the file. Errors that are not damage (I/O, a
    full disk) are raised as ``sqlitedb`` translates them."""
    if not os.path.exists(path):
        return "the chunk index is missing"
    try:
        # read-only (falls back to immutable where the WAL index cannot be made): verify works
        # on a store this user may not write; damage comes back as IntegrityError
        con = sqlitedb.connect(path, readonly=True)
        try:
            con.execute("PRAGMA busy_timeout=60000")
            rows = [r[0] for r in con.execute("PRAGMA quick_check")]
            if rows != ["ok"]:
                return "the chunk index is damaged (" + "; ".join(rows[:3]) + ")"
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            con.close()
    except IntegrityError as e:
        why = str(e).removeprefix(f"{path}: ").removeprefix("the database is damaged ")
        return f"the chunk index is damaged {why if why.startswith('(') else f'({why})'}"
    except sqlite3.Error as e:
        if is_damage(e):
            return f"the chunk index is damaged ({e})"
        raise sqlitedb.translate(e, path) or e from None
    if not {"chunks", "packs"} <= tables:
        return "the chunk index is empty or truncated (no chunks table)"
    return None


def check(path: str) -> None:
    """Raise :class:`IntegrityError` naming ``path`` when :func:`problem` finds one."""
    p = problem(path)
    if p is not None:
        raise IntegrityError(f"{path}: {p}; {_REBUILD}")


def open_index(path: str, *, readonly: bool = False,
               private: bool | None = None) -> sqlite3.Connection:
    """A read-write connection (:func:`connect`) to an existing index. A missing, empty or
    malformed file is :class:`IntegrityError` naming it; a missing one is never created here
    (an empty index would hide the loss and let gc take every pack for an orphan)."""
    if not os.path.exists(path):
        raise IntegrityError(f"{path}: the chunk index is missing; {_REBUILD}")
    con = connect(path, readonly=readonly, private=private)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except BaseException:
        con.close()
        raise
    if not {"chunks", "packs"} <= tables:
        con.close()
        raise IntegrityError(f"{path}: the chunk index is empty or truncated (no chunks table); "
                             f"{_REBUILD}")
    return con


def create(con: sqlite3.Connection) -> None:
    con.executescript(SCHEMA)


def migrate(con: sqlite3.Connection) -> None:
    """Bring an index written by an earlier imagestore up to this schema (idempotent, safe
    against a concurrent migration by another process)."""
    if _has_psum(con):
        return
    con.execute("BEGIN IMMEDIATE")
    try:
        if not _has_psum(con):
            con.execute("ALTER TABLE chunks ADD COLUMN psum INTEGER")
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:  # SQLite has already rolled back after a full disk
            con.execute("ROLLBACK")
        raise


def _has_psum(con: sqlite3.Connection) -> bool:
    return any(r[1] == "psum" for r in con.execute("PRAGMA table_info(chunks)"))


def payload_sum(payload: bytes | memoryview) -> int:
    """The ``psum`` of a stored payload."""
    return xxhash.xxh3_64_intdigest(payload) & 0x7FFF_FFFF_FFFF_FFFF


Location = tuple[int, int, int, int, int]  # pack id, offset, raw_len, stored_len, flags


def lookup(con: sqlite3.Connection, cid: bytes) -> Location | None:
    row = con.execute(
        "SELECT pack, offset, raw_len, stored_len, flags FROM chunks WHERE id=?", (cid,)
    ).fetchone()
    return row


def _by_ids(con: sqlite3.Connection, cols: str, ids: Iterable[bytes]) -> Iterator[tuple]:
    """Rows (id, *cols) for the distinct ``ids`` that are indexed, 500 ids per query."""
    ids = list(dict.fromkeys(ids))
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        q = ",".join("?" * len(part))
        yield from con.execute(f"SELECT id, {cols} FROM chunks WHERE id IN ({q})", part)


def lookup_many(con: sqlite3.Connection, ids: Iterable[bytes]) -> dict[bytes, Location]:
    rows = _by_ids(con, "pack, offset, raw_len, stored_len, flags", ids)
    return {bytes(r[0]): tuple(r[1:]) for r in rows}  # type: ignore[misc]


def pack_names(con: sqlite3.Connection) -> dict[int, str]:
    return {pid: name for pid, name in con.execute("SELECT id, name FROM packs")}


Row = tuple[bytes, int, int, int, int, int | None]  # id, offset, raw_len, stored_len, flags, psum


def lookup_sums(con: sqlite3.Connection, ids: Iterable[bytes]) -> dict[bytes, int | None]:
    """``psum`` of each indexed chunk among ``ids`` (None where the index has none)."""
    return {bytes(cid): psum for cid, psum in _by_ids(con, "psum", ids)}


def publish(con: sqlite3.Connection, pack_name: str, rows: list[Row], *, replace: bool = False) -> None:
    """Insert rows (id, offset, raw_len, stored_len, flags, psum) for one pack in one
    transaction. ``replace`` repoints chunks already indexed (Premium rewrite, repair); else
    a chunk another writer published meanwhile keeps its row."""
    verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"
    con.execute("BEGIN IMMEDIATE")
    try:
        con.execute("INSERT OR IGNORE INTO packs(name) VALUES (?)", (pack_name,))
        pid = con.execute("SELECT id FROM packs WHERE name=?", (pack_name,)).fetchone()[0]
        con.executemany(
            f"{verb} INTO chunks(id, pack, offset, raw_len, stored_len, flags, psum) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(cid, pid, off, rl, sl, fl, ps) for cid, off, rl, sl, fl, ps in rows],
        )
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:  # SQLite has already rolled back after a full disk
            con.execute("ROLLBACK")
        raise


def iter_all(con: sqlite3.Connection) -> Iterator[tuple[bytes, int, int, int, int, int, int | None]]:
    """Every row (id, pack, offset, raw_len, stored_len, flags, psum) in pack order."""
    yield from con.execute(
        "SELECT id, pack, offset, raw_len, stored_len, flags, psum FROM chunks "
        "ORDER BY pack, offset"
    )
