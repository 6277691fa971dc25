"""``bench scale``: does the cost of everyday operations grow with the store's history?

Two histories, each measured against the same operations on an empty (or one-version) store:

1. **Versions** -- one image definition gets ``versions`` versions of one image (each the last
   with a few random 4-64 KiB pieces overwritten, ``change`` bytes in all), captured through
   the gallery (``GalleryService.versions.create``, as ``sig image-version create`` does). At
   checkpoints (1, 2, 5, 10, 20, 50, 100, ... versions) it measures: capture of the next
   version (wall, CPU, MB/s of the image's bytes), ``disk create`` from ``latest``, ``latest``
   resolution, ``sig image-version list`` (per version listed too), ``store gc`` (nothing
   to collect: the mark phase over every manifest) and ``store verify`` (every stored chunk),
   and the process's RSS.
2. **A large chunk index** -- ``index_chunks`` synthetic chunks (tiny 8-byte ones, real
   records in a real pack, indexed, referenced by one synthetic manifest so gc keeps them)
   are added to a store; then capture of a new image, re-capture, and disk creation are
   measured against the same on a store without them; gc and verify too.

Rows: ``history`` (what the store holds), ``op``, ``seconds`` (median of the repeats),
``user``/``sys``, ``MB/s`` where bytes move, ``vsEmpty`` (this / the same op at the first
checkpoint), ``rssMiB`` (current) and ``peakRssMiB``.
"""

from __future__ import annotations

import os
import random
import resource
import statistics
import struct
from collections.abc import Callable

import numpy as np
import xxhash

from ..home import Home
from ..store import index, maintenance, manifest
from ..store.packs import REC, REC_MAGIC, PackWriter
from .images import make_synthetic
from .settings import MiB, Settings
from .stores import ingest_path, materialize_file
from .timing import timed
from .tools import rm, scratch

FULL = {"versions": 1000, "size": 1 << 30, "change": 4 * MiB, "index_chunks": 20_000_000}
TINY = {"versions": 50, "size": 32 * MiB, "change": 256 << 10, "index_chunks": 200_000}


