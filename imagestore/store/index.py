"""The chunk index: chunk id -> location, in SQLite (WAL).

SQLite keeps the index on disk in a B-tree, so 100 million chunks cost disk pages, not Python
objects; lookups are point queries on a WITHOUT ROWID primary key. Index rows are published
only after the pack data they point at has been fsynced (see ``cas.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator

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
    flags      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_by_pack ON chunks(pack, offset);
"""


def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60, check_same_thread=False)
    else:
        con = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA busy_timeout=60000")
    if not readonly:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=FULL")
        con.execute("PRAGMA foreign_keys=ON")
    return con


def create(con: sqlite3.Connection) -> None:
    con.executescript(SCHEMA)


Location = tuple[int, int, int, int, int]  # pack id, offset, raw_len, stored_len, flags


def lookup(con: sqlite3.Connection, cid: bytes) -> Location | None:
    row = con.execute(
        "SELECT pack, offset, raw_len, stored_len, flags FROM chunks WHERE id=?", (cid,)
    ).fetchone()
    return row


def lookup_many(con: sqlite3.Connection, ids: Iterable[bytes]) -> dict[bytes, Location]:
    ids = list(dict.fromkeys(ids))
    out: dict[bytes, Location] = {}
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        q = ",".join("?" * len(part))
        for row in con.execute(
            f"SELECT id, pack, offset, raw_len, stored_len, flags FROM chunks WHERE id IN ({q})",
            part,
        ):
            out[bytes(row[0])] = tuple(row[1:])  # type: ignore[assignment]
    return out


def pack_names(con: sqlite3.Connection) -> dict[int, str]:
    return {pid: name for pid, name in con.execute("SELECT id, name FROM packs")}


def publish(con: sqlite3.Connection, pack_name: str, rows: list[tuple[bytes, int, int, int, int]]) -> None:
    """Insert rows (id, offset, raw_len, stored_len, flags) for one pack in one transaction."""
    con.execute("BEGIN IMMEDIATE")
    try:
        con.execute("INSERT OR IGNORE INTO packs(name) VALUES (?)", (pack_name,))
        pid = con.execute("SELECT id FROM packs WHERE name=?", (pack_name,)).fetchone()[0]
        con.executemany(
            "INSERT OR IGNORE INTO chunks(id, pack, offset, raw_len, stored_len, flags) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(cid, pid, off, rl, sl, fl) for cid, off, rl, sl, fl in rows],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def iter_all(con: sqlite3.Connection) -> Iterator[tuple[bytes, int, int, int, int, int]]:
    yield from con.execute(
        "SELECT id, pack, offset, raw_len, stored_len, flags FROM chunks ORDER BY pack, offset"
    )
