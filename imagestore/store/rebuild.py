"""Rebuild a blob store's chunk index from its packs (``store rebuild-index``, ``verify --repair``).

The index is derived data. Every pack record carries its chunk id, flags and lengths in its
32-byte header (``packs.py``), so the rows can be recovered by reading the packs:

1. under the store's **exclusive** lock (no ingest, gc or reader runs meanwhile), every pack is
   read record by record; each record is checked in full (header, decompression, xxh3-128 of
   the bytes against the id in its header) and its payload checksum (``psum``) recomputed;
2. a record that fails the check, or a header that is not a record, is **skipped and reported**;
   the scan resynchronises on the next record magic (``ISC1``/``ISPD``) and validates the
   candidate the same way, so one damaged header costs one record, not the rest of the pack. A
   record that runs past the end of the file is a torn tail (a killed writer), reported apart;
3. the rows go into a **new** SQLite file beside the index (``.tmp-…-index.sqlite``, a name
   ``store gc`` removes if a crash leaves it), which is closed, fsynced, and renamed over
   ``index.sqlite`` after the old index's ``-wal``/``-shm`` are removed (a stale WAL would be
   replayed onto the new file; a sound old index is checkpointed first, so a crash between the
   removal and the rename loses nothing); then the directory is fsynced. Never in place.
4. every manifest is checked against the new index: chunks no pack holds a good record of are
   reported as missing (``verify --repair`` then fetches them from a good copy).

Several records of one chunk (a dead copy gc has not reclaimed yet, a repair) are all valid;
the first found is indexed.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..errors import IntegrityError, from_oserror
from ..fsutil import fsync_dir
from . import index, sqlitedb
from .cas import BlobStore
from .packs import PAD_MAGIC, REC, REC_MAGIC, decode_record, read_record

#: no record stores more than this (chunks are at most 64 MiB, zstd adds a little)
MAX_STORED = (64 << 20) + (1 << 20)
_SCAN_BLOCK = 4 << 20


@dataclass
class RebuildReport:
    root: str
    previous: str | None = None  # what was wrong with the old index (None: nothing)
    packs_scanned: int = 0
    chunks_indexed: int = 0
    duplicate_records: int = 0
    skipped_records: list[dict] = field(default_factory=list)
    torn_tails: list[dict] = field(default_factory=list)
    missing_chunks: list[dict] = field(default_factory=list)
    affected_manifests: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "store": self.root,
            "index": os.path.join(self.root, "index.sqlite"),
            "previousIndex": self.previous or "ok",
            "packsScanned": self.packs_scanned,
            "chunksIndexed": self.chunks_indexed,
            "duplicateRecords": self.duplicate_records,
            "skippedRecords": self.skipped_records,
            "tornTails": self.torn_tails,
            "missingChunks": self.missing_chunks,
            "affectedManifests": self.affected_manifests,
        }


Record = tuple[int, int, int, int, bytes, int]  # offset, flags, raw_len, stored_len, id, psum


def _valid_record(fd: int, off: int, size: int, where: str) -> tuple[Record | None, str]:
    """The record at ``off`` if it is whole and checks out, else (None, why)."""
    hdr = os.pread(fd, REC.size, off)
    if len(hdr) < REC.size:
        return None, "torn"
    magic, flags, raw_len, stored_len, rid = REC.unpack(hdr)
    if magic != REC_MAGIC or stored_len > MAX_STORED:
        return None, "not a record header"
    if off + REC.size + stored_len > size:
        return None, "torn"
    buf = read_record(fd, off, stored_len)
    try:
        decode_record(buf, rid, where)
    except IntegrityError as e:
        return None, str(e)
    return (off, flags, raw_len, stored_len, rid, index.payload_sum(memoryview(buf)[REC.size:])), ""


def _is_pad(fd: int, off: int, size: int) -> int | None:
    """The length of a well-formed padding record at ``off``, else None."""
    hdr = os.pread(fd, REC.size, off)
    if len(hdr) < REC.size:
        return None
    magic, flags, raw_len, stored_len, rid = REC.unpack(hdr)
    if magic != PAD_MAGIC or flags or raw_len or rid != bytes(16) or stored_len >= 2 * 4096:
        return None
    if off + REC.size + stored_len > size:
        return None
    return REC.size + stored_len


def _next_magic(fd: int, start: int, size: int) -> int | None:
    """Offset of the next ``ISC1`` or ``ISPD`` at or after ``start``."""
    off = start
    while off < size:
        block = os.pread(fd, min(_SCAN_BLOCK, size - off), off)
        if not block:
            return None
        hits = [i for i in (block.find(REC_MAGIC), block.find(PAD_MAGIC)) if i >= 0]
        if hits:
            return off + min(hits)
        off += max(1, len(block) - 3)  # a magic may straddle two blocks
    return None


def scan_records(fd: int, size: int, where: str,
                 problems: list[dict], torn: list[dict]) -> Iterator[Record]:
    """Every good record of a pack, skipping damaged ones (appended to ``problems``) and a
    torn tail (appended to ``torn``)."""
    off = 0
    while off + REC.size <= size:
        pad = _is_pad(fd, off, size)
        if pad is not None:
            off += pad
            continue
        rec, why = _valid_record(fd, off, size, f"{where}@{off}")
        if rec is not None:
            yield rec
            off += REC.size + rec[3]
            continue
        # damaged: find the next record that checks out
        bad_at = off
        nxt = _next_magic(fd, off + 1, size)
        while nxt is not None:
            if _is_pad(fd, nxt, size) is not None or _valid_record(fd, nxt, size, where)[0]:
                break
            nxt = _next_magic(fd, nxt + 1, size)
        if nxt is None:
            if why == "torn":
                torn.append({"pack": where, "offset": bad_at, "bytes": size - bad_at})
            else:
                problems.append({"pack": where, "offset": bad_at, "skippedBytes": size - bad_at,
                                 "error": why})
            return
        problems.append({"pack": where, "offset": bad_at, "skippedBytes": nxt - bad_at,
                         "error": "record truncated" if why == "torn" else why})
        off = nxt
    if off < size:
        torn.append({"pack": where, "offset": off, "bytes": size - off})


def _new_index(path: str, name_in_errors: str) -> sqlite3.Connection:
    con = sqlitedb.connect(path)
    con.path = name_in_errors  # errors (a full disk) name the index, not a temp file
    con.execute("PRAGMA journal_mode=OFF")  # a temp file: a crash leaves garbage gc removes
    con.execute("PRAGMA synchronous=OFF")
    index.create(con)
    return con


def rebuild_index(store: BlobStore, *, timeout: float = 600.0) -> RebuildReport:
    """Rebuild ``store``'s index from its packs and publish it by rename (see module doc).
    Holds the exclusive lock; closes the store's connections first."""
    rep = RebuildReport(store.root)
    with store.lock(exclusive=True, timeout=timeout):
        store.close()
        rep.previous = index.problem(store.index_path)
        if rep.previous is None:
            _checkpoint(store.index_path)
        tmp = os.path.join(store.root, f".tmp-{secrets.token_hex(8)}-index.sqlite")
        published = False
        try:
            con = _new_index(tmp, store.index_path)
            try:
                _fill(con, store, rep)
                con.execute("PRAGMA journal_mode=WAL")
            finally:
                con.close()
            _publish(tmp, store.index_path)
            published = True
        except OSError as e:
            raise from_oserror(e, store.index_path) from None
        finally:
            if not published:
                for suffix in ("", "-journal", "-wal", "-shm"):
                    try:
                        os.unlink(tmp + suffix)
                    except FileNotFoundError:
                        pass
        store.close()
        _check_manifests(store, rep)
    return rep


