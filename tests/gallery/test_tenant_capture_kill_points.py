"""Crash points of the first capture in a second tenant's dedup domain (the strace pattern of
tests/store/test_kill_points.py): ``sig image-version create`` in a subscription of tenant T2
creates the store's dedup key (``identity/dedup.key``) and T2's domain row, then captures. It
is SIGKILLed at each of its write-path system calls in turn. After every kill:

* ``store verify`` exits 0; the dedup key is absent or whole;
* the retried create succeeds (or, when the version row was committed, ``worker --once``
  finishes it) and a disk from it equals the source;
* the domain is stable: T2 has tag 1, and a second capture of the same bytes in T2 stores no
  new chunk (same key, same chunk ids);
* after ``store gc`` no unreferenced chunk and no temp file is left.
"""

from __future__ import annotations

import os
import shutil
import sqlite3

import pytest

from imagestore.gallery import dedup
from tests.conftest import Cli
from tests.helpers import MiB
from tests.store.test_kill_points import collected, enumerate_points, make_source

pytestmark = [pytest.mark.one_pass,
              pytest.mark.sqlite_gallery("each kill point copies the store")]

S2 = "22222222-aaaa-4bbb-8ccc-222222222222"
V = ["sig", "image-version", "create", "-g", "rg2", "-r", "g", "-i", "d", "-e"]


def _domains(store: str) -> list[tuple[str, int]]:
    con = sqlite3.connect(os.path.join(store, "gallery.sqlite"))
    try:
        return con.execute("SELECT tenant_id, tag FROM dedup_domains ORDER BY tag").fetchall()
    finally:
        con.close()


def test_first_capture_in_a_second_tenant_kill_points(tmp_path_factory, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGESTORE_AUTOSTART_WORKER", "0")
    d = tmp_path_factory.mktemp("tenant-kp")
    src = make_source(str(d / "os.raw"), 31)
    with open(src, "r+b") as f:
        f.truncate(2 * MiB)
    template = str(d / "store")
    run = Cli(template)
    t2 = run.json("ad", "tenant", "create", "--display-name", "T2")["tenantId"]
    run.json("account", "create", "--tenant", t2, "--display-name", "dev",
             "--subscription-id", S2)
    run.json("group", "create", "-n", "rg2", "-l", "local", "--subscription", S2)
    run.json("sig", "create", "-g", "rg2", "-r", "g")
    run.json("sig", "image-definition", "create", "-g", "rg2", "-r", "g", "-i", "d", "-p", "P",
             "-f", "O", "-s", "S", "--os-type", "Linux")
    assert _domains(template) == [] and not os.path.exists(dedup.key_path(template))

    def prepare(w: str) -> str:
        store = os.path.join(w, "store")
        shutil.copytree(template, store, symlinks=True)
        return store

    def check(store: str) -> None:
        run = Cli(store)
        key = dedup.key_path(store)
        before = open(key, "rb").read() if os.path.exists(key) else None
        assert before is None or len(before) == 32, len(before)
        r = run("store", "verify")
        assert r.exit_code == 0, r.stderr
        r = run(*V, "1.0.0", "--os-vhd-uri", src)
        if r.exit_code == 5 and "already exists" in r.stderr:  # recorded before the kill
            w = run("worker", "--once")
            assert w.exit_code == 0, w.stderr
        else:
            assert r.exit_code == 0, (r.exit_code, r.stderr)
        assert _domains(store) == [(t2.lower(), 1)], _domains(store)
        with open(key, "rb") as f:
            k = f.read()
        assert len(k) == 32 and (before is None or k == before)
        out = os.path.join(os.path.dirname(store), "d.raw")
        run.json("disk", "create", "-g", "rg2", "-n", "d", "--gallery-image-reference",
                 f"/subscriptions/{S2}/resourceGroups/rg2/providers/Microsoft.Compute/"
                 "galleries/g/images/d/versions/1.0.0", "--path", out)
        with open(out, "rb") as a, open(src, "rb") as b:
            assert a.read() == b.read()
        collected(run, store)
        chunks = run.json("store", "stats")["chunks"]
        assert run(*V, "1.0.1", "--os-vhd-uri", src).exit_code == 0
        assert run.json("store", "stats")["chunks"] == chunks  # same domain key: all dedup'd

    enumerate_points("tenant-capture", prepare,
                     lambda s: ["--store", s, *V, "1.0.0", "--os-vhd-uri", src], check,
                     tmp_path)
