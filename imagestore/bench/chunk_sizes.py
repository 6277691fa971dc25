"""``bench chunk-sizes``: what the chunk size costs and buys, for v1 and a v2 with files
changed in place: v2's new bytes per changed byte, dedup, ingest speed, index and manifest
sizes."""

from __future__ import annotations

import os
import time

from ..home import Home
from ..store.maintenance import stats
from .cache import allocated_bytes, drop_cache
from .images import build_images, changed_copy, make_ext4, pick_source
from .settings import MiB, Settings
from .stores import ingest_path, new_store
from .tools import rm, scratch

#: chunk sizes of the chunk-size table
CHUNK_SIZES = ("64K", "128K", "256K", "512K", "1M", "2M", "4M")


def bench_chunk_sizes(s: Settings, sizes: tuple[str, ...] = CHUNK_SIZES) -> list[dict]:
    """One row per chunk size."""
    rows: list[dict] = []
    with scratch(s, "chunks-") as d:
        v1 = os.path.join(d, "v1.raw")
        v2 = os.path.join(d, "v2.raw")
        src: str | None = None
        if s.image:
            img = build_images(s, d)  # gives d/image.raw
            os.rename(img.raw, v1)
            rm(img.vhd, img.vhdx)
        else:
            src, n = pick_source(s.size, d)
            s.log(f"building v1: {s.size >> 20} MiB ext4 from {src} ({n >> 20} MiB)")
            make_ext4(v1, s.size, src)
        budget = max(MiB, allocated_bytes(v1) // 50)  # change ~2% of the data
        _n, changed, _how = changed_copy(s, d, v1, v2, budget, ext4_source=src)
        alloc1 = allocated_bytes(v1)
        for cs in sizes:
            s.log(f"chunk size {cs}")
            root = os.path.join(d, f"store-{cs}")
            home, st = new_store(root, cs)
            try:
                if s.cold:
                    drop_cache(v1)
                t0 = time.perf_counter()
                r1 = ingest_path(st, v1, s.threads)
                t1 = time.perf_counter() - t0
                u1 = stats(st)["uniqueBytes"]
                mf1 = os.path.getsize(st.manifest_path(r1.digest))
                if s.cold:
                    drop_cache(v2)
                t0 = time.perf_counter()
                r2 = ingest_path(st, v2, s.threads)
                t2 = time.perf_counter() - t0
            finally:
                home.close()  # the last connection's close checkpoints the index's WAL
            home = Home.open(root, create=False)
            try:
                after = stats(home.blob_store())
            finally:
                home.close()
            new_raw2 = after["uniqueBytes"] - u1
            rows.append({
                "chunkSize": cs,
                "changedBytes": changed,
                "v2NewChunks": r2.new_chunks,
                "v2NewBytes": new_raw2,
                "v2StoredBytes": r2.stored_bytes,
                "newPerChanged": round(new_raw2 / changed, 2) if changed else None,
                "v2DedupPct": round(100 * (1 - new_raw2 / max(1, r2.data_bytes)), 2),
                "v1StoredBytes": r1.stored_bytes,
                "ingestV1MB/s": round(alloc1 / t1 / 1e6, 1),
                "ingestV2MB/s": round(alloc1 / t2 / 1e6, 1),
                "chunks": r1.total_chunks,
                "indexBytes": after["indexBytes"],
                "manifestBytes": mf1,
                "manifestRawBytes": 28 + 28 * r1.total_chunks,
                "cache": s.cache,
            })
            rm(root)
    return rows
