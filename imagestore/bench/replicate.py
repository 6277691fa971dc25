"""``bench replicate``: full replication of v1 to a new region vs ``cp -r`` of the packs it
needs; incremental replication of v2 (v1 changed in place) to a region holding v1 vs the
full replication of v2; fan-out of v1 to 3 regions, concurrent vs sequential."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..home import Home
from ..regions.registry import RegionRegistry
from ..regions.replicas import open_slot, plan_copies
from ..regions.replicate import replicate
from ..store.footprint import manifest_footprint
from .cache import allocated_bytes, drop_cache, warm
from .images import changed_copy, make_ext4, make_synthetic, pick_source, raw_copy_of
from .report import Goal, pair
from .settings import Settings
from .stores import ingest_path, new_store
from .timing import interleaved
from .tools import cp_files, files, rm, scratch

#: the regions the benchmark replicates to, one fresh copy slot each
TARGETS = ("full", "full-v2", "incr", "fan-1", "fan-2", "fan-3")
FANS = ("fan-1", "fan-2", "fan-3")


def bench_replicate(s: Settings) -> list[dict]:
    """Three pairs: full vs cp -r, incremental vs full, fan-out concurrent vs sequential."""
    rows: list[dict] = []
    cache = s.cache
    th = s.threads
    with scratch(s, "replicate-") as d:
        # -- the data: v1, and v2 = v1 with ~change_rate of its data changed in place
        v1 = os.path.join(d, "v1.raw")
        v2 = os.path.join(d, "v2.raw")
        src: str | None = None
        if s.image:
            raw_copy_of(s, v1)
            what = s.image
        elif s.compressibility is not None:
            s.log(f"generating {s.size >> 20} MiB, compressibility {s.compressibility}")
            make_synthetic(v1, s.size, s.compressibility)
            what = f"generated {s.size >> 20} MiB, compressibility {s.compressibility}"
        else:
            src, n = pick_source(s.size, d)
            s.log(f"building v1: {s.size >> 20} MiB ext4 from {src} ({n >> 20} MiB)")
            make_ext4(v1, s.size, src)
            what = f"{s.size >> 20} MiB ext4 (mkfs.ext4 -d {src})"
        budget = max(64 << 10, int(allocated_bytes(v1) * s.change_rate))
        _n, changed, how = changed_copy(s, d, v1, v2, budget, ext4_source=src)

        # -- the source region (local) holds v1 and v2
        root = os.path.join(d, "store")
        home, local = new_store(root)
        try:
            ing1 = ingest_path(local, v1, th)
            d1 = ing1.digest
            d2 = ingest_path(local, v2, th).digest
            fp1 = manifest_footprint(local, d1)
            fp2 = manifest_footprint(local, d2)
            stored1, packs1 = fp1.stored_bytes, list(fp1.pack_paths)
            stored2 = fp2.stored_bytes
            src_packs = local.packs_dir
            cfg = home.config
            reg = RegionRegistry(home)
            slots: dict[str, str] = {}
            for name in TARGETS:
                region = reg.create(f"bench-{name}", [os.path.join(d, "zones", name)])
                slots[name] = plan_copies(region, 1)[0]
        finally:
            home.close()
        ratio = ing1.data_bytes / max(1, stored1)
        s.log(f"v1: {ing1.data_bytes >> 20} MiB of data, {stored1 >> 20} MiB stored "
              f"({ratio:.2f}:1) in {len(packs1)} pack file(s)")
        copy_dir = os.path.join(d, "cp-out")
        sent: dict[str, int] = {}

        def reset(*names: str) -> None:
            for n in names:
                rm(slots[n])
                open_slot(slots[n], cfg).close()  # an empty copy slot
            rm(copy_dir)
            os.makedirs(copy_dir)

        def settle(*extra: str) -> None:
            os.sync()  # the last run's writeback out of the next timing
            if s.cold:
                drop_cache(src_packs, *extra)
            else:
                for q in files(src_packs):
                    warm(q)

        def prep(*names: str) -> Callable[[], None]:
            def f() -> None:
                reset(*names)
                settle()
            return f

        def repl(digest: str, name: str, key: str | None = None) -> Callable[[], None]:
            def f() -> None:
                h = Home.open(root, create=False)
                dst = open_slot(slots[name], cfg, create=False)
                try:
                    r = replicate(h.blob_store(), dst, digest, threads=th)
                finally:
                    dst.close()
                    h.close()
                sent[key or name] = r.bytes_sent
            return f

        # 1. full replication of v1 to a new region vs cp -r of the pack files it needs
        s.log("full replication vs cp -r of the packs")
        t_full, t_cp = interleaved(s, [
            (repl(d1, "full"), prep("full")),
            (lambda: cp_files(packs1, copy_dir), prep()),
        ])
        cp_bytes = sum(os.path.getsize(p) for p in packs1)
        rows += pair("full replication of v1, local -> new region", t_full, stored1, [
            (f"cp -r of the {len(packs1)} pack file(s) holding v1's chunks + fsync", "cp", t_cp),
        ], target=Goal.AT_LEAST_AS_FAST, cache=cache)
        rows[-2]["sentBytes"] = sent["full"]
        rows[-1]["sentBytes"] = cp_bytes

        # 2. incremental: v2 to a region that holds v1, vs the full replication of v2
        s.log("incremental replication of v2 vs full replication of v2")

        def prep_incr() -> None:
            reset("incr")
            repl(d1, "incr", "incr-v1")()  # the region holds v1 (not timed)
            settle(slots["incr"])

        t_inc, t_full2 = interleaved(s, [
            (repl(d2, "incr"), prep_incr),
            (repl(d2, "full-v2"), prep("full-v2")),
        ])
        rows += pair(f"incremental replication of v2 -> region holding v1 "
                     f"({changed / 1e6:.1f} MB changed, {how})", t_inc, stored2, [
            ("full replication of v2 -> new region", "imagestore", t_full2),
        ], target=Goal.INCREMENTAL, cache=cache)
        rows[-2]["sentBytes"] = sent["incr"]
        rows[-2]["changedBytes"] = changed
        rows[-1]["sentBytes"] = sent["full-v2"]

        # 3. fan-out of v1 to 3 new regions: 3 replications at once (threads) vs one by one
        s.log("fan-out to 3 regions, concurrent vs sequential")

        def concurrent() -> None:
            with ThreadPoolExecutor(max_workers=len(FANS)) as pool:
                for fut in [pool.submit(repl(d1, n)) for n in FANS]:
                    fut.result()

        def sequential() -> None:
            for n in FANS:
                repl(d1, n)()

        t_conc, t_seq = interleaved(s, [(concurrent, prep(*FANS)), (sequential, prep(*FANS))])
        rows += pair("fan-out of v1 to 3 new regions, 3 replications at once", t_conc,
                     3 * stored1, [("3 replications one after another", "imagestore", t_seq)],
                     cache=cache)
        rows[-2]["sentBytes"] = rows[-1]["sentBytes"] = sum(sent[n] for n in FANS)
    s.log(f"data: {what}")
    return rows
