"""Macro benchmarks: imagestore against the reference tools on the same data, in one run.

Every comparison returns a list of rows (plain dicts), one per measurement::

    name     what was done            tool     who did it (imagestore, qemu-img, cp, dd, …)
    seconds  wall time (best of N)    bytes    bytes of data the operation carried
    MB/s     bytes / seconds / 1e6    ratio    ours / this reference (lower is better)
    target   the issue's target       cache    "cold" (sources dropped from the page cache
                                               before each run) or "warm"

``bench replicate`` rows also carry ``sentBytes`` (bytes written to the target) and, on the
incremental row, ``changedBytes`` (bytes changed in v2).

A pair is one ``imagestore`` row followed by its reference rows; the ratio sits on each
reference row (imagestore's wall time divided by that tool's). Absolute times drift from run
to run on a shared machine: compare ratios measured in one run.

Every output file is fsynced inside the timing, for us (the writers fsync on finish) and for
the reference tools (an ``fsync`` of their output right after they exit), so that a tool that
leaves dirty pages behind is not credited for the disk work it did not wait for.

Cold cache: ``fsync`` + ``posix_fadvise(POSIX_FADV_DONTNEED)`` on every source file (the
image, or the store's pack files) before each timed run; this needs no root and drops exactly
the files that are read.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import xxhash
import zstandard

from .accel import BACKEND, is_zero, nonzero_runs
from .formats import create_writer, open_disk
from .home import Home
from .store.index import lookup_many as index_lookup_many
from .store.index import pack_names as index_pack_names
from .store.ingest import ingest
from .store.layout import make_config, parse_size
from .store.materialize import materialize

MiB = 1 << 20
GiB = 1 << 30

#: chunk sizes of the chunk-size table
CHUNK_SIZES = ("64K", "128K", "256K", "512K", "1M", "2M", "4M")

#: where realistic file content comes from (the first that fits the image is used)
SOURCE_CANDIDATES = (
    "/usr/share",
    "/usr/lib/python3",
    "/usr/share/doc",
    "/usr/share/locale",
    "/usr/share/perl",
    "/usr/share/zoneinfo",
    "/usr/share/misc",
)


class BenchError(RuntimeError):
    """A tool the benchmark needs failed or is missing."""


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


@dataclass
class Settings:
    workdir: str
    size: int = GiB
    tiny: bool = False
    image: str | None = None
    threads: int = 2
    repeat: int = 3
    cache: str = "cold"  # "cold" or "warm"
    compressibility: float | None = None  # bench replicate: generated data instead of ext4
    change_rate: float = 0.02  # bench replicate: share of v1's data changed in v2
    log: Callable[[str], None] = field(default=lambda _m: None)

    @property
    def cold(self) -> bool:
        return self.cache == "cold"


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    except FileNotFoundError:
        raise BenchError(f"{cmd[0]}: not installed (install qemu-utils and e2fsprogs)") from None
    if p.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()[:400]}")
    return p


def fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _files(path: str) -> Iterator[str]:
    if os.path.isdir(path):
        for d, _dirs, names in os.walk(path):
            for n in names:
                p = os.path.join(d, n)
                if os.path.isfile(p) and not os.path.islink(p):
                    yield p
    elif os.path.isfile(path):
        yield path


def drop_cache(*paths: str) -> None:
    """Write back and drop ``paths`` (files, or every file under a directory) from the page
    cache, so that the next read comes from the disk."""
    for top in paths:
        for p in _files(top):
            try:
                fd = os.open(p, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def warm(path: str) -> None:
    """Read every allocated byte of ``path`` once so it sits in the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        for off, n in _data_extents(fd, os.fstat(fd).st_size):
            end = off + n
            while off < end:
                b = os.pread(fd, min(8 * MiB, end - off), off)
                if not b:
                    break
                off += len(b)
    finally:
        os.close(fd)


def _data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    pos = 0
    while pos < size:
        try:
            start = os.lseek(fd, pos, os.SEEK_DATA)
        except OSError:
            return
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        yield start, end - start
        pos = end


