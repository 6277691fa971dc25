"""Materialize: a manifest -> a new disk file in any writable format.

Every chunk is read from its pack, decompressed and hash-checked in worker threads; the
calling thread hands the non-zero 4 KiB runs to the format writer in disk order, so holes
(and zero blocks inside chunks) stay holes. Output goes to a temp file beside the target and
is renamed into place only when complete: a failure leaves no partial disk behind.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..accel import nonzero_runs
from ..errors import Conflict, IntegrityError, InvalidArgument
from ..formats import new_disk_file
from . import index
from .cas import BlobStore
from .packs import payload_aligned

Progress = Callable[[int, int], None]
ChunkSource = Callable[[bytes], bytes]


@dataclass
class MaterializeResult:
    path: str
    format: str
    virtual_size: int
    written_bytes: int
    digest: str
    cloned_bytes: int = 0

    def to_json(self) -> dict:
        return {
            "path": self.path,
            "format": self.format,
            "virtualSize": self.virtual_size,
            "writtenBytes": self.written_bytes,
            "digest": self.digest,
            "clonedBytes": self.cloned_bytes,
        }


def materialize(
    store: BlobStore,
    digest: str,
    path: str,
    *,
    fmt: str = "raw",
    overwrite: bool = False,
    threads: int = 2,
    progress: Progress | None = None,
    read_chunk: ChunkSource | None = None,
    verify: bool = True,
) -> MaterializeResult:
    """Write the disk ``digest`` to ``path``. ``read_chunk`` overrides how chunks are fetched
    (replicas with fail-over use it); by default the store's own packs are read.

    Where the writer can share blocks (raw output) and a chunk is stored uncompressed on a
    4 KiB boundary (Premium / ``--compression none`` stores, incompressible data), the chunk is
    reflinked from the pack instead of written: no data copied, no space used. The chunk is
    still read and hash-checked first unless ``verify`` is False.
    """
    if os.path.isdir(path):
        raise InvalidArgument(f"--path: {path} is a directory")
    if os.path.lexists(path) and not overwrite:
        raise Conflict(f"{path}: file exists (pass --force to replace it)")
    with store.lock(exclusive=False):
        m = store.load_manifest(digest)
        locs = index.lookup_many(store.con, m.ids()) if read_chunk is None else {}
        if read_chunk is None:
            missing = [cid for cid in dict.fromkeys(m.ids()) if cid not in locs]
            if missing:
                raise IntegrityError(
                    f"manifest {digest}: {len(missing)} chunk(s) missing from the store, "
                    f"first {missing[0].hex()}"
                )
        total = m.data_bytes
        written = 0
        with new_disk_file(path, m.virtual_size, fmt) as writer:
            can_clone = read_chunk is None and hasattr(writer, "clone")
            # writers whose write() may run concurrently at distinct offsets (raw) are written
            # by the workers themselves; the others get their writes in order from this thread
            direct = getattr(writer, "concurrent", False)
            cloned = 0

            def work(item: tuple[int, int, bytes]):
                off, n, cid = item
                if can_clone and n % 4096 == 0 and payload_aligned(locs[cid][1], locs[cid][4]):
                    data = store.read_chunk(cid, locs[cid]) if verify else None
                    return off, data, ("clone", cid, n)
                data = read_chunk(cid) if read_chunk else store.read_chunk(cid, locs[cid])
                if len(data) != n:
                    raise IntegrityError(f"chunk {cid.hex()}: length {len(data)} != manifest's {n}")
                runs = nonzero_runs(data)
                if not direct:
                    return off, data, runs
                mv = memoryview(data)
                for s, e in runs:
                    writer.write(off + s, mv[s:e])
                writer.written(off, n)
                return off, n, sum(e - s for s, e in runs)

            with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
                it = iter(m.extents())
                window: deque = deque()
                limit = max(2, threads * 4)

                def fill() -> None:
                    while len(window) < limit:
                        item = next(it, None)
                        if item is None:
                            return
                        window.append(pool.submit(work, item))

                fill()
                done = 0
                while window:
                    off, data, runs = window.popleft().result()
                    fill()
                    if isinstance(runs, int):  # written by the worker: (offset, length, bytes)
                        written += runs
                        done += data
                        if progress is not None:
                            progress(done, total)
                        continue
                    if isinstance(runs, tuple):  # a block-sharing candidate
                        _, cid, n = runs
                        src_fd, src_off = store.payload_fd(locs[cid])
                        if writer.clone(src_fd, src_off, off, n):
                            cloned += n
                            done += n
                            if progress is not None:
                                progress(done, total)
                            continue
                        if data is None:
                            data = store.read_chunk(cid, locs[cid])
                        runs = nonzero_runs(data)
                    mv = memoryview(data)
                    for s, e in runs:
                        writer.write(off + s, mv[s:e])
                        written += e - s
                    done += len(data)
                    if progress is not None:
                        progress(done, total)
    return MaterializeResult(
        path, fmt, writer.virtual_size, written, store.check_digest(digest), cloned
    )
