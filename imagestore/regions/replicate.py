"""The copy engine: make one manifest's disk available in another blob store, sending only the
chunks the target lacks.

``replicate(src, dst, digest)`` under shared locks on both stores (gc, which holds the
exclusive lock, cannot remove anything either side relies on):

1. load the manifest from ``src`` (digest re-checked);
2. look up its unique chunk ids in ``dst``'s index: chunks present are skipped (dedup across
   versions: a new version sharing most chunks with one already there costs only the new ones);
3. **adopt** what a killed earlier run already wrote: pack files in ``dst`` that no index row
   names yet (the pack a replication was writing when it died) are scanned with
   ``packs.scan_pack``; records of still-needed chunks are verified (``decode_record``), the pack
   is fsynced and its rows published. So a resumed replication does not copy again what
   already arrived and leaves no duplicate record behind. A pack that a live writer holds
   (replication writers keep an exclusive ``flock`` on their pack) is left alone;
4. copy the rest: records are read from ``src`` in runs (neighbours in a source pack come in
   one ``pread`` of up to ``RUN_BYTES``, by worker threads) and each is verified *before* it
   is written: its header (magic, id, length) and the checksum of its stored payload against
   the ``psum`` the source index recorded when the record was written (xxh3-64 over the
   compressed bytes: no decompression, so the check runs at memory speed). A record whose
   source row has no ``psum`` (older stores), whose payload does not match it, or which must
   be decompressed anyway (Premium) gets the full check: decompress and xxh3-128 against the
   chunk id. Records are appended to a new pack whose writeback starts as it grows; the pack
   is fsynced and then published in one index transaction (``INSERT OR IGNORE``: a chunk
   another writer published meanwhile is not indexed twice). Every ``COMMIT_EVERY`` bytes the
   pack is closed and published and a new one started, so a kill loses at most the pack in
   progress, which the next run adopts;
5. publish the manifest last (temp file, fsync, rename): the disk exists in ``dst`` only once
   all its data is there. A damaged manifest file already in ``dst`` is replaced the same way.

"Present" in step 2 means indexed: a chunk that is indexed in ``dst`` but damaged there is
not copied again; ``verify`` finds it and ``replicas.repair`` restores it from a good copy.

``premium=True`` (Premium_LRS) stores every chunk of the manifest uncompressed: compressed
source records are decompressed (already verified) and written raw, and chunks ``dst`` holds
compressed are rewritten raw with their index row replaced in the same transaction that
publishes the new pack. Disk creation then reads without decompressing.

Replicating a store onto itself is a no-op, except with ``premium=True``: the compressed
chunks of the manifest are then rewritten uncompressed in place (the gallery uses this for a
Premium_LRS source region, whose first copy is the captured data itself).

A chunk that is missing or damaged in ``src`` stops the replication with an
:class:`IntegrityError` naming it; nothing is published for the manifest.
"""

from __future__ import annotations

import fcntl
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass

from ..errors import Conflict, IntegrityError, from_oserror
from ..store import index, manifest
from ..store.cas import BlobStore
from ..store.packs import (
    FLAG_COMPRESSED,
    REC,
    REC_MAGIC,
    decode_record,
    read_record,
    scan_pack,
)

#: close, fsync and publish the pack in progress every this many bytes of new pack data
COMMIT_EVERY = 128 << 20
#: at most this many bytes of neighbouring source records are read by one pread
RUN_BYTES = 2 << 20
#: source records this close together are read in one run, the gap read and discarded
RUN_GAP = 64 << 10

Progress = Callable[[int, int], None]
Row = index.Row


@dataclass
class ReplicateResult:
    digest: str
    source: str
    target: str
    bytes_sent: int = 0  # bytes written to target packs (record headers included)
    chunks_sent: int = 0  # chunks copied from the source
    chunks_skipped: int = 0  # chunks the target already had
    chunks_adopted: int = 0  # chunks a killed earlier run had written, now published
    bytes_adopted: int = 0
    bytes_resumed: int = 0  # pack bytes a killed earlier run had staged in a blob container
    chunks_total: int = 0  # unique chunks of the manifest
    data_bytes: int = 0  # raw bytes of the unique chunks
    manifest_published: bool = False  # False when the target already had the manifest
    premium: bool = False

    def to_json(self) -> dict:
        return {
            "digest": self.digest,
            "source": self.source,
            "target": self.target,
            "bytesSent": self.bytes_sent,
            "chunksSent": self.chunks_sent,
            "chunksSkipped": self.chunks_skipped,
            "chunksAdopted": self.chunks_adopted,
            "bytesAdopted": self.bytes_adopted,
            "bytesResumed": self.bytes_resumed,
            "chunks": self.chunks_total,
            "dataBytes": self.data_bytes,
            "manifestPublished": self.manifest_published,
            "uncompressed": self.premium,
        }