def allocated_bytes(path: str) -> int:
    """Bytes a file's allocated extents cover (SEEK_DATA/SEEK_HOLE)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return sum(n for _o, n in _data_extents(fd, os.fstat(fd).st_size))
    finally:
        os.close(fd)


def rm(*paths: str) -> None:
    for p in paths:
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


def row(name: str, tool: str, seconds: float, nbytes: int, *, ratio: float | None = None,
        target: str = "", cache: str = "") -> dict:
    return {
        "name": name,
        "tool": tool,
        "seconds": round(seconds, 3),
        "bytes": nbytes,
        "MB/s": round(nbytes / seconds / 1e6, 1) if seconds > 0 else None,
        "ratio": None if ratio is None else round(ratio, 2),
        "target": target,
        "cache": cache,
    }


def pair(name: str, ours: float, nbytes: int, refs: list[tuple[str, str, float]], *,
         target: str = "", cache: str = "") -> list[dict]:
    """One imagestore row and one row per reference (label, tool, seconds) with the ratio
    ours/reference; ``target`` applies to the first reference."""
    out = [row(name, "imagestore", ours, nbytes, cache=cache)]
    for i, (label, tool, secs) in enumerate(refs):
        out.append(row(f"  vs {label}", tool, secs, nbytes, ratio=ours / secs if secs else None,
                       target=target if i == 0 else "", cache=cache))
    return out


@contextmanager
def scratch(s: Settings, prefix: str) -> Iterator[str]:
    os.makedirs(s.workdir, exist_ok=True)
    d = tempfile.mkdtemp(prefix=prefix, dir=s.workdir)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def new_store(root: str, chunk_size: str | int | None = None, compression: str | None = None):
    """A fresh store at ``root`` (removed first); returns (Home, BlobStore)."""
    rm(root)
    home = Home.open(root, cfg=make_config(chunk_size, compression))
    return home, home.blob_store()


def ingest_file(root: str, path: str, threads: int, *, fresh: bool = True, chunk_size=None):
    home = (new_store(root, chunk_size)[0] if fresh else Home.open(root))
    try:
        reader = open_disk(path)
        try:
            return ingest(home.blob_store(), reader, threads=threads)
        finally:
            reader.close()
    finally:
        home.close()


def materialize_file(root: str, digest: str, out: str, fmt: str, threads: int):
    home = Home.open(root, create=False)
    try:
        return materialize(home.blob_store(), digest, out, fmt=fmt, overwrite=True, threads=threads)
    finally:
        home.close()


def convert_direct(src: str, dst: str, fmt: str, threads: int = 2) -> int:
    """Convert a disk image reader -> writer without the store: the allocated extents are read
    in 1 MiB pieces in worker threads, zero 4 KiB blocks dropped, the rest written in order.
    Returns the bytes written."""
    reader = open_disk(src)
    written = 0
    try:
        size = reader.virtual_size
        writer = create_writer(dst, size, fmt)
        ok = False
        try:
            def pieces() -> Iterator[tuple[int, int]]:
                for off, n in reader.extents():
                    end = min(off + n, size)
                    while off < end:
                        k = min(MiB - off % MiB, end - off)
                        yield off, k
                        off += k

            def work(item: tuple[int, int]):
                off, n = item
                data = reader.read(off, n)
                return off, data, nonzero_runs(data)

            with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
                it = pieces()
                limit = max(2, threads * 4)
                window: deque = deque()

                def fill() -> None:
                    while len(window) < limit:
                        item = next(it, None)
                        if item is None:
                            return
                        window.append(pool.submit(work, item))

                fill()
                while window:
                    off, data, runs = window.popleft().result()
                    fill()
                    mv = memoryview(data)
                    for a, b in runs:
                        writer.write(off + a, mv[a:b])
                        written += b - a
            writer.finish()
            ok = True
        finally:
            if not ok:
                writer.abort()
    finally:
        reader.close()
    return written


def qemu_convert(src: str, dst: str, src_fmt: str, dst_fmt: str, opts: str | None = None) -> None:
    cmd = ["qemu-img", "convert", "-f", src_fmt, "-O", dst_fmt]
    if opts:
        cmd += ["-o", opts]
    run(cmd + [src, dst])
    fsync_path(dst)


def cp_sparse(src: str, dst: str) -> None:
    run(["cp", "--sparse=always", src, dst])
    fsync_path(dst)


# ----------------------------------------------------------------------------------------
# building images
# ----------------------------------------------------------------------------------------


def du_bytes(path: str) -> int:
    try:
        p = subprocess.run(["du", "-sb", path], capture_output=True, text=True, timeout=120)
        return int(p.stdout.split()[0])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return -1


def pick_source(size: int, workdir: str) -> tuple[str, int]:
    """A directory of real files whose content fills an ext4 image of ``size`` to about
    70% at most. Falls back to a staged copy of part of /usr/share."""
    budget = int(size * 0.7)
    best: tuple[str, int] | None = None
    for cand in SOURCE_CANDIDATES:
        if not os.path.isdir(cand):
            continue
        n = du_bytes(cand)
        if 0 < n <= budget and (best is None or n > best[1]):
            best = (cand, n)
    if best is not None and best[1] >= budget // 3:
        return best
    stage = os.path.join(workdir, "source")
    rm(stage)
    total = 0
    for p in _files("/usr/share"):
        try:
            n = os.path.getsize(p)
        except OSError:
            continue
        if n == 0 or total + n > budget:
            continue
        rel = os.path.relpath(p, "/usr/share")
        dst = os.path.join(stage, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        try:
            shutil.copyfile(p, dst)
        except OSError:
            continue
        total += n
        if total >= budget * 0.95:
            break
    return stage, total


def make_ext4(path: str, size: int, source: str) -> None:
    rm(path)
    run(["truncate", "-s", str(size), path])
    run(["mkfs.ext4", "-q", "-F", "-d", source, path])


@dataclass
class Images:
    raw: str
    vhd: str
    vhdx: str
    size: int  # virtual size
    allocated: int  # allocated bytes of the raw file (SEEK_DATA)
    source: str  # what made it


def build_images(s: Settings, d: str) -> Images:
    """The realistic image as raw, dynamic VHD and dynamic VHDX."""
    raw = os.path.join(d, "image.raw")
    if s.image:
        fmt = open_disk(s.image).format
        s.log(f"using {s.image} ({fmt})")
        if fmt == "raw":
            os.link(s.image, raw) if _same_fs(s.image, d) else shutil.copyfile(s.image, raw)
        else:
            qfmt = {"vhd": "vpc", "vhdx": "vhdx"}[fmt.split("-")[0]]
            run(["qemu-img", "convert", "-f", qfmt, "-O", "raw", s.image, raw])
        source = s.image
    else:
        src, n = pick_source(s.size, d)
        s.log(f"building a {s.size >> 20} MiB ext4 image from {src} ({n >> 20} MiB)")
        make_ext4(raw, s.size, src)
        source = f"mkfs.ext4 -d {src} ({n >> 20} MiB of files)"
    size = os.path.getsize(raw)
    vhd = os.path.join(d, "image.vhd")
    vhdx = os.path.join(d, "image.vhdx")
    run(["qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on", raw, vhd])
    run(["qemu-img", "convert", "-f", "raw", "-O", "vhdx", raw, vhdx])
    for p in (raw, vhd, vhdx):
        fsync_path(p)
    return Images(raw, vhd, vhdx, size, allocated_bytes(raw), source)


def _same_fs(a: str, b: str) -> bool:
    return os.stat(a).st_dev == os.stat(b).st_dev


# ----------------------------------------------------------------------------------------
# bench machine
# ----------------------------------------------------------------------------------------


def _read_to_null(path: str) -> int:
    """Sequential read of the whole file in 1 MiB reads (like dd of=/dev/null bs=1M)."""
    buf = bytearray(MiB)
    total = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            total += n
    return total


def sample_data(s: Settings, n: int) -> bytes:
    """``n`` bytes of realistic content: the user's image, else files from /usr/share."""
    if s.image:
        r = open_disk(s.image)
        try:
            parts, got = [], 0
            for off, k in r.extents():
                k = min(k, n - got)
                parts.append(r.read(off, k))
                got += k
                if got >= n:
                    break
            return b"".join(parts).ljust(n, b"\0")
        finally:
            r.close()
    parts, got = [], 0
    for p in _files("/usr/share"):
        try:
            with open(p, "rb") as f:
                b = f.read(n - got)
        except OSError:
            continue
        parts.append(b)
        got += len(b)
        if got >= n:
            break
    return b"".join(parts).ljust(n, b"\0")


