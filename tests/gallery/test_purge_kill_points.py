"""Crash points of ``store gc`` purging a soft-deleted version past its hard-deletion time
(the strace pattern of tests/store/test_kill_points.py; the clock moved with
``IMAGESTORE_NOW``): the purge deletes the version's rows, unpublishes its manifest, then gc
frees its chunks. After every kill:

* ``store verify`` exits 0;
* the retried ``store gc`` finishes the purge: the version is gone, its manifest unpublished
  and its chunks freed (no unreferenced chunk), the kept version reads as its source;
* the purged name can be used again.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import Cli
from tests.helpers import MiB
from tests.store.test_kill_points import enumerate_points, leftovers, make_source

pytestmark = [pytest.mark.one_pass,
              pytest.mark.sqlite_gallery("each kill point copies the store")]

V = ["-r", "g", "-i", "d", "-e"]


def _manifests(store: str) -> set[str]:
    return {n for n in os.listdir(os.path.join(store, "regions", "local", "manifests"))
            if n.endswith(".mf")}


def test_gc_purge_kill_points(tmp_path_factory, tmp_path, monkeypatch):
    d = tmp_path_factory.mktemp("purge-kp")
    srcs = [make_source(str(d / f"{i}.raw"), 20 + i) for i in (0, 1)]
    for s in srcs:
        with open(s, "r+b") as f:
            f.truncate(2 * MiB)
    template = str(d / "store")
    run = Cli(template)
    run.definition("--soft-delete", "true")
    kept: set[str] = set()
    for v, s in (("1.0.0", srcs[0]), ("1.0.1", srcs[1])):
        assert run("sig", "image-version", "create", *V, v, "--os-vhd-uri", s,
                   "-o", "none").exit_code == 0
        kept = kept or _manifests(template)
    assert run("sig", "image-version", "delete", *V, "1.0.1").exit_code == 0
    assert len(_manifests(template)) == 2
    monkeypatch.setenv("IMAGESTORE_NOW", (datetime.now(UTC) + timedelta(days=15)).isoformat())
    vid = run.json("sig", "image-version", "show", *V, "1.0.0")["id"].rsplit("/", 1)[0]

    def prepare(w: str) -> str:
        store = os.path.join(w, "store")
        shutil.copytree(template, store, symlinks=True)
        return store

    def check(store: str) -> None:
        run = Cli(store)
        r = run("store", "verify")
        assert r.exit_code == 0, r.stderr
        before = _manifests(store)
        dry = run.json("store", "gc", "--dry-run")
        assert _manifests(store) == before  # a dry run removes nothing
        gc = run.json("store", "gc")
        assert gc["softDeletedVersionsPurged"] in ([], [f"{vid}/1.0.1"]), gc
        # it told what the real run then did, whether the kill came before or after the rows
        assert dry["softDeletedVersionsPurged"] == gc["softDeletedVersionsPurged"], (dry, gc)
        assert dry["interruptedDeletionsFreed"] == gc["interruptedDeletionsFreed"], (dry, gc)
        assert dry["wouldRemoveChunks"] == gc["removedChunks"], (dry, gc)
        assert run.json("sig", "image-version", "list-soft-deleted", "-r", "g", "-i", "d") == []
        assert run("sig", "image-version", "show", *V, "1.0.1").exit_code == 4
        assert _manifests(store) == kept, _manifests(store)
        assert run.json("store", "verify")["unreferencedChunks"] == 0
        out = os.path.join(os.path.dirname(store), "k.raw")
        run.json("disk", "create", "-n", "k", "--gallery-image-reference", "g/d/1.0.0",
                 "--path", out)
        with open(out, "rb") as a, open(srcs[0], "rb") as b:
            assert a.read() == b.read()
        assert leftovers(store) == [], leftovers(store)
        assert run("sig", "image-version", "create", *V, "1.0.1", "--os-vhd-uri", srcs[1],
                   "-o", "none").exit_code == 0

    enumerate_points("gc-purge", prepare, lambda s: ["--store", s, "store", "gc"], check,
                     tmp_path)


def test_manifest_published_without_its_version_row(tmp_path):
    """A manifest published without a version row: verify counts it as a manifest — clean,
    not an error — and a capture of the same bytes adopts it (same digest, no second
    manifest). Published by ``store ingest`` it has no capture intent, so gc keeps it even
    unreferenced; a killed capture's (with its intent) is removed by gc, see
    test_capture_orphan_kill_points.py."""
    src = make_source(str(tmp_path / "os.raw"), 41)
    run = Cli(str(tmp_path / "store"))
    run.definition()
    digest = run.json("store", "ingest", src)["digest"]
    store = str(tmp_path / "store")
    v = run.json("store", "verify")
    assert v["manifestsChecked"] == 1 and v["unreferencedChunks"] == 0, v
    assert run.json("store", "gc")["removedChunks"] == 0  # a user's manifest, no row: kept
    assert _manifests(store) == {f"{digest}.mf"}
    assert run("sig", "image-version", "create", *V, "1.0.0", "--os-vhd-uri", src,
               "-o", "none").exit_code == 0
    assert _manifests(store) == {f"{digest}.mf"}
    gc = run.json("store", "gc")
    assert gc["removedChunks"] == 0, gc
    assert _manifests(store) == {f"{digest}.mf"}
