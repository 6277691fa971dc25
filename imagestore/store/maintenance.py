"""verify, gc and stats for one blob store."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np

from ..errors import IntegrityError
from . import index, marking, sqlitedb
from .cas import RESERVE_BYTES, BlobStore, make_reserve, release_reserve
from .packs import (
    FLAG_HOT,
    REC,
    PackWriter,
    decode_record,
    discard_unpublished,
    encode_chunk,
    read_record,
)

Progress = Callable[[int, int], None]


@dataclass
class VerifyReport:
    root: str
    chunks_checked: int = 0
    bytes_checked: int = 0
    manifests_checked: int = 0
    bad_chunks: list[dict] = field(default_factory=list)
    missing_chunks: list[dict] = field(default_factory=list)
    bad_manifests: list[dict] = field(default_factory=list)
    affected_manifests: list[str] = field(default_factory=list)
    unreferenced_chunks: int = 0
    #: what is wrong with the chunk index (missing, empty, malformed), None when it is sound
    index_error: str | None = None

    @property
    def index_path(self) -> str:
        return os.path.join(self.root, "index.sqlite")

    @property
    def clean(self) -> bool:
        return not (self.bad_chunks or self.missing_chunks or self.bad_manifests
                    or self.index_error)

    def to_json(self) -> dict:
        return {
            "store": self.root,
            "clean": self.clean,
            "chunksChecked": self.chunks_checked,
            "bytesChecked": self.bytes_checked,
            "manifestsChecked": self.manifests_checked,
            "badChunks": self.bad_chunks,
            "missingChunks": self.missing_chunks,
            "badManifests": self.bad_manifests,
            "affectedManifests": self.affected_manifests,
            "unreferencedChunks": self.unreferenced_chunks,
            "index": {"path": self.index_path, "ok": self.index_error is None,
                      "error": self.index_error},
        }


def verify(store: BlobStore, *, progress: Progress | None = None) -> VerifyReport:
    """Re-hash every stored chunk and check that every manifest's chunks exist.

    A missing, empty or malformed index is damage too (``index_error``): the chunks can then
    not be located, so every manifest of the store is affected until the index is rebuilt
    (``store/rebuild.py``)."""
    rep = VerifyReport(store.root)
    with store.lock(exclusive=False):
        rep.index_error = index.problem(store.index_path)
        if rep.index_error is None:
            try:
                _verify_indexed(store, rep, progress)
                return rep
            except sqlite3.DatabaseError as e:
                if not index.is_damage(e):
                    raise
                rep.index_error = f"the chunk index is damaged ({e})"
            except IntegrityError as e:  # opening found it damaged (a race with quick_check)
                rep.index_error = str(e)
        store.close()
        affected = set()
        # what a half-read index said is not trustworthy: report the index, and the manifests
        rep.bad_chunks, rep.missing_chunks, rep.bad_manifests = [], [], []
        rep.manifests_checked = rep.unreferenced_chunks = 0
        for digest in store.list_manifests():
            rep.manifests_checked += 1
            affected.add(digest)
            try:
                store.load_manifest(digest)
            except Exception as e:  # noqa: BLE001 - any damage is reported, not raised
                rep.bad_manifests.append({"manifest": digest, "error": str(e)})
        rep.affected_manifests = sorted(affected)
    return rep


def _verify_indexed(store: BlobStore, rep: VerifyReport, progress: Progress | None) -> None:
    con = store.con
    total = con.execute("SELECT COALESCE(SUM(raw_len),0) FROM chunks").fetchone()[0]
    bad: set[bytes] = set()
    group: list[tuple] = []

    def check_group() -> None:
        """Check the records of ``group`` (rows of one pack, close together) read by one
        pread: a syscall and a buffer per span, not per record."""
        if not group:
            return
        pack = group[0][1]
        base = group[0][2]
        end = max(r[2] + REC.size + r[4] for r in group)
        try:
            raw, name = store.read_pack_span(pack, base, end - base)
            span = memoryview(raw)
        except IntegrityError as e:
            name, span, err = "", None, e
        nbytes = 0
        for cid, _pack, off, raw_len, stored_len, _flags, psum in group:
            cid = bytes(cid)
            nbytes += raw_len
            try:
                if span is None:
                    raise err
                buf = span[off - base : off - base + REC.size + stored_len]
                try:
                    decode_record(buf, cid, "")
                except IntegrityError:  # again, for the message naming where it is
                    decode_record(buf, cid, f"{store.packs_dir}/{name}@{off}")
                    raise
                if psum is not None and index.payload_sum(buf[REC.size:]) != psum:
                    raise IntegrityError(f"chunk {cid.hex()} in {store.packs_dir}/{name}@{off}: "
                                         "the index's payload checksum does not match the record")
            except IntegrityError as e:
                bad.add(cid)
                rep.bad_chunks.append({"chunk": cid.hex(), "error": str(e)})
        rep.chunks_checked += len(group)
        rep.bytes_checked += nbytes
        group.clear()
        if progress:
            progress(rep.bytes_checked, total)

    cur = con.execute("SELECT id, pack, offset, raw_len, stored_len, flags, psum FROM chunks "
                      "ORDER BY pack, offset")  # index.iter_all's rows, fetched in batches
    while True:
        rows = cur.fetchmany(_BATCH)
        if not rows:
            break
        for row in rows:
            if group and (row[1] != group[0][1]
                          or row[2] + REC.size + row[4] - group[0][2] > VERIFY_SPAN):
                check_group()
            group.append(row)
    check_group()
    _check_manifests(store, rep, bad)


#: verify reads neighbouring records of a pack by one pread of up to this many bytes
VERIFY_SPAN = 4 << 20


def _check_manifests(store: BlobStore, rep: VerifyReport, bad: set[bytes]) -> None:
    """Every manifest loads and its chunks are indexed; count indexed chunks no manifest
    references. The index is checked against the manifests batch by batch (``marking``), so
    the cost follows the distinct chunks (a pass over the manifests per 2 M of them), not
    versions x chunks, and memory follows a batch, not the store; only when a chunk is bad
    are the manifests walked again to name the affected."""
    affected: set[str] = set()
    good: list[str] = []
    for digest in store.list_manifests():
        rep.manifests_checked += 1
        try:
            store.load_manifest(digest)
        except Exception as e:  # noqa: BLE001 - any damage is reported, not raised
            rep.bad_manifests.append({"manifest": digest, "error": str(e)})
            affected.add(digest)
            continue
        good.append(digest)
    missing: dict[str, dict[bytes, None]] = {}

    def on_missing(digest: str, ids: np.ndarray) -> None:
        got = missing.setdefault(digest, {})
        for cid in ids.tolist():
            got[bytes(cid)] = None

    unreferenced = 0
    for b in marking.index_batches(store.con):
        ref = marking.mark(store, good, b, on_missing)
        unreferenced += int(len(ref) - ref.sum())
    for digest in good:  # in the manifests' order, as listed
        for cid in missing.get(digest, ()):
            affected.add(digest)
            rep.missing_chunks.append({"chunk": cid.hex(), "manifest": digest})
    if bad:
        for digest in good:
            if any(cid in bad for cid in store.load_manifest(digest).ids()):
                affected.add(digest)
    rep.affected_manifests = sorted(affected)
    rep.unreferenced_chunks = unreferenced


@dataclass
class GcReport:
    """What gc removed, or with ``dry_run`` what it would remove (then every key says so:
    ``wouldRemoveChunks``, ``wouldFreeBytes``, …, and nothing was touched)."""

    removed_chunks: int = 0
    removed_packs: int = 0
    rewritten_packs: int = 0
    freed_bytes: int = 0
    removed_temps: int = 0
    #: chunks a capture wrote hot that were re-encoded with the store's cold codec
    recompressed_chunks: int = 0
    dry_run: bool = False

    def to_json(self) -> dict:
        if self.dry_run:
            return {
                "dryRun": True,
                "wouldRemoveChunks": self.removed_chunks,
                "wouldRemovePacks": self.removed_packs,
                "wouldRewritePacks": self.rewritten_packs,
                "wouldFreeBytes": self.freed_bytes,
                "wouldRemoveTempFiles": self.removed_temps,
                "wouldRecompressChunks": self.recompressed_chunks,
            }
        return {
            "removedChunks": self.removed_chunks,
            "removedPacks": self.removed_packs,
            "rewrittenPacks": self.rewritten_packs,
            "freedBytes": self.freed_bytes,
            "removedTempFiles": self.removed_temps,
            "recompressedChunks": self.recompressed_chunks,
        }


def _count_temps(*dirs: str) -> int:
    n = 0
    for d in dirs:
        try:
            n += sum(1 for name in os.listdir(d) if name.startswith(".tmp-"))
        except FileNotFoundError:
            pass
    return n


def gc(store: BlobStore, *, timeout: float = 600.0, dry_run: bool = False,
       unpublished: Collection[str] = ()) -> GcReport:
    """Remove chunks no manifest references; compact packs; delete orphan packs.

    Runs under the exclusive lock. Order: copy live chunks of a pack to a new pack, fsync,
    repoint the index in one transaction, then unlink the old pack. A crash at any point
    leaves either the old or the new location valid; leftovers are orphans the next gc removes.
    A damaged or missing index is refused (IntegrityError) before anything is touched: packs
    it does not name would otherwise look like orphans. ``dry_run`` changes nothing;
    ``unpublished`` names manifests to count as gone (what the gallery's first steps of
    ``store gc`` would unpublish), so a dry run reports what the real run would free.
    """
    rep = GcReport(dry_run=dry_run)
    with store.lock(exclusive=True, timeout=timeout):
        index.check(store.index_path)
        con = store.con
        if dry_run:
            rep.removed_temps = _count_temps(store.manifests_dir, store.root)
        else:
            rep.removed_temps = store.cleanup_temps()
            if sqlitedb.free_bytes(store.index_path) < 2 * RESERVE_BYTES:
                release_reserve(store.root)  # a full disk: room for the index changes below
        gone = set(unpublished)
        digests = [d for d in store.list_manifests() if d not in gone]
        stats, live = _pack_stats(store, digests)
        names = index.pack_names(con)
        on_disk = {n for n in os.listdir(store.packs_dir) if n.endswith(".pack")}
        # packs no index row points at: torn writes of crashed ingests, old packs of a crashed gc
        for name in sorted(on_disk - {names[p] for p in stats}):
            path = os.path.join(store.packs_dir, name)
            rep.freed_bytes += os.path.getsize(path)
            rep.removed_packs += 1
            if not dry_run:
                os.unlink(path)
        if not dry_run:
            con.execute("DELETE FROM packs WHERE id NOT IN (SELECT DISTINCT pack FROM chunks)")
        # whole dead packs before any compaction: on a full disk, free space before writing
        compact = []
        for pid, (n, live_n, _size, live_bytes) in sorted(stats.items()):
            name = names[pid]
            path = os.path.join(store.packs_dir, name)
            file_size = os.path.getsize(path) if os.path.exists(path) else 0
            if live_n == 0:
                rep.removed_chunks += n
                rep.removed_packs += 1
                rep.freed_bytes += file_size
                if not dry_run:
                    con.execute("BEGIN IMMEDIATE")
                    try:
                        con.execute("DELETE FROM chunks WHERE pack=?", (pid,))
                        con.execute("DELETE FROM packs WHERE id=?", (pid,))
                        con.execute("COMMIT")
                    except BaseException:
                        if con.in_transaction:
                            con.execute("ROLLBACK")
                        raise
                    os.unlink(path)
            else:
                compact.append((pid, n, live_n, live_bytes, path, file_size))
        # "capture hot, store cold": packs holding records a capture wrote hot are rewritten
        # with those records re-encoded by the cold codec
        cold = store.cfg.cold_codec
        hot: dict[int, int] = {}
        if cold is not None:
            hot = dict(con.execute(
                f"SELECT pack, COUNT(*) FROM chunks WHERE flags & {FLAG_HOT} GROUP BY pack"))
        # the smallest live data first: each compaction needs room for what it copies
        for pid, n, live_n, live_bytes, path, file_size in sorted(compact, key=lambda c: c[3]):
            dead = n - live_n
            # compact when at least a quarter of the file is dead space
            if dead == 0 and file_size - live_bytes < file_size // 4 and pid not in hot:
                continue
            rep.removed_chunks += dead
            rep.rewritten_packs += 1
            rep.freed_bytes += file_size - live_bytes
            if dry_run:
                rep.recompressed_chunks += min(hot.get(pid, 0), live_n)
                continue
            recoded, saved = _compact_pack(store, pid, path, live, digests,
                                           cold if pid in hot else None)
            rep.recompressed_chunks += recoded
            rep.freed_bytes += saved
        if not dry_run:
            make_reserve(store.root)
    return rep


def _is_live(live: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Boolean mask: which of ``ids`` (``V16``) are in the sorted ``live``."""
    if not len(live) or not len(ids):
        return np.zeros(len(ids), dtype=bool)
    pos = np.minimum(np.searchsorted(live, ids), len(live) - 1)
    return live[pos] == ids