def bench_machine(s: Settings) -> list[dict]:
    """The machine's own limits, measured now: write with fsync (dd), sequential read cold
    and warm, and one core's hashing, compression and zero scan."""
    rows: list[dict] = []
    size = s.size
    with scratch(s, "machine-") as d:
        f = os.path.join(d, "seq.bin")
        src = s.image
        count = size // MiB
        t0 = time.perf_counter()
        run(["dd", "if=/dev/zero", f"of={f}", "bs=1M", f"count={count}", "conv=fsync", "status=none"])
        tw = time.perf_counter() - t0
        rows.append(row("write + fsync (dd bs=1M conv=fsync)", "dd", tw, count * MiB, cache="-"))
        target = src or f
        nbytes = os.path.getsize(target)
        best_cold = best_warm = float("inf")
        for _ in range(max(1, s.repeat)):
            drop_cache(target)
            t0 = time.perf_counter()
            _read_to_null(target)
            best_cold = min(best_cold, time.perf_counter() - t0)
            t0 = time.perf_counter()
            _read_to_null(target)
            best_warm = min(best_warm, time.perf_counter() - t0)
        rows.append(row("sequential read to /dev/null", "read", best_cold, nbytes, cache="cold"))
        rows.append(row("sequential read to /dev/null", "read", best_warm, nbytes, cache="warm"))
        t0 = time.perf_counter()
        run(["dd", f"if={f}", "of=/dev/null", "bs=1M", "status=none"])
        rows.append(row("dd if=FILE of=/dev/null bs=1M", "dd", time.perf_counter() - t0,
                        count * MiB, cache="warm"))
    # one core's CPU limits on realistic data, 1 MiB at a time
    n = (16 if s.tiny else 128) * MiB
    data = sample_data(s, n)
    zeros = bytes(n)
    mvs = [memoryview(data)[i : i + MiB] for i in range(0, n, MiB)]
    zmvs = [memoryview(zeros)[i : i + MiB] for i in range(0, n, MiB)]

    def cpu(name: str, fn: Callable[[], object], nbytes: int) -> None:
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        rows.append(row(name, f"1 core ({BACKEND})" if "scan" in name else "1 core", best, nbytes,
                        cache="memory"))

    cpu("xxh3-128, 1 MiB chunks", lambda: [xxhash.xxh3_128_digest(m) for m in mvs], n)
    cctx = zstandard.ZstdCompressor(level=1)
    cpu("zstd level 1 compress, 1 MiB chunks", lambda: [cctx.compress(m) for m in mvs], n)
    comp = [cctx.compress(m) for m in mvs]
    dctx = zstandard.ZstdDecompressor()
    cpu("zstd decompress, 1 MiB chunks", lambda: [dctx.decompress(c) for c in comp], n)
    cpu("zero scan is_zero, all-zero 1 MiB chunks", lambda: [is_zero(m) for m in zmvs], n)
    cpu("zero scan nonzero_runs, data 1 MiB chunks", lambda: [nonzero_runs(m) for m in mvs], n)
    cpu("zero scan nonzero_runs, all-zero 1 MiB chunks", lambda: [nonzero_runs(m) for m in zmvs], n)
    ratio = n / max(1, sum(len(c) for c in comp))
    rows[-5]["name"] += f" (ratio {ratio:.2f})"
    return rows


