"""Ingest: a disk (any DiskReader) -> chunks in packs + a published manifest.

Only the reader's allocated extents are read; chunks inside them that are all zero are
dropped (the manifest leaves them out). Reading, zero detection, hashing, the index lookup and
compression run in worker threads (pread, zstd and SQLite release the GIL), each taking a group
of consecutive chunks (``GROUP_BYTES``) whose ids it looks up in one query; the calling thread
appends new chunks to the pack in disk order (the pack starts its own writeback as it grows),
so memory stays bounded by the in-flight window and the fsync before each publish is short.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import xxhash

from ..accel import is_zero
from ..formats.base import DiskReader
from . import domains, index, manifest
from .cas import BlobStore
from .packs import FLAG_HOT, PACK_MAX, PackWriter, discard_unpublished, encode_chunk

#: publish index rows at least every this many bytes of new pack data
COMMIT_EVERY = 256 << 20
#: a worker takes this many bytes of consecutive chunks at a time (one index query for them)
GROUP_BYTES = 2 << 20

Progress = Callable[[int, int], None]


@dataclass
class IngestResult:
    digest: str
    virtual_size: int
    allocated_bytes: int  # bytes the source's tables say are allocated
    data_bytes: int  # bytes in non-zero chunks (what the manifest covers)
    stored_bytes: int  # bytes newly written to packs by this ingest
    new_chunks: int
    total_chunks: int
    chunk_size: int
    source_format: str

    def to_json(self) -> dict:
        return {
            "digest": self.digest,
            "virtualSize": self.virtual_size,
            "allocatedBytes": self.allocated_bytes,
            "dataBytes": self.data_bytes,
            "storedBytes": self.stored_bytes,
            "newChunks": self.new_chunks,
            "chunks": self.total_chunks,
            "chunkSize": self.chunk_size,
            "sourceFormat": self.source_format,
        }


def chunk_plan(extents: list[tuple[int, int]], chunk_size: int, size: int) -> Iterator[int]:
    """Chunk indices touched by the extents, ascending, each once."""
    last = -1
    for off, n in extents:
        first = max(off // chunk_size, last + 1)
        end = (min(off + n, size) + chunk_size - 1) // chunk_size
        yield from range(first, end)
        last = max(last, end - 1)


def _groups(plan: Iterator[int], per: int) -> Iterator[list[int]]:
    group: list[int] = []
    for ci in plan:
        group.append(ci)
        if len(group) >= per:
            yield group
            group = []
    if group:
        yield group


def ingest(
    store: BlobStore,
    reader: DiskReader,
    *,
    threads: int = 2,
    progress: Progress | None = None,
    domain: domains.Domain = domains.HOME_DOMAIN,
    before_publish: Callable[[str], None] | None = None,
) -> IngestResult:
    """Store ``reader``'s disk in ``store``; chunks dedupe only against chunks of the same
    dedup ``domain`` (``store/domains.py``): the work done and everything reported are the
    same whatever other domains hold. ``before_publish(digest)`` runs just before a manifest
    new to the store is published."""
    cs = store.cfg.chunk_size
    level = store.cfg.codec
    hot = FLAG_HOT if store.cfg.cold_compression is not None else 0
    size = reader.virtual_size
    chunk_id = domain.chunk_id
    extents = list(reader.extents())
    allocated = sum(n for _, n in extents)
    plan_bytes = sum(min(cs, size - ci * cs) for ci in chunk_plan(extents, cs, size))

    def work(group: list[int]) -> list[tuple]:
        """Read, zero-check and hash a group of chunks, look their ids up in one query, and
        compress the ones the store lacks."""
        got = []
        for ci in group:
            off = ci * cs
            n = min(cs, size - off)
            data = reader.read(off, n)
            if is_zero(data):
                got.append((ci, n, None, None))
            else:
                got.append((ci, n, chunk_id(xxhash.xxh3_128_digest(data)), data))
        known = index.lookup_many(store.con, [g[2] for g in got if g[2] is not None])
        out = []
        for ci, n, cid, data in got:
            if cid is None or cid in known:
                out.append((ci, n, cid, None, 0, None))
            else:
                payload, flags = encode_chunk(data, level)
                if flags:
                    flags |= hot
                out.append((ci, n, cid, payload, flags, index.payload_sum(payload)))
        return out

    idx_list: list[int] = []
    len_list: list[int] = []
    id_list: list[bytes] = []
    pending: dict[bytes, None] = {}  # new chunks written by this ingest, not yet published
    rows: list[index.Row] = []
    stored = 0
    new_chunks = 0
    done = 0
    writer: PackWriter | None = None
    published_size = 0  # bytes of the current pack that index rows point into
    unpublished = 0

    def publish() -> None:
        nonlocal rows, unpublished, published_size
        if writer is not None and rows:
            writer.sync()
            index.publish(store.con, writer.name, rows)
            published_size = writer.size
        rows = []
        unpublished = 0

    ok = False
    with store.lock(exclusive=False):
        try:
            with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
                window: deque = deque()
                groups = _groups(chunk_plan(extents, cs, size), max(1, GROUP_BYTES // cs))
                limit = max(2, threads * 4)

                def fill() -> None:
                    while len(window) < limit:
                        group = next(groups, None)
                        if group is None:
                            return
                        window.append(pool.submit(work, group))

                fill()
                while window:
                    results = window.popleft().result()
                    fill()
                    for ci, n, cid, payload, flags, psum in results:
                        done += n
                        if cid is None:
                            continue
                        idx_list.append(ci)
                        len_list.append(n)
                        id_list.append(cid)
                        if payload is None or cid in pending:
                            continue
                        if writer is None or writer.size >= PACK_MAX:
                            publish()
                            if writer is not None:
                                writer.close()
                            writer = PackWriter(store.packs_dir)
                            published_size = 0
                        off = writer.append(cid, n, payload, flags)
                        rows.append((cid, off, n, len(payload), flags, psum))
                        pending[cid] = None
                        stored += len(payload) + 32
                        unpublished += len(payload)
                        new_chunks += 1
                        if unpublished >= COMMIT_EVERY:
                            publish()
                    if progress is not None:
                        progress(done, plan_bytes)
            publish()
            ok = True
        finally:
            if writer is not None:
                writer.close()
                if writer.size == 0 or not ok:
                    discard_unpublished(writer.path, published_size)
        entries = np.zeros(len(idx_list), dtype=manifest.ENTRY_DTYPE)
        if idx_list:
            entries["index"] = idx_list
            entries["length"] = len_list
            entries["id"] = id_list
        m = manifest.Manifest(cs, size, entries, domain.tag)
        # a source that changed while it was read gives torn content: publish nothing
        reader.check_unchanged("captured")
        digest = store.publish_manifest(m, before_publish)
    return IngestResult(
        digest=digest,
        virtual_size=size,
        allocated_bytes=allocated,
        data_bytes=m.data_bytes,
        stored_bytes=stored,
        new_chunks=new_chunks,
        total_chunks=len(idx_list),
        chunk_size=cs,
        source_format=reader.format,
    )
