"""Crash points of linked-disk creation (the strace pattern of tests/store/test_kill_points.py):
the first `disk create --linked` of a version (which also materializes the shared parent) is
SIGKILLed at each of its write-path system calls in turn, from the same starting state.
After every kill:

* `store verify` exits 0;
* the disk either exists, pins its parent and reads as the version (`qemu-img compare`), or
  does not exist at all;
* a new linked disk of the version can be created and reads as the version;
* after deleting every linked disk, `store gc` leaves ``linked-parents/`` without any file: no
  staging file, no parent without a row, no unpinned parent.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import Cli
from tests.helpers import MiB, need
from tests.store.test_kill_points import enumerate_points, make_source

pytestmark = pytest.mark.one_pass  # the killed command is a real process; backend-neutral
# every kill point runs on its own copy of a store: with one shared PostgreSQL database the
# copies would see each other's disks
pytestmark = [pytestmark, pytest.mark.sqlite_gallery("each kill point copies the store")]


def _template(tmp_path_factory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("linked-kp")
    src = make_source(str(d / "os.raw"), 7)
    with open(src, "r+b") as f:  # a whole number of sectors, some MiB
        f.truncate(4 * MiB)
    run = Cli(str(d / "store"))
    run.definition()
    run.json("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "1.0.0",
             "--os-vhd-uri", src)
    return str(d / "store"), src


def _compare(path: str, src: str) -> None:
    p = subprocess.run([need("qemu-img"), "compare", "-f", "qcow2", "-F", "raw", path, src],
                       capture_output=True, text=True)
    assert p.returncode == 0, (path, p.stdout, p.stderr)


def test_linked_disk_creation_kill_points(tmp_path_factory, tmp_path):
    need("strace")
    template, src = _template(tmp_path_factory)

    def prepare(d: str) -> str:
        store = os.path.join(d, "store")
        shutil.copytree(template, store, symlinks=True)
        return store

    def argv_for(store: str) -> list[str]:
        return ["--store", store, "disk", "create", "-n", "l", "--gallery-image-reference",
                "g/d/1.0.0", "--format", "qcow2", "--linked"]

    def check(store: str) -> None:
        run = Cli(store)
        r = run("store", "verify")
        assert r.exit_code == 0, r.stderr
        r = run("disk", "show", "-n", "l")
        if r.exit_code == 0:
            d = run.json("disk", "show", "-n", "l")["properties"]["localStorage"]
            assert os.path.exists(d["linked"]["parentPath"])
            _compare(d["path"], src)
        else:
            assert r.exit_code == 4, r.stderr
        d2 = run.json("disk", "create", "-n", "l2", "--gallery-image-reference", "g/d/1.0.0",
                      "--format", "qcow2", "--linked")["properties"]["localStorage"]
        _compare(d2["path"], src)
        for name in ("l", "l2"):
            run("disk", "delete", "-n", name, "--delete-file")
        r = run("store", "gc")
        assert r.exit_code == 0, r.stderr
        root = os.path.join(store, "linked-parents")
        left = [os.path.join(dp, f) for dp, _dn, fs in os.walk(root) for f in fs
                if f != ".lock"]
        assert left == [], left

    enumerate_points("disk-create-linked", prepare, argv_for, check, tmp_path)