class RecordSink:
    """Appends verified records to ``dst``, rolling over and publishing every COMMIT_EVERY."""

    def __init__(self, dst: BlobStore, *, replace: bool, context: bytes | None = None) -> None:
        self.dst = dst
        self.replace = replace
        #: with ``context`` (the replication's digest) a store that names packs after their
        #: content (a blob container) resumes a killed run's pack instead of starting anew
        self.context = context
        self.writer = None
        self.rows: list[Row] = []
        self.size = 0
        self.written = 0
        self.resumed = 0  # bytes a killed earlier run had already sent (blob containers)

    def add(self, cid: bytes, raw_len: int, payload: bytes | memoryview, flags: int,
            psum: int | None = None) -> None:
        """Append one verified record; ``psum`` is its payload checksum when known."""
        if self.writer is None:
            hint = None if self.context is None else self.context + cid
            self.writer = self.dst.new_pack_writer(hint)
        off = self.writer.append(cid, raw_len, payload, flags)
        if psum is None:
            psum = index.payload_sum(payload)
        self.rows.append((cid, off, raw_len, len(payload), flags, psum))
        self.size += REC.size + len(payload)
        self.written += REC.size + len(payload)
        if self.size >= min(COMMIT_EVERY, self.dst.commit_every):
            self.flush()

    def flush(self) -> None:
        w = self.writer
        if w is None:
            return
        try:
            if self.rows:
                w.sync()
                index.publish(self.dst.con, w.name, self.rows, replace=self.replace)
        finally:
            self.resumed += getattr(w, "bytes_resumed", 0)
            if w.size == 0:
                w.discard()
            else:
                w.close()
            self.writer = None
            self.rows = []
            self.size = 0

    def abort(self) -> None:
        """After a failure: publish what was verified and written (it is valid data); where
        even that fails (a full disk), remove the pack: nothing points into it."""
        w = self.writer
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - the original error is the one to report
            if w is not None:
                w.discard()


def _adopt(dst: BlobStore, need: dict[bytes, int], premium: bool, res: ReplicateResult) -> None:
    """Publish records of needed chunks that unindexed packs in ``dst`` already hold."""
    if dst.backend != "directory":
        return  # a container indexes committed packs when opened; staged blocks are resumed
    try:
        names = sorted(n for n in os.listdir(dst.packs_dir) if n.endswith(".pack"))
    except OSError as e:
        raise from_oserror(e, dst.packs_dir) from None
    known = set(index.pack_names(dst.con).values())
    for name in names:
        if not need:
            return
        if name in known:
            continue
        path = os.path.join(dst.packs_dir, name)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer is still filling it
            size = os.fstat(fd).st_size
            rows: list[Row] = []
            for off, flags, raw_len, stored_len, rid in scan_pack(fd, size):
                if rid not in need or (premium and flags & FLAG_COMPRESSED):
                    continue
                buf = read_record(fd, off, stored_len)
                try:
                    decode_record(buf, rid, path)
                except IntegrityError:
                    continue  # damaged: copy it again from the source
                rows.append((rid, off, raw_len, stored_len, flags,
                             index.payload_sum(memoryview(buf)[REC.size:])))
                del need[rid]
            if rows:
                os.fsync(fd)
                index.publish(dst.con, name, rows, replace=premium)
                res.chunks_adopted += len(rows)
                res.bytes_adopted += sum(REC.size + r[3] for r in rows)
        finally:
            os.close(fd)


