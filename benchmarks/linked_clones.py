"""Linked clones: how long `disk create --linked` takes per disk, against a full disk create.

    python benchmarks/linked_clones.py [--size 2G] [--data 256M] [--disks 20] [--workdir /tmp]

Builds a store with one image version of SIZE virtual bytes (DATA of it random data in 4 MiB
runs spread over the disk, the rest holes), then in one process (the library, as the CLI and
the REST API call it):

1. the first linked disk: it also materializes the version's shared read-only parent (once);
2. DISKS more linked disks (qcow2 overlays over that parent), each timed alone, alternated
   with a full `--format qcow2` disk create of the same version every 5th disk (the A/B
   reference: what a disk costs without linking);
3. the file size of every linked disk.

Prints one JSON object: per-disk wall ms (median, max, all), user and sys CPU seconds per
disk (``getrusage``, all threads), the first disk's time (parent included), the full create's
time, the load average at start and end, the ratio full/linked of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

MiB = 1 << 20


def size_arg(s: str) -> int:
    units = {"K": 1 << 10, "M": MiB, "G": 1 << 30, "T": 1 << 40}
    return int(float(s[:-1]) * units[s[-1].upper()]) if s[-1].upper() in units else int(s)


def make_source(path: str, size: int, data: int) -> None:
    runs = max(1, data // (4 * MiB))
    step = size // runs
    with open(path, "wb") as f:
        f.truncate(size)
        for i in range(runs):
            f.seek(i * step)
            f.write(os.urandom(4 * MiB))
        os.fsync(f.fileno())


def timed(fn):  # noqa: ANN001, ANN201
    t0, c0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    out = fn()
    c1 = resource.getrusage(resource.RUSAGE_SELF)
    return (out, time.perf_counter() - t0, c1.ru_utime - c0.ru_utime,
            c1.ru_stime - c0.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="2G")
    ap.add_argument("--data", default="256M")
    ap.add_argument("--disks", type=int, default=20)
    ap.add_argument("--workdir", default=tempfile.gettempdir())
    a = ap.parse_args()
    from imagestore.home import Home
    from imagestore.worker.worker import open_gallery

    size, data = size_arg(a.size), size_arg(a.data)
    with tempfile.TemporaryDirectory(dir=a.workdir) as d:
        src = os.path.join(d, "os.raw")
        make_source(src, size, data)
        svc = open_gallery(Home.open(os.path.join(d, "store")))
        svc.galleries.create("default", "g")
        svc.definitions.create("default", "g", "d", publisher="P", offer="O", sku="S",
                               os_type="Linux")
        svc.versions.create("default", "g", "d", "1.0.0", os_vhd_uri=src)
        load0 = os.getloadavg()
        first, t_first, _u, _s = timed(lambda: svc.disks.create(
            "default", "first", "g/d/1.0.0", fmt="qcow2", linked=True))
        walls, users, syss, sizes, fulls = [], [], [], [], []
        for i in range(a.disks):
            out, t, u, s = timed(lambda i=i: svc.disks.create(
                "default", f"l{i}", "g/d/1.0.0", fmt="qcow2", linked=True))
            walls.append(t)
            users.append(u)
            syss.append(s)
            sizes.append(os.path.getsize(out["properties"]["localStorage"]["path"]))
            if i % 5 == 4:
                _o, tf, _u, _s = timed(lambda i=i: svc.disks.create(
                    "default", f"full{i}", "g/d/1.0.0", fmt="qcow2"))
                fulls.append(tf)
        load1 = os.getloadavg()
        svc.close()
    med = statistics.median(walls)
    print(json.dumps({
        "virtualSize": size, "dataBytes": data, "disks": a.disks,
        "firstLinkedDiskMs": round(t_first * 1000, 1),
        "linkedMsMedian": round(med * 1000, 2), "linkedMsMax": round(max(walls) * 1000, 2),
        "linkedMs": [round(w * 1000, 2) for w in walls],
        "userCpuMsPerDisk": round(statistics.median(users) * 1000, 2),
        "sysCpuMsPerDisk": round(statistics.median(syss) * 1000, 2),
        "linkedFileBytesMax": max(sizes),
        "fullQcow2CreateMs": [round(f * 1000, 1) for f in fulls],
        "fullOverLinkedMedianRatio": round(statistics.median(fulls) / med, 1) if fulls else None,
        "loadAverageStart": [round(x, 2) for x in load0],
        "loadAverageEnd": [round(x, 2) for x in load1],
        "firstDiskParent": first["properties"]["localStorage"]["linked"]["parentPath"]
        .rsplit("/", 1)[-1],
    }, indent=2))


if __name__ == "__main__":
    main()