# ----------------------------------------------------------------------------------------
# bench capture
# ----------------------------------------------------------------------------------------


def interleaved(s: Settings, specs: list[tuple[Callable[[], object], Callable[[], None] | None]]
                ) -> list[float]:
    """Best wall time of each (fn, before) over ``s.repeat`` rounds; each round runs every
    spec once, in order, so that load from elsewhere on the machine hits all of them alike.
    ``before()`` (cache drop, fresh store) is not timed."""
    best = [float("inf")] * len(specs)
    for _ in range(max(1, s.repeat)):
        for j, (fn, before) in enumerate(specs):
            if before is not None:
                before()
            t0 = time.perf_counter()
            fn()
            best[j] = min(best[j], time.perf_counter() - t0)
    return best


def bench_capture(s: Settings) -> list[dict]:
    rows: list[dict] = []
    cache = s.cache
    th = s.threads
    with scratch(s, "capture-") as d:
        img = build_images(s, d)
        nb = img.allocated
        store = os.path.join(d, "store")
        store_none = os.path.join(d, "store-none")
        out = os.path.join(d, "out")

        def drop(*paths: str) -> Callable[[], None]:
            def f() -> None:
                rm(out)
                os.sync()  # the last run's writeback (and discards) out of the next timing
                if s.cold:
                    drop_cache(*paths)
                else:
                    for p in paths:
                        for q in _files(p):
                            warm(q)
            return f

        def fresh(root: str, *paths: str, compression: str | None = None) -> Callable[[], None]:
            def f() -> None:
                # an empty store, made outside the timing
                new_store(root, compression=compression)[0].close()
                drop(*paths)()
            return f

        def ing(root: str, path: str) -> Callable[[], object]:
            return lambda: ingest_file(root, path, th, fresh=False)

        def qc(src: str, sf: str, df: str, opts: str | None = None) -> Callable[[], object]:
            return lambda: qemu_convert(src, out, sf, df, opts)

        # 1. capture from raw vs qemu-img convert -O raw vs cp --sparse=always; and the same
        # capture into an uncompressed store, to show what zstd costs
        s.log("capture from raw")
        t_ing, t_none, t_q, t_cp = interleaved(s, [
            (ing(store, img.raw), fresh(store, img.raw)),
            (ing(store_none, img.raw), fresh(store_none, img.raw, compression="none")),
            (qc(img.raw, "raw", "raw"), drop(img.raw)),
            (lambda: cp_sparse(img.raw, out), drop(img.raw)),
        ])
        rows += pair("capture raw -> store (ingest)", t_ing, nb, [
            ("qemu-img convert -O raw", "qemu-img", t_q),
            ("cp --sparse=always", "cp", t_cp),
        ], target="<=1.0 (issue 2)", cache=cache)
        rows += pair("capture raw -> store, --compression none", t_none, nb, [
            ("qemu-img convert -O raw", "qemu-img", t_q),
        ], cache=cache)

        # 2. capture from dynamic VHD and VHDX vs qemu-img convert to raw
        s.log("capture from dynamic VHD and VHDX")
        t_vhd, t_vhdx, t_qvhd, t_qvhdx = interleaved(s, [
            (ing(store, img.vhd), fresh(store, img.vhd)),
            (ing(store, img.vhdx), fresh(store, img.vhdx)),
            (qc(img.vhd, "vpc", "raw"), drop(img.vhd)),
            (qc(img.vhdx, "vhdx", "raw"), drop(img.vhdx)),
        ])
        rows += pair("capture dynamic VHD -> store (ingest)", t_vhd, nb, [
            ("qemu-img convert -f vpc -O raw", "qemu-img", t_qvhd),
        ], target="<=0.8 (issue 6)", cache=cache)
        rows += pair("capture dynamic VHDX -> store (ingest)", t_vhdx, nb, [
            ("qemu-img convert -f vhdx -O raw", "qemu-img", t_qvhdx),
        ], cache=cache)

        # 3. a fully allocated raw (every zero block on disk, as a dd of a real disk): the
        # zero scan sees every byte of the virtual size
        full = os.path.join(d, "full.raw")
        run(["cp", "--sparse=never", img.raw, full])
        fsync_path(full)
        s.log("capture from a fully allocated raw")
        t_f, t_qf = interleaved(s, [
            (ing(store, full), fresh(store, full)),
            (qc(full, "raw", "raw"), drop(full)),
        ])
        rm(out, full)
        rows += pair("capture fully-allocated raw -> store (ingest)", t_f, img.size, [
            ("qemu-img convert -O raw", "qemu-img", t_qf),
        ], cache=cache)

        # 4. re-capture of the unchanged image: every chunk already stored, warm cache
        s.log("re-capture, warm")
        res = ingest_file(store, img.raw, th)
        digest = res.digest
        res_none = ingest_file(store_none, img.raw, th, fresh=False)
        assert res_none.digest == digest
        warm(img.raw)
        t_re, t_rd = interleaved(s, [(ing(store, img.raw), None), (lambda: warm(img.raw), None)])
        rows += pair("re-capture unchanged raw (all chunks stored)", t_re, nb, [
            ("read of the allocated extents (pread 8 MiB)", "read", t_rd),
        ], cache="warm")
        rows[-2]["target"] = ">=2000 MB/s (issue 6)"

        # 5. disk creation: store -> raw / VHDX vs qemu-img convert from the raw image; and
        # from the uncompressed store, to show what decompression costs
        s.log("create disks")
        packs = os.path.join(store, "regions", "local", "packs")
        packs_none = os.path.join(store_none, "regions", "local", "packs")

        def mat(root: str, fmt: str) -> Callable[[], object]:
            return lambda: materialize_file(root, digest, out, fmt, th)

        t_mr, t_mx, t_mn, t_qr, t_qx = interleaved(s, [
            (mat(store, "raw"), drop(packs)),
            (mat(store, "vhdx"), drop(packs)),
            (mat(store_none, "raw"), drop(packs_none)),
            (qc(img.raw, "raw", "raw"), drop(img.raw)),
            (qc(img.raw, "raw", "vhdx"), drop(img.raw)),
        ])
        rm(out, store_none)
        rows += pair("create disk store -> raw (materialize)", t_mr, nb, [
            ("qemu-img convert -f raw -O raw (from the raw image)", "qemu-img", t_qr),
        ], target="<=1.0 (issue 2), <=0.8 (issue 6)", cache=cache)
        rows += pair("create disk store -> vhdx (materialize)", t_mx, nb, [
            ("qemu-img convert -f raw -O vhdx (from the raw image)", "qemu-img", t_qx),
        ], target="<=0.8 (issue 6)", cache=cache)
        rows += pair("create disk store -> raw, store with --compression none", t_mn, nb, [
            ("qemu-img convert -f raw -O raw (from the raw image)", "qemu-img", t_qr),
        ], cache=cache)

        # 6. format conversions, reader -> writer directly, vs qemu-img doing the same
        for label, src, ours_fmt, qsrc, qdst, qopts in (
            ("dynamic VHD -> raw", img.vhd, "raw", "vpc", "raw", None),
            ("raw -> dynamic VHDX", img.raw, "vhdx", "raw", "vhdx", None),
            ("dynamic VHD -> fixed VHD", img.vhd, "vhd-fixed", "vpc", "vpc", "subformat=fixed,force_size=on"),
            ("dynamic VHDX -> dynamic VHDX", img.vhdx, "vhdx", "vhdx", "vhdx", None),
        ):
            s.log(f"convert {label}")
            t_c, t_q = interleaved(s, [
                (lambda a=src, f=ours_fmt: convert_direct(a, out, f, th), drop(src)),
                (qc(src, qsrc, qdst, qopts), drop(src)),
            ])
            rm(out)
            rows += pair(f"convert {label} (reader -> writer)", t_c, nb, [
                (f"qemu-img convert -f {qsrc} -O {qdst}" + (f" -o {qopts}" if qopts else ""), "qemu-img", t_q),
            ], target="<=1.0 (issue 3)", cache=cache)
    return rows


