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
import sys
from collections.abc import Callable
from unittest import mock

import numpy as np
import xxhash

from ..gallery import capture as gallery_capture
from ..gallery.repo.rows import VersionDisk
from ..home import Home
from ..store import index, maintenance, manifest
from ..store.cas import BlobStore
from ..store.packs import FLAG_HOT, REC, REC_MAGIC, PackWriter, encode_chunk
from .images import make_synthetic
from .settings import BenchError, MiB, Settings
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
        store = home.blob_store()
        rng = np.random.default_rng(20261202)
        prev: manifest.Manifest | None = None
        for v in range(1, p["versions"] + 1):
            name = f"1.0.{v}"
            if v not in marks and prev is not None:
                # between checkpoints: a synthetic version (real chunks, real manifest, real
                # gallery rows; only the reading of the image is skipped)
                prev = synthetic_version(store, prev, p["change"], rng)
                disk_row = _version_disk(prev, img)
                with mock.patch.object(gallery_capture, "capture",
                                       lambda *_a, _d=disk_row, **_k: [_d]):
                    svc.versions.create("rg", "g", "d", name, os_vhd_uri=img,
                                        target_regions=["local"])
                continue
            if v > 1:
                mutate(img, p["change"], seed=v)
            t = timed(lambda n=name: svc.versions.create("rg", "g", "d", n, os_vhd_uri=img,
                                                         target_regions=["local"]))
            digest = svc.repo.disks_of(svc.versions.latest_row("rg", "g", "d").id)[0].digest
            prev = store.load_manifest(digest)
            hist = f"{v} version(s)"
            s.log(f"scale: {hist}")
            # the first capture stores everything; later ones are compared with the second
            out.add(hist, "capture a version (sig image-version create)", t, p["size"],
                    key="capture" if v > 1 else "capture-first")

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
            last = (v - 1) // PAGE * PAGE
            for what, at in (("first", 0), ("last", last)):
                t_page = _median_run(lambda at=at: svc.versions.list(
                    "rg", "g", "d", offset=at, limit=PAGE + 1), s.repeat)
                # full pages are compared with the first full page (at PAGE versions)
                out.add(hist, f"version list, {what} page of {PAGE} (REST)", t_page,
                        key=f"page-{what}" + ("" if v >= PAGE else "-partial"),
                        listed=min(PAGE, v - at))
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


#: the REST list's page size (``api/context.py``)
PAGE = 100