def replicate(
    src: BlobStore,
    dst: BlobStore,
    digest: str,
    *,
    progress: Progress | None = None,
    premium: bool = False,
    threads: int = 2,
) -> ReplicateResult:
    """Copy the disk ``digest`` from ``src`` to ``dst``, sending only the chunks ``dst`` lacks.

    ``progress(done, total)`` is called with raw bytes of unique chunks: present, adopted and
    copied chunks count as done. Resumable: re-running after a kill copies only what is still
    missing."""
    digest = src.check_digest(digest)
    res = ReplicateResult(digest, src.root, dst.root, premium=premium)
    if src.cfg.chunk_size != dst.cfg.chunk_size:
        raise Conflict(
            f"{dst.root}: chunk size {dst.cfg.chunk_size} differs from the source's "
            f"{src.cfg.chunk_size}; a manifest cannot move between them"
        )
    same = os.path.realpath(src.root) == os.path.realpath(dst.root)
    with ExitStack() as locks:
        locks.enter_context(src.lock(exclusive=False))
        if not same:
            locks.enter_context(dst.lock(exclusive=False))
        m = src.load_manifest(digest)
        sizes: dict[bytes, int] = {}
        for _off, n, cid in m.extents():
            sizes.setdefault(cid, n)
        res.chunks_total = len(sizes)
        res.data_bytes = total = sum(sizes.values())
        if same and not premium:
            res.chunks_skipped = len(sizes)
            if progress:
                progress(total, total)
            return res
        have = index.lookup_many(dst.con, sizes)
        need = {cid: n for cid, n in sizes.items()
                if cid not in have or (premium and have[cid][4] & FLAG_COMPRESSED)}
        res.chunks_skipped = len(sizes) - len(need)
        done = total - sum(need.values())
        if progress:
            progress(done, total)
        if need and not same:  # same store (Premium in place): no foreign packs to adopt
            _adopt(dst, need, premium, res)
            done = total - sum(need.values())
        if need:
            locs = index.lookup_many(src.con, need)
            lost = [cid for cid in need if cid not in locs]
            if lost:
                raise IntegrityError(
                    f"manifest {digest}: {len(lost)} chunk(s) missing from the source "
                    f"{src.root}, first {lost[0].hex()}"
                )
            order = sorted(need, key=lambda c: (locs[c][0], locs[c][1]))  # source pack order
            sums = index.lookup_sums(src.con, need)
            sink = RecordSink(dst, replace=premium, context=digest.encode())

            def fetch(run: list[bytes]) -> list[tuple[bytes, int, bytes | memoryview, int, int | None]]:
                first, last = locs[run[0]], locs[run[-1]]
                span, name = src.read_pack_span(first[0], first[1],
                                                last[1] + REC.size + last[3] - first[1])
                buf = memoryview(span)
                out = []
                for cid in run:
                    _pack, off, raw_len, stored_len, flags = locs[cid]
                    rec = buf[off - first[1] : off - first[1] + REC.size + stored_len]
                    where = f"{src.packs_dir}/{name}@{off}"
                    payload = rec[REC.size:]
                    if premium and flags & FLAG_COMPRESSED:
                        out.append((cid, raw_len, decode_record(rec, cid, where), 0, None))
                        continue
                    psum = sums.get(cid)
                    if (psum is None or not _header_ok(rec, cid, flags, raw_len, stored_len)
                            or index.payload_sum(payload) != psum):
                        decode_record(rec, cid, where)  # full check: raises when damaged
                        # the record is good: write it as its own header describes it, even
                        # where the index row disagrees; the sink computes its psum
                        _m, flags, raw_len, _sl, _id = REC.unpack_from(rec)
                        psum = None
                    out.append((cid, raw_len, payload, flags, psum))
                return out

            ok = False
            try:
                with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
                    it = _runs(order, locs)
                    window: deque = deque()
                    limit = max(2, threads * 2)

                    def fill() -> None:
                        while len(window) < limit:
                            run = next(it, None)
                            if run is None:
                                return
                            window.append(pool.submit(fetch, run))

                    fill()
                    while window:
                        records = window.popleft().result()
                        fill()
                        for cid, raw_len, payload, flags, psum in records:
                            sink.add(cid, raw_len, payload, flags, psum)
                            res.chunks_sent += 1
                            done += raw_len
                        if progress:
                            progress(done, total)
                sink.flush()
                ok = True
            finally:
                if not ok:
                    sink.abort()
                res.bytes_sent = sink.written - sink.resumed
                res.bytes_resumed = sink.resumed
        res.manifest_published = _publish_manifest(dst, digest, m)
    return res


def _header_ok(rec: memoryview, cid: bytes, flags: int, raw_len: int, stored_len: int) -> bool:
    """The record header matches its index row (magic, flags, lengths, chunk id)."""
    if len(rec) != REC.size + stored_len:
        return False
    magic, rflags, rraw, rstored, rid = REC.unpack_from(rec)
    return (magic, rflags, rraw, rstored, rid) == (REC_MAGIC, flags, raw_len, stored_len, cid)


def _runs(order: list[bytes], locs: dict[bytes, index.Location]):
    """Group ids (in source pack order) into runs of neighbouring records of one pack, each
    at most RUN_BYTES long (a single larger record is a run of its own)."""
    run: list[bytes] = []
    start = end = pack = -1
    for cid in order:
        p, off, _rl, sl, _fl = locs[cid]
        rec_end = off + REC.size + sl
        if run and (p != pack or off - end > RUN_GAP or off < end or rec_end - start > RUN_BYTES):
            yield run
            run = []
        if not run:
            start, pack = off, p
        run.append(cid)
        end = rec_end
    if run:
        yield run


def _publish_manifest(dst: BlobStore, digest: str, m: manifest.Manifest) -> bool:
    """Publish ``m`` in ``dst`` unless a good copy is there; a damaged one is replaced by an
    atomic rename. Returns True when a manifest file was written."""
    if dst.has_manifest(digest):
        try:
            dst.load_manifest(digest)
            return False
        except IntegrityError:
            pass
    dst.write_manifest(digest, manifest.compress(m.encode()))
    return True
