"""``bench sparse``: huge sparse disks with a few MiB of data, captured (and the raw one
created back) by the CLI in a child process: wall time and the child's peak RSS."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time

from ..home import Home
from .cache import allocated_bytes
from .report import Goal, row
from .settings import BenchError, MiB, Settings
from .tools import rm, run, scratch


def child(args: list[str], workdir: str) -> tuple[float, int, str]:
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
        t, rss, out = child(["--store", store, "store", "ingest", f, "-o", "json"], d)
        digest = json.loads(out)["digest"]
        rows.append({**row("capture 15 TiB sparse raw (5 MiB data), child process", "imagestore",
                           t, data, cache="warm"), "peakRSS_MiB": round(rss / MiB, 1),
                     "target": Goal.SPARSE_CAPTURE})
        o = os.path.join(d, "out15t.raw")
        t, rss, _ = child(["--store", store, "store", "materialize", digest, "--path", o, "-o", "json"], d)
        rows.append({**row("create 15 TiB sparse raw from the store, child process", "imagestore",
                           t, data, cache="warm"), "peakRSS_MiB": round(rss / MiB, 1),
                     "target": Goal.SPARSE_FAST})
        rows[-1]["allocatedOut"] = allocated_bytes(o)
        rm(o, f)
        v = os.path.join(d, "sparse32t.vhdx")
        run(["qemu-img", "create", "-q", "-f", "vhdx", v, "32T"])
        for i, off in enumerate((0, 16 * TiB, 32 * TiB - 2 * MiB)):
            run(["qemu-io", "-f", "vhdx", "-c", f"write -P {0xA0 + i} {off} 1M", v])
        t, rss, _ = child(["--store", store, "store", "ingest", v, "-o", "json"], d)
        rows.append({**row("capture 32 TiB dynamic VHDX (3 MiB data), child process", "imagestore",
                           t, 3 * MiB, cache="warm"), "peakRSS_MiB": round(rss / MiB, 1),
                     "target": Goal.SPARSE_FAST})
    return rows

