"""Crash safety and concurrency with real processes: SIGKILL at random moments, parallel
ingests. After every kill `store verify` is clean and a retry succeeds."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import kill_when_grown, run_imagestore, store_tree_snapshot

MiB = 1 << 20


def make_source(path: str, seed: int, mib: int = 192) -> str:
    """Half-compressible data with holes and zero runs."""
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        for i in range(mib):
            if i % 3 == 0:
                f.write(rnd.randbytes(MiB))
            elif i % 3 == 1:
                f.write(rnd.randbytes(64) * (MiB // 64))
            else:
                f.write(bytes(MiB // 2) + rnd.randbytes(MiB // 2))
    return path


@pytest.fixture(scope="module")
def big_source(tmp_path_factory) -> str:
    return make_source(str(tmp_path_factory.mktemp("crash") / "src.raw"), 42)


def start(store: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "imagestore.cli.main", "--store", store, *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def verify_clean(store: str) -> dict:
    p = run_imagestore("--store", store, "store", "verify", check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    return json.loads(p.stdout)


def test_sigkill_during_ingest(tmp_path, big_source):
    store = str(tmp_path / "store")
    run_imagestore("--store", store, "init", "--chunk-size", "256K")
    packs = os.path.join(store, "regions", "local", "packs")
    rnd = random.Random(1234)
    kills = 0
    for attempt in range(6):
        # fresh data each time, so that no attempt is sped up by the chunks of the last; killed
        # when a random share of its pack data has been written (before or after the first
        # index commit at 256 MiB)
        src = make_source(str(tmp_path / f"src{attempt}.raw"), attempt, mib=320)
        proc = start(store, "store", "ingest", src)
        # ~160 MiB of pack data per source (a third random, a third half zero, the rest dedups)
        kills += kill_when_grown(proc, packs, int(rnd.uniform(0.05, 0.9) * 140 * MiB))
        verify_clean(store)
        os.unlink(src)
    # the watcher polls; starved of CPU it can miss a late threshold and the ingest completes
    # (also a clean outcome, verified above): most attempts must still have been kills
    assert kills >= 4
    res = json.loads(run_imagestore("--store", store, "store", "ingest", big_source).stdout)
    out = str(tmp_path / "out.raw")
    run_imagestore("--store", store, "store", "materialize", res["digest"], "--path", out)
    subprocess.run(["cmp", big_source, out], check=True)
    rep = verify_clean(store)
    # leftovers of killed runs are only unreferenced chunks, and gc takes them away
    gc = json.loads(run_imagestore("--store", store, "store", "gc").stdout)
    after = verify_clean(store)
    assert after["unreferencedChunks"] == 0
    assert gc["removedChunks"] == rep["unreferencedChunks"]


def test_sigkill_during_materialize_leaves_no_partial_file(tmp_path, big_source):
    store = str(tmp_path / "store")
    res = json.loads(run_imagestore("--store", store, "store", "ingest", big_source).stdout)
    out = tmp_path / "out.raw"
    rnd = random.Random(77)
    kills = 0
    for _ in range(4):
        proc = start(store, "store", "materialize", res["digest"], "--path", str(out), "--force")
        # killed once a random share of the ~150 MiB of disk data has been written
        if kill_when_grown(proc, str(tmp_path), int(rnd.uniform(0.05, 0.8) * 150 * MiB)):
            kills += 1
            assert not out.exists()  # the disk appears only complete, by rename
        else:
            assert proc.returncode == 0
            out.unlink()
        verify_clean(store)
    assert kills >= 1
    run_imagestore("--store", store, "store", "materialize", res["digest"], "--path", str(out))
    subprocess.run(["cmp", big_source, str(out)], check=True)


def test_sigkill_during_gc(tmp_path, big_source):
    store = str(tmp_path / "store")
    run_imagestore("--store", store, "init", "--chunk-size", "64K")
    a = json.loads(run_imagestore("--store", store, "store", "ingest", big_source).stdout)["digest"]
    small = tmp_path / "small.raw"
    with open(big_source, "rb") as f:
        small.write_bytes(f.read(16 * MiB))
    b = json.loads(run_imagestore("--store", store, "store", "ingest", str(small)).stdout)["digest"]
    os.unlink(os.path.join(store, "regions", "local", "manifests", a + ".mf"))
    rnd = random.Random(99)
    for _ in range(4):
        proc = start(store, "store", "gc")
        time.sleep(rnd.uniform(0.0, 0.25))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        verify_clean(store)
    run_imagestore("--store", store, "store", "gc")
    assert verify_clean(store)["unreferencedChunks"] == 0
    out = str(tmp_path / "b.raw")
    run_imagestore("--store", store, "store", "materialize", b, "--path", out)
    subprocess.run(["cmp", str(small), out], check=True)


def test_two_ingests_at_once(tmp_path, big_source, ext4_image):
    store = str(tmp_path / "store")
    run_imagestore("--store", store, "init")
    procs = [start(store, "store", "ingest", p) for p in (big_source, ext4_image, big_source)]
    outs = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    digests = [json.loads(o[0])["digest"] for o in outs]
    assert digests[0] == digests[2]
    verify_clean(store)
    for src, d in ((big_source, digests[0]), (ext4_image, digests[1])):
        out = str(tmp_path / f"{d}.raw")
        run_imagestore("--store", store, "store", "materialize", d, "--path", out)
        subprocess.run(["cmp", src, out], check=True)


def test_gc_waits_for_readers(tmp_path, big_source):
    """gc takes the exclusive lock: while a reader holds the shared lock, gc with a short
    --timeout gives up with exit 9 and touches nothing; once the reader is gone it runs."""
    from imagestore.home import Home


    store = str(tmp_path / "store")
    run_imagestore("--store", store, "store", "ingest", big_source)
    home = Home.open(store)
    before = store_tree_snapshot(store)
    with home.blob_store().lock(exclusive=False):  # what ingest/materialize/verify hold
        p = run_imagestore("--store", store, "store", "gc", "--timeout", "0.2", check=False)
        assert p.returncode == 9 and "store lock" in p.stderr, p.stderr
        assert store_tree_snapshot(store) == before
    home.close()
    run_imagestore("--store", store, "store", "gc")
    verify_clean(store)