def _fill(con: sqlite3.Connection, store: BlobStore, rep: RebuildReport) -> None:
    try:
        names = sorted(n for n in os.listdir(store.packs_dir)
                       if n.endswith(".pack") and not n.startswith("."))
    except FileNotFoundError:
        names = []
    con.execute("BEGIN")
    for name in names:
        path = os.path.join(store.packs_dir, name)
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            rows = list(scan_records(fd, size, path, rep.skipped_records, rep.torn_tails))
            rep.packs_scanned += 1
            if not rows:
                continue  # nothing good in it: an orphan for gc
            os.fsync(fd)  # index rows point only at data that is on the disk
        finally:
            os.close(fd)
        pid = con.execute("INSERT INTO packs(name) VALUES (?)", (name,)).lastrowid
        before = con.total_changes
        con.executemany(
            "INSERT OR IGNORE INTO chunks(id, pack, offset, raw_len, stored_len, flags, psum) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(rid, pid, off, rl, sl, fl, ps) for off, fl, rl, sl, rid, ps in rows],
        )
        added = con.total_changes - before
        rep.chunks_indexed += added
        rep.duplicate_records += len(rows) - added
    con.execute("COMMIT")


def _checkpoint(path: str) -> None:
    """Move a sound index's WAL into its file, so that removing the WAL before the rename
    loses nothing if a crash comes between the two."""
    con = index.connect(path)
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        con.close()


def _publish(tmp: str, path: str) -> None:
    fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):  # the old index's: replayed onto the new file otherwise
        try:
            os.unlink(path + suffix)
        except FileNotFoundError:
            pass
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


def _check_manifests(store: BlobStore, rep: RebuildReport) -> None:
    affected: set[str] = set()
    for digest in store.list_manifests():
        try:
            m = store.load_manifest(digest)
        except IntegrityError:
            affected.add(digest)  # verify reports it; a good copy restores it
            continue
        ids = m.ids()
        have = index.lookup_many(store.con, ids)
        for cid in dict.fromkeys(ids):
            if cid not in have:
                affected.add(digest)
                rep.missing_chunks.append({"chunk": cid.hex(), "manifest": digest})
    rep.affected_manifests = sorted(affected)
