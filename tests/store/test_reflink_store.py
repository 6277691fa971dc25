"""Disk creation from uncompressed (Premium / --compression none) data shares blocks with the
store on a filesystem with reflink: the new disk's extents are flagged shared and free space
barely moves. Runs on a loop-mounted XFS image (see tests/test_reflink.py for the skip rules)."""

from __future__ import annotations

import json
import os
import subprocess

from tests.helpers import free_bytes, run_imagestore, shared_extents

MiB = 1 << 20


def test_materialize_reflinks_uncompressed_chunks(xfs):  # noqa: F811
    store = os.path.join(xfs, "store")
    run_imagestore("--store", store, "init", "--compression", "none")
    src = os.path.join(xfs, "src.raw")
    with open(src, "wb") as f:
        f.write(os.urandom(24 * MiB))
        f.seek(40 * MiB)
        f.write(os.urandom(8 * MiB))
    res = json.loads(run_imagestore("--store", store, "store", "ingest", src).stdout)
    subprocess.run(["sync"], check=True)
    before = free_bytes(xfs)
    out = os.path.join(xfs, "disk.raw")
    m = json.loads(run_imagestore("--store", store, "store", "materialize", res["digest"],
                                  "--path", out).stdout)
    subprocess.run(["sync"], check=True)
    assert m["clonedBytes"] == 32 * MiB and m["writtenBytes"] == 0
    subprocess.run(["cmp", src, out], check=True)
    n, shared = shared_extents(out)
    assert n >= 1 and shared == n
    assert before - free_bytes(xfs) < 2 * MiB  # 32 MiB of disk data, no new data blocks
    # --no-verify skips the read; the result is the same disk
    out2 = os.path.join(xfs, "disk2.raw")
    run_imagestore("--store", store, "store", "materialize", res["digest"], "--path", out2,
                   "--no-verify")
    subprocess.run(["cmp", src, out2], check=True)
    # compressed stores cannot share: the same disk is written (and still identical)
    store_z = os.path.join(xfs, "store-z")
    half = os.path.join(xfs, "half.raw")
    with open(half, "wb") as f:
        f.write((b"abcd" * 1024) * 2048)
    dz = json.loads(run_imagestore("--store", store_z, "store", "ingest", half).stdout)["digest"]
    mz = json.loads(run_imagestore("--store", store_z, "store", "materialize", dz, "--path",
                                   os.path.join(xfs, "half.out")).stdout)
    assert mz["clonedBytes"] == 0 and mz["writtenBytes"] == 8 * MiB