def _synthetic_chunk(rng: np.random.Generator, n: int) -> bytes:
    """``n`` bytes that compress about 2:1 (as ``make_synthetic``'s): per 4 KiB, half random
    bytes, half a repeated filler."""
    blk = 4096
    a = np.empty((n // blk, blk), np.uint8)
    a[:, : blk // 2] = np.frombuffer(rng.bytes(n // 2), np.uint8).reshape(-1, blk // 2)
    a[:, blk // 2 :] = np.frombuffer((b"imagestore synthetic version. " * 70)[: blk // 2],
                                     np.uint8)
    return a.tobytes()


def synthetic_version(store: BlobStore, prev: manifest.Manifest, change: int,
                      rng: np.random.Generator) -> manifest.Manifest:
    """The next version of ``prev`` without reading an image: ``change`` bytes' worth of its
    chunks (at random indexes) replaced by new ones, stored as a capture stores them (the
    store's codec and hot flag, fsync, then the index, then the manifest). Synthetic: a
    version made this way costs what the store does for the changed chunks only."""
    cs = prev.chunk_size
    k = max(1, min(len(prev.entries), change // cs))
    at = np.sort(rng.choice(len(prev.entries), size=k, replace=False))
    entries = prev.entries.copy()
    hot = FLAG_HOT if store.cfg.cold_compression is not None else 0
    rows: list[index.Row] = []
    with store.lock(exclusive=False):
        w = PackWriter(store.packs_dir)
        try:
            for i in at.tolist():
                data = _synthetic_chunk(rng, int(entries["length"][i]))
                cid = xxhash.xxh3_128_digest(data)
                payload, flags = encode_chunk(data, store.cfg.codec)
                flags |= hot if flags else 0
                off = w.append(cid, len(data), payload, flags)
                rows.append((cid, off, len(data), len(payload), flags, index.payload_sum(payload)))
                entries["id"][i] = cid
            w.sync()
            index.publish(store.con, w.name, rows)
        finally:
            w.close()
        m = manifest.Manifest(cs, prev.virtual_size, entries)
        store.publish_manifest(m)
    return m


def _version_disk(m: manifest.Manifest, img: str) -> VersionDisk:
    return VersionDisk(lun=-1, digest=m.digest(), virtual_size=m.virtual_size,
                       allocated_bytes=m.data_bytes, data_bytes=m.data_bytes, stored_bytes=0,
                       host_caching=gallery_capture.host_caching(-1),
                       source_uri=gallery_capture.source_uri(img), source_format="raw")


#: synthetic chunks per synthetic manifest (a 16 GiB disk at 256 KiB chunks)
SYNTH_PER_MANIFEST = 1 << 16
#: synthetic records per pack (40 bytes each: 640 MiB)
SYNTH_PER_PACK = 1 << 24
_SYNTH_REC = np.dtype([("magic", "S4"), ("flags", "u1"), ("pad", "V3"), ("raw", "<u4"),
                       ("stored", "<u4"), ("id", "S16"), ("data", "<u8")])
assert _SYNTH_REC.itemsize == REC.size + 8


def add_synthetic_chunks(home: Home, n: int, chunk_size: int) -> int:
    """``n`` tiny chunks (8 bytes each: a counter), written as real records to packs, indexed,
    and referenced by manifests of :data:`SYNTH_PER_MANIFEST` chunks (so gc keeps them and
    verify checks them). Synthetic, and built in bulk: every id is hashed first, then the
    records are written *in id order*, so both index B-trees (by id, by pack and offset) are
    filled by appends -- a 20 M-chunk index in minutes, where inserting in hash order made
    2 M take 241 s. Returns the bytes of pack data written."""
    store = home.blob_store()
    ctr = np.arange(n, dtype="<u8") | np.uint64(0x5CA1E000_00000000)
    raw = memoryview(ctr.tobytes())
    ids = bytearray(16 * n)
    psums = np.empty(n, dtype=np.int64)
    h128, h64 = xxhash.xxh3_128_digest, xxhash.xxh3_64_intdigest
    for i in range(n):
        piece = raw[8 * i : 8 * i + 8]
        ids[16 * i : 16 * i + 16] = h128(piece)
        psums[i] = h64(piece) & 0x7FFF_FFFF_FFFF_FFFF
    del raw
    words = np.frombuffer(ids, dtype=">u8")
    order = np.lexsort((words[1::2], words[0::2]))  # memcmp order, SQLite's BLOB order
    del words
    sorted_ids = np.frombuffer(bytes(ids), dtype="S16")[order]
    del ids
    total = 0
    for p0 in range(0, n, SYNTH_PER_PACK):
        p1 = min(n, p0 + SYNTH_PER_PACK)
        w = PackWriter(store.packs_dir)
        try:
            off = 0
            for b0 in range(p0, p1, 1 << 20):
                b1 = min(p1, b0 + (1 << 20))
                rec = np.zeros(b1 - b0, dtype=_SYNTH_REC)
                rec["magic"] = REC_MAGIC
                rec["raw"] = 8
                rec["stored"] = 8
                rec["id"] = sorted_ids[b0:b1]
                rec["data"] = ctr[order[b0:b1]]
                os.pwrite(w.fd, rec.tobytes(), off)
                offs = off + _SYNTH_REC.itemsize * np.arange(b1 - b0)
                off += _SYNTH_REC.itemsize * (b1 - b0)
                w.size = off
                w.sync()
                index.publish(store.con, w.name, list(zip(
                    # V16: S16's tolist() would drop trailing NUL bytes of an id
                    sorted_ids[b0:b1].view("V16").tolist(), offs.tolist(), [8] * (b1 - b0),
                    [8] * (b1 - b0), [0] * (b1 - b0), psums[order[b0:b1]].tolist(),
                    strict=True)))
            total += off
        finally:
            w.close()
    for m0 in range(0, n, SYNTH_PER_MANIFEST):
        m1 = min(n, m0 + SYNTH_PER_MANIFEST)
        entries = np.zeros(m1 - m0, dtype=manifest.ENTRY_DTYPE)
        entries["index"] = np.arange(m1 - m0, dtype=np.uint64)
        entries["length"] = 8
        entries["id"] = sorted_ids[m0:m1]
        store.publish_manifest(manifest.Manifest(chunk_size, (m1 - m0) * chunk_size, entries))
    return total


def _synthetic_setup(root: str, n: int) -> None:
    """:func:`add_synthetic_chunks` in a forked child, so its arrays (~40 bytes per chunk)
    do not count in the benchmark process's peak RSS."""
    pid = os.fork()
    if pid == 0:  # the child: exit code only
        code = 1
        try:
            home = Home.open(root)
            try:
                add_synthetic_chunks(home, n, home.blob_store().cfg.chunk_size)
                code = 0
            finally:
                home.close()
        except BaseException as e:  # noqa: BLE001 - reported by the exit code
            print(f"synthetic setup: {e}", file=sys.stderr)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise BenchError(f"the synthetic setup of {n:,} chunks failed")


def _index_rows(s: Settings, d: str, p: dict, out: _Rows) -> None:
    img = os.path.join(d, "image2.raw")
    make_synthetic(img, p["size"], 0.5, seed=7)
    for n in (0, p["index_chunks"]):
        root = os.path.join(d, f"store-{n}")
        hist = f"index of {n:,} chunks"
        if n:
            s.log(f"scale: synthetic index of {n:,} chunks")
            t = timed(lambda r=root, n=n: _synthetic_setup(r, n))
            out.add(hist, "add the synthetic chunks (setup, synthetic)", t, key="setup")
        home = Home.open(root)
        try:
            store = home.blob_store()
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