#: index rows gc reads at a time
_BATCH = 1 << 18


#: gc keeps the live ids of the index (16 bytes each) for compaction up to this many; past
#: it, each pack to compact is marked by its own pass over the manifests (bounded memory)
LIVE_KEEP = 1 << 21


def _pack_stats(store: BlobStore, digests: list[str]
                ) -> tuple[dict[int, tuple[int, int, int, int]], np.ndarray | None]:
    """pack id -> (chunks, live chunks, record bytes, live record bytes), from the index
    marked batch by batch (``marking``: memory follows a batch, not the store); and the
    sorted live ids when there are at most :data:`LIVE_KEEP` of them (else None)."""
    acc: dict[int, list[int]] = {}
    kept: list[np.ndarray] | None = []
    n_live = 0
    for b in marking.index_batches(store.con, ("pack", "stored_len")):
        if not len(b.ids):
            continue
        alive = marking.mark(store, digests, b)
        packs, size = b.cols[0], b.cols[1] + REC.size
        keys, inv = np.unique(packs, return_inverse=True)
        n = np.bincount(inv, minlength=len(keys))
        live_n = np.bincount(inv, weights=alive, minlength=len(keys))
        nbytes = np.bincount(inv, weights=size, minlength=len(keys))
        live_bytes = np.bincount(inv, weights=size * alive, minlength=len(keys))
        for k, a, c, d, e in zip(keys.tolist(), n.tolist(), live_n.tolist(), nbytes.tolist(),
                                 live_bytes.tolist(), strict=True):
            t = acc.setdefault(k, [0, 0, 0, 0])
            t[0] += int(a)
            t[1] += int(c)
            t[2] += int(d)
            t[3] += int(e)
        if kept is not None:
            kept.append(b.ids[alive])
            n_live += len(kept[-1])
            if n_live > LIVE_KEEP:
                kept = None
    live = None if kept is None else (np.concatenate(kept) if kept else np.zeros(0, "V16"))
    return {k: (v[0], v[1], v[2], v[3]) for k, v in acc.items()}, live


