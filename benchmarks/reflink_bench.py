"""Disk creation by reflink: time against the number of extents, not the bytes.

Run as root (it loop-mounts an XFS image):

    python benchmarks/reflink_bench.py [--size 4G] [--workdir /tmp]

Builds a store with ``--compression none`` (what Premium_LRS keeps) on a reflink-capable XFS
loop mount, captures an image of SIZE with every chunk allocated (incompressible data, so every
chunk is stored raw and 4 KiB-aligned), then times ``store materialize --format raw`` three
ways: with hash verification (reads every chunk, shares the blocks), with ``--no-verify``
(shares the blocks, reads nothing), and a plain copy of the same disk with
``cp --reflink=never`` (what writing every byte costs on this filesystem). Also times a disk of 1/4 of the size (1/4 of the
extents, 1/4 of the bytes) and the full size with 1 MiB chunks (1/4 of the extents, all the
bytes), so what the time follows shows. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

MiB = 1 << 20


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def imagestore(store: str, *args: str) -> dict:
    out = sh(sys.executable, "-m", "imagestore.cli.main", "--store", store, *args)
    return json.loads(out) if out.strip() else {}


def timed(*argv: str) -> float:
    """Wall time of a command, its writes synced inside the timing."""
    sh("sync")
    t = time.perf_counter()
    sh(*argv)
    sh("sync")
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="4G")
    ap.add_argument("--workdir", default="/tmp")
    a = ap.parse_args()
    size = int(a.size[:-1]) * {"M": MiB, "G": 1 << 30}[a.size[-1].upper()]
    base = tempfile.mkdtemp(prefix="reflink-bench-", dir=a.workdir)
    img, mnt = os.path.join(base, "xfs.img"), os.path.join(base, "mnt")
    os.mkdir(mnt)
    with open(img, "wb") as f:
        f.truncate(3 * size + 2 * (1 << 30))
    sh("mkfs.xfs", "-q", "-m", "reflink=1", img)
    sh("mount", "-o", "loop", img, mnt)
    res: dict = {"size": size}
    try:
        gib = size >> 30
        for label, n, chunk in ((f"{gib}G, 256K chunks", size, "256K"),
                                (f"{gib / 4:g}G, 256K chunks", size // 4, "256K"),
                                (f"{gib}G, 1M chunks", size, "1M")):
            src = os.path.join(mnt, "src.raw")
            with open(src, "wb") as f:
                left = n
                while left:
                    k = min(left, 64 * MiB)
                    f.write(os.urandom(k))
                    left -= k
            store = os.path.join(mnt, "store")
            imagestore(store, "init", "--compression", "none", "--chunk-size", chunk)
            d = imagestore(store, "store", "ingest", src)["digest"]
            os.unlink(src)
            out = os.path.join(mnt, "disk.raw")
            row = {}
            for mode, extra in (("reflink+verify", []), ("reflink-no-verify", ["--no-verify"])):
                row[mode] = round(timed(sys.executable, "-m", "imagestore.cli.main", "--store",
                                        store, "store", "materialize", d, "--path", out,
                                        "--force", *extra), 3)
                extents = sh("filefrag", out).split(":")[-1].strip()
                row[f"{mode}-extents"] = extents
            os.unlink(out)
            # a copy: write the same bytes (cp --reflink=never of the materialized disk)
            imagestore(store, "store", "materialize", d, "--path", out, "--no-verify")
            copy = os.path.join(mnt, "copy.raw")
            row["cp-reflink-never"] = round(timed("cp", "--reflink=never", out, copy), 3)
            for p in (out, copy):
                os.unlink(p)
            res[label] = row
            sh("rm", "-rf", store)
    finally:
        subprocess.run(["umount", mnt], check=False)
        subprocess.run(["rm", "-rf", base], check=False)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