def checkpoints(n: int) -> list[int]:
    """1, 2, 5, 10, 20, 50, ... up to ``n``, and ``n``."""
    out, k = [], 1
    while k <= n:
        for m in (1, 2, 5):
            if m * k <= n:
                out.append(m * k)
        k *= 10
    if out[-1] != n:
        out.append(n)
    return out


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MiB


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _median_run(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    runs = [timed(fn) for _ in range(max(1, repeat))]
    return tuple(statistics.median(r[i] for r in runs) for i in range(3))  # type: ignore[return-value]


def mutate(path: str, budget: int, seed: int) -> int:
    """Overwrite random 4-64 KiB pieces (4 KiB aligned) of ``path`` with random bytes until
    ``budget`` bytes changed; returns the bytes changed."""
    rnd = random.Random(seed)
    size = os.path.getsize(path)
    fd = os.open(path, os.O_RDWR)
    try:
        changed = 0
        while changed < budget:
            k = rnd.choice((4096, 16384, 65536))
            at = rnd.randrange(0, max(1, size - k)) // 4096 * 4096
            os.pwrite(fd, rnd.randbytes(k), at)
            changed += k
        os.fsync(fd)
    finally:
        os.close(fd)
    return changed


class _Rows:
    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.first: dict[str, float] = {}

    def add(self, history: str, op: str, t: tuple[float, float, float], nbytes: int = 0,
            key: str | None = None, **extra) -> None:
        wall, user, sys_ = t
        key = key or op
        base = self.first.setdefault(key, wall)
        self.rows.append({
            "history": history, "op": op, "seconds": round(wall, 6),
            "user": round(user, 3), "sys": round(sys_, 3),
            "MB/s": round(nbytes / wall / 1e6, 1) if nbytes and wall > 0 else None,
            "vsEmpty": round(wall / base, 2) if base > 0 else None,
            "rssMiB": round(_rss_mib(), 1), "peakRssMiB": round(_peak_mib(), 1), **extra,
        })


def _versions_rows(s: Settings, d: str, p: dict, out: _Rows) -> None:
    from ..worker import open_gallery

    img = os.path.join(d, "image.raw")
    make_synthetic(img, p["size"], 0.5)
    root = os.path.join(d, "store")
    home = Home.open(root)
    svc = open_gallery(home)
    try:
        svc.galleries.create("rg", "g")
        svc.definitions.create("rg", "g", "d", publisher="P", offer="O", sku="S", os_type="Linux")
        marks = set(checkpoints(p["versions"]))
        disk = os.path.join(d, "disk.raw")
        for v in range(1, p["versions"] + 1):
            if v > 1:
                mutate(img, p["change"], seed=v)
            name = f"1.0.{v}"
            t = timed(lambda n=name: svc.versions.create("rg", "g", "d", n, os_vhd_uri=img,
                                                         target_regions=["local"]))
            if v not in marks:
                continue
            hist = f"{v} version(s)"
            s.log(f"scale: {hist}")
            out.add(hist, "capture a version (sig image-version create)", t, p["size"],
                    key="capture")
            store = home.blob_store()

            def create_disk(i: list[int] = [0], v: int = v) -> None:  # noqa: B006 (a counter)
                i[0] += 1
                rm(disk)
                svc.disks.create("rg", f"disk{v}x{i[0]}", "g/d", path=disk)

            out.add(hist, "disk create from latest", _median_run(create_disk, s.repeat),
                    p["size"], key="disk")
            out.add(hist, "latest resolution", _median_run(
                lambda: svc.versions.latest_row("rg", "g", "d"), 20), key="latest")
            t_list = _median_run(lambda: svc.versions.list("rg", "g", "d"), s.repeat)
            out.add(hist, "sig image-version list", t_list, key="list",
                    perVersionMs=round(t_list[0] / v * 1000, 3))
            out.add(hist, "store gc (nothing to collect)", _median_run(
                lambda st=store: maintenance.gc(st), s.repeat), key="gc")
            rep: list = []
            t_v = _median_run(lambda st=store, rep=rep: rep.append(maintenance.verify(st)), 1)
            out.add(hist, "store verify (every stored chunk)", t_v,
                    rep[-1].bytes_checked, key="verify", chunks=rep[-1].chunks_checked)
        rm(disk)
    finally:
        svc.close()
        home.close()


def add_synthetic_chunks(home: Home, n: int, chunk_size: int) -> int:
    """``n`` tiny chunks (8 bytes each: a counter), written as real records to one pack,
    indexed, and referenced by one manifest (a disk of ``n`` chunks) so gc keeps them.
    Returns the pack's size."""
    store = home.blob_store()
    w = PackWriter(store.packs_dir)
    batch: list[index.Row] = []
    entries = np.zeros(n, dtype=manifest.ENTRY_DTYPE)
    ids = bytearray(16 * n)
    off = 0
    buf = bytearray()
    hdr = struct.Struct(REC.format)
    step = 1 << 16
    try:
        for start in range(0, n, step):
            buf.clear()
            batch.clear()
            for i in range(start, min(n, start + step)):
                data = (0x5CA1E000_00000000 | i).to_bytes(8, "little")
                cid = xxhash.xxh3_128_digest(data)
                ids[16 * i : 16 * i + 16] = cid
                batch.append((cid, off + len(buf), 8, 8, 0, index.payload_sum(data)))
                buf += hdr.pack(REC_MAGIC, 0, 8, 8, cid)
                buf += data
            os.pwrite(w.fd, buf, off)
            off += len(buf)
            w.size = off
            w.sync()
            index.publish(store.con, w.name, batch)
    finally:
        w.close()
    entries["index"] = np.arange(n, dtype=np.uint64)
    entries["length"] = 8
    entries["id"] = np.frombuffer(bytes(ids), dtype="S16")
    store.publish_manifest(manifest.Manifest(chunk_size, n * chunk_size, entries))
    return off


def _index_rows(s: Settings, d: str, p: dict, out: _Rows) -> None:
    img = os.path.join(d, "image2.raw")
    make_synthetic(img, p["size"], 0.5, seed=7)
    for n in (0, p["index_chunks"]):
        root = os.path.join(d, f"store-{n}")
        home = Home.open(root)
        try:
            store = home.blob_store()
            hist = f"index of {n:,} chunks"
            if n:
                s.log(f"scale: synthetic index of {n:,} chunks")
                t = timed(lambda h=home, n=n, cs=store.cfg.chunk_size: add_synthetic_chunks(h, n, cs))
                out.add(hist, "add the synthetic chunks (setup)", t, key="setup")
            # first capture of an image the store does not have: every lookup misses
            t = timed(lambda st=store: ingest_path(st, img, s.threads))
            out.add(hist, "capture a new image", t, p["size"], key="icapture")
            t = _median_run(lambda st=store: ingest_path(st, img, s.threads), s.repeat)
            out.add(hist, "re-capture (every chunk stored)", t, p["size"], key="irecapture")
            digest = ingest_path(store, img, s.threads).digest
            disk = os.path.join(d, "idisk.raw")
            t = _median_run(lambda r=root, g=digest, k=disk: materialize_file(r, g, k, "raw", s.threads),
                            s.repeat)
            rm(disk)
            out.add(hist, "disk create", t, p["size"], key="idisk")
            out.add(hist, "store gc (nothing to collect)",
                    _median_run(lambda st=store: maintenance.gc(st), 1), key="igc")
            rep: list = []
            t = _median_run(lambda st=store, rep=rep: rep.append(maintenance.verify(st)), 1)
            out.add(hist, "store verify (every stored chunk)", t, rep[-1].bytes_checked,
                    key="iverify", chunks=rep[-1].chunks_checked)
        finally:
            home.close()
        rm(root)


def bench_scale(s: Settings, *, versions: int | None = None, index_chunks: int | None = None
                ) -> list[dict]:
    p = dict(TINY if s.tiny else FULL)
    if s.size_given:
        p["size"] = s.size
    if versions is not None:
        p["versions"] = versions
    if index_chunks is not None:
        p["index_chunks"] = index_chunks
    s.notes.append(f"scale: {p['versions']} versions of {p['size'] >> 20} MiB, "
                   f"{p['change'] >> 10} KiB changed each; index of {p['index_chunks']:,} chunks")
    out = _Rows()
    with scratch(s, "scale-") as d:
        if p["versions"] > 0:
            _versions_rows(s, d, p, out)
        if p["index_chunks"] > 0:
            _index_rows(s, d, p, out)
    return out.rows


__all__ = ["add_synthetic_chunks", "bench_scale", "checkpoints", "mutate"]