# ----------------------------------------------------------------------------------------
# bench chunk-sizes
# ----------------------------------------------------------------------------------------


def _debugfs_changes(s: Settings, d: str, source: str, raw: str, budget: int) -> tuple[int, int]:
    """Change files of the ext4 image ``raw`` in place with debugfs: replace files (``rm``
    then ``write`` of new random content of the same size) until ``budget`` bytes changed,
    and remove a few more. Returns (files changed, bytes written)."""
    rnd = random.Random(20261126)
    files = []
    for p in _files(source):
        try:
            n = os.path.getsize(p)
        except OSError:
            continue
        if 16 << 10 <= n <= 4 * MiB:
            files.append((os.path.relpath(p, source), n))
    files.sort()
    rnd.shuffle(files)
    hostdir = os.path.join(d, "new-content")
    os.makedirs(hostdir, exist_ok=True)
    cmds, changed, count = [], 0, 0
    i = 0
    while i < len(files) and changed < budget:
        rel, n = files[i]
        i += 1
        if any(c in rel for c in ' "\n\\'):
            continue
        host = os.path.join(hostdir, f"f{count}")
        with open(host, "wb") as f:
            f.write(rnd.randbytes(n))
        cmds += [f"rm /{rel}", f"write {host} /{rel}"]
        changed += n
        count += 1
    for rel, _n in files[i : i + 5]:  # and delete a few files
        if not any(c in rel for c in ' "\n\\'):
            cmds.append(f"rm /{rel}")
    cmdfile = os.path.join(d, "debugfs.cmds")
    with open(cmdfile, "w") as f:
        f.write("\n".join(cmds) + "\n")
    run(["debugfs", "-w", "-f", cmdfile, raw])
    return count, changed