def _live_mask(store: BlobStore, ids: np.ndarray, live: np.ndarray | None,
               digests: list[str]) -> np.ndarray:
    """Which of ``ids`` (``V16``) a manifest references: from ``live`` when gc kept it, else
    by marking them (sorted, a batch at a time) with passes over the manifests."""
    if live is not None:
        return _is_live(live, ids)
    out = np.zeros(len(ids), dtype=bool)
    for i in range(0, len(ids), marking.MARK_BATCH):
        part = ids[i : i + marking.MARK_BATCH]
        order = np.argsort(part)
        ref = marking.mark(store, digests, marking.Batch(part[order], []))
        out[i + order] = ref
    return out


def _compact_pack(store: BlobStore, pid: int, path: str, live: np.ndarray | None,
                  digests: list[str], cold: int | str | None = None) -> tuple[int, int]:
    """Copy the live records of pack ``pid`` to a new pack, repoint the index, remove the
    old pack. With ``cold``, records flagged hot are re-encoded with it on the way. Returns
    (records re-encoded, bytes that re-encoding saved)."""
    con = store.con
    rows = con.execute(
        "SELECT id, offset, raw_len, stored_len, flags FROM chunks WHERE pack=? ORDER BY offset",
        (pid,),
    ).fetchall()
    if rows:
        keep = _live_mask(store, np.frombuffer(b"".join(bytes(r[0]) for r in rows), dtype="V16"),
                          live, digests)
        rows = [r for r, k in zip(rows, keep.tolist(), strict=True) if k]
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    w = PackWriter(store.packs_dir)
    published = False
    try:
        new_rows = []
        recoded = saved = 0
        for cid, off, raw_len, stored_len, flags in rows:
            buf = read_record(fd, off, stored_len)
            cid = bytes(cid)
            data = decode_record(buf, cid, path)  # never copy a damaged chunk forward
            payload: bytes | memoryview = memoryview(buf)[REC.size:]
            if cold is not None and flags & FLAG_HOT:
                payload, flags = encode_chunk(data, cold)  # clears the hot bit
                recoded += 1
                saved += stored_len - len(payload)
                stored_len = len(payload)
            new_off = w.append(cid, raw_len, payload, flags)
            new_rows.append((cid, new_off, raw_len, stored_len, flags, index.payload_sum(payload)))
        w.sync()
    except BaseException:
        w.close()
        discard_unpublished(w.path, 0)  # a full disk: give back what the copy took
        raise
    finally:
        os.close(fd)
        w.close()
    con.execute("BEGIN IMMEDIATE")
    try:
        con.execute("INSERT INTO packs(name) VALUES (?)", (w.name,))
        new_pid = con.execute("SELECT id FROM packs WHERE name=?", (w.name,)).fetchone()[0]
        con.execute("DELETE FROM chunks WHERE pack=?", (pid,))
        con.executemany(
            "INSERT INTO chunks(id, pack, offset, raw_len, stored_len, flags, psum) "
            "VALUES (?,?,?,?,?,?,?)",
            [(c, new_pid, o, r, s, f, ps) for c, o, r, s, f, ps in new_rows],
        )
        con.execute("DELETE FROM packs WHERE id=?", (pid,))
        con.execute("COMMIT")
        published = True
    except BaseException:
        if con.in_transaction:  # SQLite has already rolled back after a full disk
            con.execute("ROLLBACK")
        raise
    finally:
        if not published:
            discard_unpublished(w.path, 0)
    store._local.pack_names = None
    os.unlink(path)
    return recoded, saved


