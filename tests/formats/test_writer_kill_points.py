"""Crash points of the qcow2 and VHDX writers (the strace pattern of
tests/store/test_kill_points.py): ``disk create --format qcow2|vhdx`` of an image version, at
the default path in the store's ``disks/``, is SIGKILLed at each of its write-path system
calls in turn, from the same starting state. After every kill:

* ``store verify`` exits 0;
* the disk either has a row and its file is complete (``qemu-img check`` clean, ``qemu-img
  compare`` equal to the source), or has no row;
* the retried ``disk create`` with the same name succeeds (a file a kill left published at the
  default path without its row is reclaimed) and reads as the source;
* no temp file of the writer is left in ``disks/`` after the retry (the next creation of the
  same path removes a dead process's temp file; ``store gc`` removes any).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from tests.conftest import Cli
from tests.helpers import MiB, need
from tests.store.test_kill_points import enumerate_points, leftovers, make_source

pytestmark = [pytest.mark.one_pass,
              pytest.mark.sqlite_gallery("each kill point copies the store")]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("writer-kp")
    src = make_source(str(d / "os.raw"), 11)
    with open(src, "r+b") as f:  # a whole number of sectors
        f.truncate(4 * MiB)
    run = Cli(str(d / "store"))
    run.definition()
    run.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
             "--os-vhd-uri", src)
    return str(d / "store"), src


def _check_image(path: str, fmt: str, src: str) -> None:
    qemu = need("qemu-img")
    p = subprocess.run([qemu, "check", "-f", fmt, path], capture_output=True, text=True)
    assert p.returncode == 0, (path, p.stdout, p.stderr)
    p = subprocess.run([qemu, "compare", "-f", fmt, "-F", "raw", path, src],
                       capture_output=True, text=True)
    assert p.returncode == 0, (path, p.stdout, p.stderr)


@pytest.mark.parametrize("fmt", ["qcow2", "vhdx"])
def test_disk_create_kill_points(template, tmp_path, fmt):
    need("strace")
    store_t, src = template

    def prepare(d: str) -> str:
        store = os.path.join(d, "store")
        shutil.copytree(store_t, store, symlinks=True)
        return store

    def argv_for(store: str) -> list[str]:
        return ["--store", store, "disk", "create", "-n", "w", "--gallery-image-reference",
                "g/d/1.0.0", "--format", fmt]

    def check(store: str) -> None:
        run = Cli(store)
        r = run("store", "verify")
        assert r.exit_code == 0, r.stderr
        r = run("disk", "show", "-n", "w")
        if r.exit_code == 0:  # killed after the row: the disk is complete
            ls = json.loads(r.stdout)["properties"]["localStorage"]
            _check_image(ls["path"], fmt, src)
            r = run("disk", "delete", "-n", "w", "--delete-file")
            assert r.exit_code == 0, r.stderr
        else:
            assert r.exit_code == 4, r.stderr
        ls = run.json("disk", "create", "-n", "w", "--gallery-image-reference", "g/d/1.0.0",
                      "--format", fmt)["properties"]["localStorage"]
        assert ls["path"] == os.path.join(store, "disks", f"w.{fmt}")
        _check_image(ls["path"], fmt, src)
        disks = os.path.join(store, "disks")
        assert leftovers(disks) == [], leftovers(disks)
        assert sorted(os.listdir(disks)) == [f"w.{fmt}"], os.listdir(disks)

    enumerate_points(f"disk-create-{fmt}", prepare, argv_for, check, tmp_path)


def test_gc_removes_dead_disk_temps_only(template, tmp_path):
    """``store gc`` removes writer temp files in ``disks/`` whose process is gone, and keeps
    a live process's (and anything not of its naming)."""
    store = str(tmp_path / "store")
    shutil.copytree(template[0], store, symlinks=True)
    disks = os.path.join(store, "disks")
    os.makedirs(disks, exist_ok=True)
    host = os.uname().nodename.replace("-", "_") or "host"
    dead = subprocess.Popen(["true"])
    dead.wait()
    live = subprocess.Popen(["sleep", "60"])
    try:
        names = {f".x.qcow2.imagestore-new-{host}-{dead.pid}-abcd": False,
                 f".y.vhdx.imagestore-new-{host}-{live.pid}-abcd": True,
                 ".z.raw.imagestore-1234abcd": True,  # not of its naming: not ours to judge
                 "mine.raw": True}
        for n in names:
            with open(os.path.join(disks, n), "wb") as f:
                f.write(b"torn")
        out = Cli(store).json("store", "gc")
        assert out["abandonedTempFilesRemoved"] == 1, out
        assert sorted(os.listdir(disks)) == sorted(n for n, keep in names.items() if keep)
        assert Cli(store).json("store", "gc", "--dry-run")["abandonedTempFilesRemoved"] == 0
    finally:
        live.kill()
        live.wait()