def _scatter_changes(raw: str, budget: int) -> tuple[int, int]:
    """For a user's image that debugfs cannot edit: overwrite random 4-64 KiB pieces of its
    allocated data with random bytes until ``budget`` bytes changed."""
    rnd = random.Random(20261126)
    fd = os.open(raw, os.O_RDWR)
    try:
        ext = [(o, n) for o, n in _data_extents(fd, os.fstat(fd).st_size) if n >= 65536]
        changed = count = 0
        while ext and changed < budget:
            o, n = rnd.choice(ext)
            k = rnd.choice((4096, 16384, 65536))
            at = o + rnd.randrange(0, n - k + 1) // 4096 * 4096
            os.pwrite(fd, rnd.randbytes(k), at)
            changed += k
            count += 1
        os.fsync(fd)
    finally:
        os.close(fd)
    return count, changed


def bench_chunk_sizes(s: Settings, sizes: tuple[str, ...] = CHUNK_SIZES) -> list[dict]:
    rows: list[dict] = []
    with scratch(s, "chunks-") as d:
        v1 = os.path.join(d, "v1.raw")
        v2 = os.path.join(d, "v2.raw")
        if s.image:
            img = build_images(s, d)  # gives d/image.raw
            os.rename(img.raw, v1)
            rm(img.vhd, img.vhdx)
            how = "random 4-64 KiB overwrites"
        else:
            src, n = pick_source(s.size, d)
            s.log(f"building v1: {s.size >> 20} MiB ext4 from {src} ({n >> 20} MiB)")
            make_ext4(v1, s.size, src)
            how = "debugfs rm + write"
        run(["cp", "--sparse=always", v1, v2])
        budget = max(MiB, allocated_bytes(v1) // 50)  # change ~2% of the data
        if s.image:
            nfiles, changed = _scatter_changes(v2, budget)
        else:
            nfiles, changed = _debugfs_changes(s, d, src, v2, budget)
        fsync_path(v2)
        alloc1 = allocated_bytes(v1)
        s.log(f"v2: {nfiles} changes, {changed >> 10} KiB ({how})")
        for cs in sizes:
            s.log(f"chunk size {cs}")
            root = os.path.join(d, f"store-{cs}")
            home, st = new_store(root, cs)
            try:
                def unique(st=st) -> int:
                    q = "SELECT COALESCE(SUM(raw_len),0) FROM chunks"
                    return int(st.con.execute(q).fetchone()[0])

                if s.cold:
                    drop_cache(v1)
                r = open_disk(v1)
                t0 = time.perf_counter()
                r1 = ingest(st, r, threads=s.threads)
                t1 = time.perf_counter() - t0
                r.close()
                u1 = unique()
                if s.cold:
                    drop_cache(v2)
                r = open_disk(v2)
                t0 = time.perf_counter()
                r2 = ingest(st, r, threads=s.threads)
                t2 = time.perf_counter() - t0
                r.close()
                new_raw2 = unique() - u1
                st.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                idx = sum(os.path.getsize(p) for p in (st.index_path, st.index_path + "-wal")
                          if os.path.exists(p))
                mf1 = os.path.getsize(st.manifest_path(r1.digest))
            finally:
                home.close()
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
                "indexBytes": idx,
                "manifestBytes": mf1,
                "manifestRawBytes": 28 + 28 * r1.total_chunks,
                "cache": s.cache,
            })
            rm(root)
    return rows


# ----------------------------------------------------------------------------------------
# bench sparse
# ----------------------------------------------------------------------------------------


def _child(args: list[str], workdir: str) -> tuple[float, int, str]:
    """Run the imagestore CLI in a child process; (wall seconds, peak RSS bytes, stdout).
    The peak RSS is the child's own (``wait4``), not the maximum over all children so far."""
    cmd = [sys.executable, "-m", "imagestore.cli.main", *args]
    with tempfile.TemporaryFile(dir=workdir) as out, tempfile.TemporaryFile(dir=workdir) as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _pid, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        if p.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} failed ({p.returncode}): {err.read().decode().strip()[:400]}")
    return dt, ru.ru_maxrss * 1024, text