def stats(store: BlobStore) -> dict:
    con = store.con
    chunks, raw, stored = con.execute(
        "SELECT COUNT(*), COALESCE(SUM(raw_len),0), COALESCE(SUM(stored_len + ?),0) FROM chunks",
        (REC.size,),
    ).fetchone()
    pack_bytes = 0
    packs = 0
    if store.backend == "directory":
        for name in os.listdir(store.packs_dir):
            if name.endswith(".pack"):
                packs += 1
                pack_bytes += os.path.getsize(os.path.join(store.packs_dir, name))
    else:  # a blob container: the sizes of its committed pack blobs
        sizes = store.pack_blobs()
        packs, pack_bytes = len(sizes), sum(sizes.values())
    logical = 0
    referenced = 0
    digests = store.list_manifests()
    for d in digests:
        try:
            m = store.load_manifest(d)
        except Exception:  # noqa: BLE001 - stats never fails on damage; verify reports it
            continue
        logical += m.virtual_size
        referenced += m.data_bytes
    idx_bytes = sum(
        os.path.getsize(p) for p in (store.index_path, store.index_path + "-wal") if os.path.exists(p)
    )
    man_bytes = sum(
        os.path.getsize(os.path.join(store.manifests_dir, f"{d}.mf")) for d in digests
    ) if store.backend == "directory" else None
    return {
        "chunkSize": store.cfg.chunk_size,
        "compression": store.cfg.compression,
        "hash": store.cfg.hash,
        "manifests": len(digests),
        "chunks": chunks,
        "packs": packs,
        "logicalBytes": logical,
        "allocatedBytes": referenced,
        "uniqueBytes": raw,
        "storedBytes": stored,
        "packBytes": pack_bytes,
        "indexBytes": idx_bytes,
        "manifestBytes": man_bytes,
        "dedupRatio": round(referenced / raw, 3) if raw else 1.0,
        "compressionRatio": round(raw / stored, 3) if stored else 1.0,
    }
