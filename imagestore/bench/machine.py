"""``bench machine``: the machine's own limits, measured now."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import xxhash
import zstandard

from ..accel import BACKEND, is_zero, nonzero_runs
from .cache import drop_cache
from .images import sample_data
from .report import row
from .settings import MiB, Settings
from .tools import run, scratch


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

