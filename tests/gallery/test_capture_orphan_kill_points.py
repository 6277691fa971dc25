"""Crash points of a capture between publishing its manifest and committing its row (the
strace pattern of tests/store/test_kill_points.py): ``sig image-version create`` is SIGKILLed
at each of its write-path system calls in turn and nobody retries. After every kill,
``store gc``:

* leaves ``store verify`` clean, with no unreferenced chunk;
* leaves no orphan manifest: the manifests are exactly those a version row references (the
  capture intent, gallery/capture_intents.py, names what the killed process published);
* leaves no capture intent behind;

and the retried create still succeeds (or, when the row was committed, ``worker --once``
finishes it) with a disk equal to the source. A manifest published by ``store ingest`` (no
intent) survives gc, and so does one named by the intent of a live capture.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest

from imagestore.gallery import capture_intents
from tests.conftest import Cli
from tests.helpers import MiB
from tests.store import test_kill_points as kill_points
from tests.store.test_kill_points import enumerate_points, leftovers, make_source

pytestmark = [pytest.mark.one_pass,
              pytest.mark.sqlite_gallery("each kill point copies the store")]

V = ["sig", "image-version", "create", "-r", "g", "-i", "d", "-e"]


def _manifests(store: str) -> set[str]:
    return {n[:-3] for n in os.listdir(os.path.join(store, "regions", "local", "manifests"))
            if n.endswith(".mf")}


def _sql(store: str, sql: str, args: tuple = ()) -> list[tuple]:
    con = sqlite3.connect(os.path.join(store, "gallery.sqlite"))
    try:
        with con:
            return con.execute(sql, args).fetchall()
    finally:
        con.close()


def _referenced(store: str) -> set[str]:
    return {r[0] for r in _sql(store, "SELECT digest FROM version_disks WHERE digest != ''")}


def _gallery(store: str) -> Cli:
    run = Cli(store)
    run.definition()
    return run


def test_killed_capture_then_gc_leaves_no_orphan(tmp_path_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGESTORE_AUTOSTART_WORKER", "0")
    d = tmp_path_factory.mktemp("orphan-kp")
    src = make_source(str(d / "os.raw"), 51)
    with open(src, "r+b") as f:
        f.truncate(2 * MiB)
    template = str(d / "store")
    _gallery(template)
    seen: set[str] = set()

    def prepare(w: str) -> str:
        store = os.path.join(w, "store")
        shutil.copytree(template, store, symlinks=True)
        return store

    def check(store: str) -> None:
        run = Cli(store)
        had = _manifests(store)
        dry = run.json("store", "gc", "--dry-run")
        assert _manifests(store) == had  # a dry run removes nothing
        gc = run("store", "gc")
        assert gc.exit_code == 0, gc.stderr
        # and it told what the real run then did: the same manifests, the same chunks
        real = json.loads(gc.stdout)
        # (a manifest's temp file, killed before its rename, is a temp file gc removes)
        orphans = sorted(d for d in had - _referenced(store) if not d.startswith(".tmp-"))
        assert real["abandonedCaptureManifestsRemoved"] == dry[
            "abandonedCaptureManifestsRemoved"] == orphans, (dry, real)
        assert real["removedChunks"] == dry["wouldRemoveChunks"], (dry, real)
        assert real["removedTempFiles"] == dry["wouldRemoveTempFiles"], (dry, real)
        v = run.json("store", "verify")
        assert v["unreferencedChunks"] == 0, v
        assert _manifests(store) == _referenced(store), (had, _manifests(store))
        assert _sql(store, "SELECT * FROM capture_intents") == []
        if had - _referenced(store):
            seen.add("orphan removed")
        assert leftovers(store) == [], leftovers(store)
        r = run(*V, "1.0.0", "--os-vhd-uri", src, "-o", "none")
        if r.exit_code == 5 and "already exists" in r.stderr:  # recorded before the kill
            w = run("worker", "--once")
            assert w.exit_code == 0, w.stderr
        else:
            assert r.exit_code == 0, (r.exit_code, r.stderr)
        out = os.path.join(os.path.dirname(store), "v.raw")
        run.json("disk", "create", "-n", "v", "--gallery-image-reference", "g/d/1.0.0",
                 "--path", out)
        with open(out, "rb") as a, open(src, "rb") as b:
            assert a.read() == b.read()
        assert _sql(store, "SELECT * FROM capture_intents") == []

    enumerate_points("capture-orphan", prepare,
                     lambda s: ["--store", s, *V, "1.0.0", "--os-vhd-uri", src, "-o", "none"],
                     check, tmp_path)
    # the gap this closes was reached: some kill left a manifest without its row
    assert "orphan removed" in seen


def _dead_pid() -> int:
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                       capture_output=True, text=True, check=True)
    return int(p.stdout)


def test_gc_keeps_ingested_and_live_capture_manifests(tmp_path):
    """No intent (``store ingest``), or the intent of a live process (this one), or of
    another host within its TTL: gc keeps the manifest. A dead pid here, or another host past
    the TTL: gc removes it and frees its chunks."""
    srcs = [make_source(str(tmp_path / f"{i}.raw"), 60 + i) for i in range(5)]
    store = str(tmp_path / "store")
    run = _gallery(store)
    digests = [run.json("store", "ingest", s)["digest"] for s in srcs]
    me = capture_intents.hostname()
    old = 1.0  # epoch seconds: far past the TTL by any clock
    now = time.time()
    root, dead = os.path.realpath(store), _dead_pid()
    for digest, host, pid, created, at in ((digests[1], me, os.getpid(), now, root),
                                           (digests[2], "other-host", 1, now, root),
                                           (digests[2], me, dead, old, "/another/store"),
                                           (digests[3], me, dead, now, root),
                                           (digests[4], "other-host", 1, old, root)):
        _sql(store, "INSERT INTO capture_intents(host, pid, region, store, digests, created) "
             "VALUES (?, ?, 'local', ?, ?, ?)", (host, pid, at, json.dumps([digest]), created))
    gc = run.json("store", "gc")
    assert gc["removedChunks"] > 0, gc
    assert _manifests(store) == set(digests[:3])
    assert run.json("store", "verify")["unreferencedChunks"] == 0
    # the live ones stay, and another store's "local" is not this one's to clean
    assert len(_sql(store, "SELECT * FROM capture_intents")) == 3


def test_a_referenced_manifest_survives_its_abandoned_intent(tmp_path):
    """A killed capture's manifest that another version adopted (the retry) is referenced:
    the abandoned intent goes, the manifest stays. Malformed intents (hostile rows) are
    dropped without failing gc."""
    src = make_source(str(tmp_path / "os.raw"), 70)
    store = str(tmp_path / "store")
    run = _gallery(store)
    digest = run.json("store", "ingest", src)["digest"]
    _sql(store, "INSERT INTO capture_intents(host, pid, region, store, digests, created) "
         "VALUES (?, ?, 'local', ?, ?, 0)",
         (capture_intents.hostname(), _dead_pid(), os.path.realpath(store),
          json.dumps([digest, "0" * 32, "not a digest", 7])))
    _sql(store, "INSERT INTO capture_intents(host, pid, region, store, digests, created) "
         "VALUES (?, ?, 'local', ?, '{broken', 0)",
         (capture_intents.hostname(), _dead_pid(), os.path.realpath(store)))
    assert run(*V, "1.0.0", "--os-vhd-uri", src, "-o", "none").exit_code == 0
    assert run.json("store", "gc")["removedChunks"] == 0
    assert _manifests(store) == {digest}
    assert _sql(store, "SELECT * FROM capture_intents") == []
    assert run("store", "verify").exit_code == 0


def test_killed_snapshot_capture_then_gc_leaves_no_orphan(tmp_path_factory, tmp_path,
                                                        monkeypatch):
    """The same for ``snapshot create`` from a file (capture_file: snapshots and managed
    images). Pack and page writes are not sampled here (the version test above kills at
    them; the path to the manifest is the same ingest): only the state changes and syncs."""
    monkeypatch.setattr(kill_points, "SAMPLED", ("fsync", "fdatasync"))
    d = tmp_path_factory.mktemp("orphan-snap-kp")
    src = make_source(str(d / "os.raw"), 52)
    with open(src, "r+b") as f:
        f.truncate(2 * MiB)
    template = str(d / "store")
    _gallery(template)  # the store and its gallery database
    argv = ["snapshot", "create", "-n", "s", "--source", f"file://{src}"]
    seen: set[str] = set()

    def prepare(w: str) -> str:
        store = os.path.join(w, "store")
        shutil.copytree(template, store, symlinks=True)
        return store

    def check(store: str) -> None:
        run = Cli(store)
        snaps = {r[0] for r in _sql(store, "SELECT digest FROM snapshots")}
        if _manifests(store) - snaps:
            seen.add("orphan removed")
        assert run("store", "gc").exit_code == 0
        assert run.json("store", "verify")["unreferencedChunks"] == 0
        assert _manifests(store) == snaps
        assert _sql(store, "SELECT * FROM capture_intents") == []
        r = run(*argv)
        assert r.exit_code == 0 or (r.exit_code == 5 and snaps), (r.exit_code, r.stderr)
        assert _manifests(store) == {r[0] for r in _sql(store, "SELECT digest FROM snapshots")}

    enumerate_points("snapshot-orphan", prepare, lambda s: ["--store", s, *argv], check,
                     tmp_path)
    assert "orphan removed" in seen


def test_worker_removes_an_abandoned_capture(tmp_path):
    """``imagestore worker`` does at start what gc does: the dead capture's manifest goes
    (its chunks wait for gc), a live capture's stays."""
    srcs = [make_source(str(tmp_path / f"{i}.raw"), 80 + i) for i in range(2)]
    store = str(tmp_path / "store")
    run = _gallery(store)
    digests = [run.json("store", "ingest", s)["digest"] for s in srcs]
    for digest, pid in ((digests[0], _dead_pid()), (digests[1], os.getpid())):
        _sql(store, "INSERT INTO capture_intents(host, pid, region, store, digests, created) "
             "VALUES (?, ?, 'local', ?, ?, ?)", (capture_intents.hostname(), pid,
                                                 os.path.realpath(store),
                                                 json.dumps([digest]), time.time()))
    assert run("worker", "--once").exit_code == 0
    assert _manifests(store) == {digests[1]}
    assert run.json("store", "verify")["unreferencedChunks"] > 0
    assert run.json("store", "gc")["removedChunks"] > 0
    assert run.json("store", "verify")["unreferencedChunks"] == 0


def test_a_failed_capture_removes_its_manifest_and_intent(tmp_path, monkeypatch):
    """A capture whose row cannot be committed (a fault injected into the row's insert,
    after the manifest is published) removes that manifest and its intent at once."""
    from imagestore.errors import StoreBusy
    from imagestore.gallery.repository import Repository

    srcs = [make_source(str(tmp_path / f"{i}.raw"), 90 + i) for i in range(2)]
    store = str(tmp_path / "store")
    run = _gallery(store)
    run.json("snapshot", "create", "-n", "s", "--source", f"file://{srcs[0]}")
    kept = _manifests(store)

    def refuse(*_a, **_k):
        raise StoreBusy("injected: the row's transaction fails")

    monkeypatch.setattr(Repository, "insert_snapshot", refuse)
    r = run("snapshot", "create", "-n", "t", "--source", f"file://{srcs[1]}")
    assert r.exit_code == 9 and "injected" in r.stderr, (r.exit_code, r.stderr)
    assert _manifests(store) == kept
    assert _sql(store, "SELECT * FROM capture_intents") == []
    assert run.json("store", "gc")["removedChunks"] > 0
    assert run.json("store", "verify")["unreferencedChunks"] == 0