def bench_sparse(s: Settings) -> list[dict]:
    """A 15 TiB sparse raw file and a 32 TiB dynamic VHDX, each with a few MiB at far offsets,
    captured (and the raw one created back) in a child process: wall time and peak RSS."""
    import json

    rows: list[dict] = []
    TiB = 1 << 40
    with scratch(s, "sparse-") as d:
        f = os.path.join(d, "sparse15t.raw")
        run(["truncate", "-s", "15T", f])
        rnd = random.Random(7)
        offsets = [0, 3 * TiB + 12345 * 4096, 7 * TiB, 11 * TiB + MiB // 2, 15 * TiB - 2 * MiB]
        fd = os.open(f, os.O_WRONLY)
        try:
            for off in offsets:
                os.pwrite(fd, rnd.randbytes(MiB), off)
            os.fsync(fd)
        finally:
            os.close(fd)
        data = len(offsets) * MiB
        store = os.path.join(d, "store")
        Home.open(store).close()
        t, rss, out = _child(["--store", store, "store", "ingest", f, "-o", "json"], d)
        digest = json.loads(out)["digest"]
        rows.append({**row("capture 15 TiB sparse raw (5 MiB data), child process", "imagestore",
                           t, data, cache="warm"), "peakRSS_MiB": round(rss / MiB, 1),
                     "target": "<=3 s, <=200 MiB (issue 2)"})
        o = os.path.join(d, "out15t.raw")
        t, rss, _ = _child(["--store", store, "store", "materialize", digest, "--path", o, "-o", "json"], d)
        rows.append({**row("create 15 TiB sparse raw from the store, child process", "imagestore",
                           t, data, cache="warm"), "peakRSS_MiB": round(rss / MiB, 1),
                     "target": "seconds (issue 2)"})
        rows[-1]["allocatedOut"] = allocated_bytes(o)
        rm(o, f)
        v = os.path.join(d, "sparse32t.vhdx")
        run(["qemu-img", "create", "-q", "-f", "vhdx", v, "32T"])
        for i, off in enumerate((0, 16 * TiB, 32 * TiB - 2 * MiB)):
            run(["qemu-io", "-f", "vhdx", "-c", f"write -P {0xA0 + i} {off} 1M", v])
        t, rss, _ = _child(["--store", store, "store", "ingest", v, "-o", "json"], d)
        rows.append({**row("capture 32 TiB dynamic VHDX (3 MiB data), child process", "imagestore",
                           t, 3 * MiB, cache="warm"), "peakRSS_MiB": round(rss / MiB, 1),
                     "target": "seconds (issue 3)"})
    return rows


# ----------------------------------------------------------------------------------------
# bench replicate
# ----------------------------------------------------------------------------------------


def make_synthetic(path: str, size: int, compressibility: float, seed: int = 20261126) -> None:
    """A fully allocated raw file of ``size`` bytes (rounded down to 4 KiB) that zstd shrinks
    by about ``compressibility`` (0 = random, 0.5 ~ 2:1, 0.9 ~ 10:1): every 4 KiB block is
    random bytes followed by a repeated-text filler, so no two chunks are alike and every chunk
    compresses the same."""
    blk = 4096
    k = max(1, blk - int(round(blk * compressibility)))  # random bytes per block
    filler = np.frombuffer((b"imagestore generated filler. " * (blk // 16))[: blk - k], np.uint8)
    rng = np.random.default_rng(seed)
    nblocks = size // blk
    with open(path, "wb") as f:
        done = 0
        while done < nblocks:
            nb = min(2048, nblocks - done)  # 8 MiB at a time
            a = np.empty((nb, blk), np.uint8)
            a[:, :k] = np.frombuffer(rng.bytes(nb * k), np.uint8).reshape(nb, k)
            a[:, k:] = filler
            f.write(a.tobytes())
            done += nb
        f.flush()
        os.fsync(f.fileno())


def _raw_copy_of(s: Settings, dst: str) -> None:
    """The user's ``--image`` as a raw file at ``dst`` (a hard link when it is raw already and
    on the same file system: only read, never written)."""
    r = open_disk(s.image)
    fmt = r.format
    r.close()
    s.log(f"using {s.image} ({fmt})")
    if fmt == "raw":
        try:
            os.link(s.image, dst)  # same file system: no copy needed
        except OSError:
            run(["cp", "--sparse=always", s.image, dst])
    else:
        qfmt = {"vhd": "vpc", "vhdx": "vhdx"}[fmt.split("-")[0]]
        run(["qemu-img", "convert", "-f", qfmt, "-O", "raw", s.image, dst])
    fsync_path(dst)


def _version_packs(st, digest: str) -> tuple[int, list[str]]:
    """(stored bytes of the version's unique chunks, record headers included; the pack files
    of ``st`` holding them)."""
    from .store.packs import REC

    m = st.load_manifest(digest)
    ids = list(dict.fromkeys(cid for _o, _n, cid in m.extents()))
    locs = index_lookup_many(st.con, ids)
    names = index_pack_names(st.con)
    stored = sum(REC.size + loc[3] for loc in locs.values())
    packs = sorted({os.path.join(st.packs_dir, names[loc[0]]) for loc in locs.values()})
    return stored, packs


def cp_files(files: list[str], dst_dir: str) -> None:
    """``cp -r FILES DIR``, then fsync every copied file and the directory."""
    run(["cp", "-r", *files, dst_dir])
    for p in _files(dst_dir):
        fsync_path(p)
    fsync_path(dst_dir)


def bench_replicate(s: Settings) -> list[dict]:
    """Full replication of v1 to a new region vs ``cp -r`` of the packs it needs; incremental
    replication of v2 (v1 changed in place) to a region holding v1 vs the full replication of
    v2; fan-out of v1 to 3 regions, concurrent vs sequential."""
    from .regions.registry import RegionRegistry
    from .regions.replicas import open_slot, plan_copies
    from .regions.replicate import replicate
    from .store.cas import BlobStore

    rows: list[dict] = []
    cache = s.cache
    th = s.threads
    with scratch(s, "replicate-") as d:
        # -- the data: v1, and v2 = v1 with ~change_rate of its data changed in place
        v1 = os.path.join(d, "v1.raw")
        v2 = os.path.join(d, "v2.raw")
        if s.image:
            _raw_copy_of(s, v1)
            how = "random 4-64 KiB overwrites"
            what = s.image
        elif s.compressibility is not None:
            s.log(f"generating {s.size >> 20} MiB, compressibility {s.compressibility}")
            make_synthetic(v1, s.size, s.compressibility)
            how = "random 4-64 KiB overwrites"
            what = f"generated {s.size >> 20} MiB, compressibility {s.compressibility}"
        else:
            src, n = pick_source(s.size, d)
            s.log(f"building v1: {s.size >> 20} MiB ext4 from {src} ({n >> 20} MiB)")
            make_ext4(v1, s.size, src)
            how = "debugfs rm + write"
            what = f"{s.size >> 20} MiB ext4 (mkfs.ext4 -d {src})"
        run(["cp", "--sparse=always", v1, v2])
        budget = max(64 << 10, int(allocated_bytes(v1) * s.change_rate))
        if s.image or s.compressibility is not None:
            nchanges, changed = _scatter_changes(v2, budget)
        else:
            nchanges, changed = _debugfs_changes(s, d, src, v2, budget)
        fsync_path(v2)
        s.log(f"v2: {nchanges} changes, {changed >> 10} KiB ({how})")

        # -- the source region (local) holds v1 and v2
        root = os.path.join(d, "store")
        home, local = new_store(root)
        try:
            for v in (v1, v2):
                r = open_disk(v)
                try:
                    res = ingest(local, r, threads=th)
                finally:
                    r.close()
                if v == v1:
                    d1, ing1 = res.digest, res
                else:
                    d2 = res.digest
            stored1, packs1 = _version_packs(local, d1)
            stored2, _packs2 = _version_packs(local, d2)
            cfg = home.config
            reg = RegionRegistry(home)
            slots: dict[str, str] = {}
            for name in ("full", "full-v2", "incr", "fan-1", "fan-2", "fan-3"):
                region = reg.create(f"bench-{name}", [os.path.join(d, "zones", name)])
                slots[name] = plan_copies(region, 1)[0]
        finally:
            home.close()
        ratio = ing1.data_bytes / max(1, stored1)
        s.log(f"v1: {ing1.data_bytes >> 20} MiB of data, {stored1 >> 20} MiB stored "
              f"({ratio:.2f}:1) in {len(packs1)} pack file(s)")
        src_packs = os.path.join(root, "regions", "local", "packs")
        copy_dir = os.path.join(d, "cp-out")
        sent: dict[str, int] = {}

        def reset(*names: str) -> None:
            for n in names:
                rm(slots[n])
                BlobStore.create(slots[n], cfg)
            rm(copy_dir)
            os.makedirs(copy_dir)

        def settle(*extra: str) -> None:
            os.sync()  # the last run's writeback out of the next timing
            if s.cold:
                drop_cache(src_packs, *extra)
            else:
                for q in _files(src_packs):
                    warm(q)

        def prep(*names: str) -> Callable[[], None]:
            def f() -> None:
                reset(*names)
                settle()
            return f

        def repl(digest: str, name: str, key: str | None = None) -> Callable[[], object]:
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
        ], target="<=1.0 (issue 5)", cache=cache)
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
        ], target="<=0.2 (issue 5)", cache=cache)
        rows[-2]["sentBytes"] = sent["incr"]
        rows[-2]["changedBytes"] = changed
        rows[-1]["sentBytes"] = sent["full-v2"]

        # 3. fan-out of v1 to 3 new regions: 3 replications at once (threads) vs one by one
        s.log("fan-out to 3 regions, concurrent vs sequential")
        fans = ("fan-1", "fan-2", "fan-3")

        def concurrent() -> None:
            with ThreadPoolExecutor(max_workers=len(fans)) as pool:
                for fut in [pool.submit(repl(d1, n)) for n in fans]:
                    fut.result()

        def sequential() -> None:
            for n in fans:
                repl(d1, n)()

        t_conc, t_seq = interleaved(s, [(concurrent, prep(*fans)), (sequential, prep(*fans))])
        rows += pair("fan-out of v1 to 3 new regions, 3 replications at once", t_conc,
                     3 * stored1, [("3 replications one after another", "imagestore", t_seq)],
                     cache=cache)
        rows[-2]["sentBytes"] = rows[-1]["sentBytes"] = sum(sent[n] for n in fans)
    s.log(f"data: {what}")
    return rows


def settings_size(text: str | None, tiny: bool) -> int:
    if text:
        return parse_size(text, "--size")
    return 64 * MiB if tiny else GiB
