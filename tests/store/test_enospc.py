"""A full disk, on a real 40 MiB ext4 filesystem (1 KiB blocks): a capture that runs out of
space fails with exit 10 and leaves nothing behind, after which every command works; a write
on a full disk is exit 10, never SIGBUS (the cause is shown with plain sqlite3); gc runs on a
full disk; replication, disk creation and gc running out of space clean up after themselves.

Commands that could die of a signal run as real processes (``run_imagestore``)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import pytest

from imagestore.errors import IOFailure
from imagestore.home import Home
from imagestore.store import index
from imagestore.store.packs import PackWriter
from tests.conftest import Cli
from tests.helpers import MiB, fill_disk, free_bytes, make_random, run_imagestore

FULL = 10
GALLERY = ["-r", "g", "-i", "d"]


def cli(store: str, *args: str, check: bool = False) -> subprocess.CompletedProcess:
    return run_imagestore("--store", store, *args, check=check,
                          env=dict(os.environ, IMAGESTORE_AUTOSTART_WORKER="0"))


def one_line_error(p: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    err = p.stderr.strip()
    assert p.returncode == code, (p.returncode, err)
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for n in needles:
        assert n in err, (n, err)
    return err


def gallery(store: str) -> None:
    run = Cli(store)
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", *GALLERY, "-p", "P", "-f", "O", "-s", "S",
             "--os-type", "Linux")


def unpublished(blob_root: str) -> list[str]:
    """Pack files no index row points into, and temp files, in one blob store."""
    con = index.connect(os.path.join(blob_root, "index.sqlite"))
    try:
        known = set(index.pack_names(con).values())
        used = {n for (n,) in con.execute(
            "SELECT p.name FROM packs p WHERE EXISTS (SELECT 1 FROM chunks c WHERE c.pack=p.id)")}
    finally:
        con.close()
    packs = os.listdir(os.path.join(blob_root, "packs"))
    out = [p for p in packs if p not in known or p not in used]
    for d, _dirs, files in os.walk(blob_root):
        out += [os.path.join(d, f) for f in files if f.startswith(".tmp-")]
    return out


def same(a: str, b: str) -> None:
    subprocess.run(["cmp", a, b], check=True)


def test_capture_on_a_full_disk_leaves_nothing_and_everything_works_after(small_fs, tmp_path):
    store = os.path.join(small_fs, "store")
    gallery(store)
    local = os.path.join(store, "regions", "local")
    free_before = free_bytes(small_fs)
    big = make_random(str(tmp_path / "big.raw"), 48, seed=1)  # more than the disk holds
    p = cli(store, "sig", "image-version", "create", *GALLERY, "-e", "1.0.0", "--os-vhd-uri", big)
    one_line_error(p, FULL, "no space left on device", store)
    assert unpublished(local) == []
    assert os.listdir(os.path.join(local, "packs")) == []  # the ~36 MiB it wrote are gone
    assert free_bytes(small_fs) >= free_before - 2 * MiB
    one_line_error(cli(store, "sig", "image-version", "show", *GALLERY, "-e", "1.0.0"), 4)
    # every command works afterwards
    assert json.loads(cli(store, "sig", "list", check=True).stdout)[0]["name"] == "g"
    cli(store, "sig", "image-definition", "create", "-r", "g", "-i", "d2", "-p", "P", "-f", "O",
        "-s", "S2", "--os-type", "Linux", check=True)
    small = make_random(str(tmp_path / "small.raw"), 3, seed=2)
    cli(store, "sig", "image-version", "create", *GALLERY, "-e", "1.0.1", "--os-vhd-uri", small,
        check=True)
    v2 = json.loads(cli(store, "sig", "image-version", "create", *GALLERY, "-e", "1.0.2",
                        "--os-vhd-uri", small, check=True).stdout)  # dedup only
    assert v2["properties"]["provisioningState"] == "Succeeded"
    assert json.loads(cli(store, "store", "verify", check=True).stdout)["clean"]
    cli(store, "store", "gc", check=True)
    ref = v2["id"]
    out = str(tmp_path / "out.raw")
    cli(store, "disk", "create", "-n", "d1", "--gallery-image-reference", ref, "--path", out,
        check=True)
    same(small, out)


SQL = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
       "c.execute(sys.argv[2]).fetchall()")


def plain_sqlite(db: str, sql: str) -> int:
    """Run one statement on ``db`` with plain sqlite3 in a process of its own."""
    return subprocess.run([sys.executable, "-c", SQL, db, sql], capture_output=True).returncode


def test_nearly_full_disk_write_is_exit_10_not_sigbus_and_gc_runs(small_fs, tmp_path):
    """The SIGBUS: SQLite extends its WAL index (-shm) by writing one byte per 4 KiB page,
    which on 1 KiB blocks leaves 3 of every 4 blocks a hole; a reader on a nearly full disk
    makes such a -shm, and the next writer storing into a hole through the mapping dies of
    SIGBUS. Shown with plain sqlite3, then imagestore on the same state: exit 0 or 10."""
    assert os.statvfs(small_fs).f_bsize == 1024
    store = os.path.join(small_fs, "store")
    gallery(store)
    local = os.path.join(store, "regions", "local")
    orphan = os.path.join(local, "packs", "pack-00000000000000000001.pack")
    make_random(orphan, 4, seed=3)  # what a capture killed by SIGKILL leaves
    probe = os.path.join(small_fs, "probe.sqlite")
    assert plain_sqlite(probe, "PRAGMA journal_mode=WAL") == 0
    assert plain_sqlite(probe, "CREATE TABLE probe(x)") == 0
    db = os.path.join(store, "gallery.sqlite")
    for f in (probe, db):
        if os.path.exists(f + "-shm"):  # no connection is open: a clean start
            os.unlink(f + "-shm")
    filler = fill_disk(small_fs, leave=24 << 10)
    try:
        assert plain_sqlite(probe, "SELECT count(*) FROM probe") == 0  # a -shm with holes
        assert plain_sqlite(probe, "INSERT INTO probe VALUES (1)") == -7  # SIGBUS
        for f in (filler, probe, probe + "-wal", probe + "-shm"):
            os.unlink(f)
        filler = fill_disk(small_fs, leave=24 << 10)
        assert plain_sqlite(db, "SELECT count(*) FROM galleries") == 0  # the same -shm
        p = cli(store, "sig", "create", "-r", "g2")
        assert p.returncode in (0, FULL), (p.returncode, p.stderr)
        if p.returncode:
            one_line_error(p, FULL, db)
        assert json.loads(cli(store, "sig", "list", check=True).stdout)[0]["name"] == "g"
        cli(store, "store", "stats", check=True)
        cli(store, "store", "verify", check=True)
        os.unlink(filler)
        filler = fill_disk(small_fs)  # completely full: gc frees the orphan first
        gc = json.loads(cli(store, "store", "gc", check=True).stdout)
        assert gc["removedPacks"] == 1 and not os.path.exists(orphan)
        assert free_bytes(small_fs) >= 3 * MiB  # the 4 MiB orphan
    finally:
        os.unlink(filler)
    cli(store, "sig", "create", "-r", "g3", check=True)


def test_replication_to_a_full_region(small_fs, tmp_path):
    store = str(tmp_path / "store")
    gallery(store)
    west = os.path.join(small_fs, "west")
    Cli(store).json("region", "create", "west", "--path", west)
    big = make_random(str(tmp_path / "big.raw"), 48, seed=4)
    p = cli(store, "sig", "image-version", "create", *GALLERY, "-e", "1.0.0", "--os-vhd-uri", big,
            "--target-regions", "local", "west")
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    v = json.loads(cli(store, "sig", "image-version", "show", *GALLERY, "-e", "1.0.0",
                       "--expand", "ReplicationStatus", check=True).stdout)
    states = {s["region"]: s for s in v["properties"]["replicationStatus"]["summary"]}
    assert states["local"]["state"] == "Completed"
    assert states["west"]["state"] == "Failed" and "no space left" in states["west"]["details"]
    assert unpublished(west) == []
    cli(store, "store", "verify", "--region", "west", check=True)
    cli(store, "store", "verify", check=True)
    out = str(tmp_path / "out.raw")
    cli(store, "disk", "create", "-n", "d1", "--gallery-image-reference", v["id"], "--path", out,
        check=True)
    same(big, out)
    cli(store, "region", "gc", "west", check=True)
    small = make_random(str(tmp_path / "small.raw"), 3, seed=5)
    cli(store, "sig", "image-version", "create", *GALLERY, "-e", "1.0.1", "--os-vhd-uri", small,
        "--target-regions", "local", "west", check=True)


@pytest.mark.parametrize("fmt", ["raw", "qcow2", "vhdx"])
def test_disk_create_on_a_full_disk_names_the_users_path(small_fs, tmp_path, fmt):
    """Every disk writer (raw, the qcow2 writer, the VHDX writer) fails with exit 10 naming
    the user's path and leaves no temp file and no disk row."""
    store = str(tmp_path / "store")
    gallery(store)
    big = make_random(str(tmp_path / "big.raw"), 48, seed=6)
    v = json.loads(cli(store, "sig", "image-version", "create", *GALLERY, "-e", "1.0.0",
                       "--os-vhd-uri", big, check=True).stdout)
    target = os.path.join(small_fs, f"disk.{fmt}")
    p = cli(store, "disk", "create", "-n", "d1", "--gallery-image-reference", v["id"],
            "--path", target, "--format", fmt)
    err = one_line_error(p, FULL, f"{target}: no space left on device")
    assert ".imagestore-" not in err
    assert sorted(os.listdir(small_fs)) == ["lost+found"]  # no temp disk left
    one_line_error(cli(store, "disk", "show", "-n", "d1"), 4)
    cli(store, "store", "verify", check=True)


def test_gc_out_of_space_frees_dead_packs_first_and_cleans_its_copy(small_fs, tmp_path):
    store = os.path.join(small_fs, "store")
    run = Cli(store)
    dead = run.json("store", "ingest", make_random(str(tmp_path / "dead.raw"), 4, seed=7))
    c = make_random(str(tmp_path / "c.raw"), 16, seed=8)
    d_c = run.json("store", "ingest", c)["digest"]
    part = str(tmp_path / "part.raw")
    with open(c, "rb") as f, open(part, "wb") as g:
        g.write(f.read(10 * MiB))
    d_part = run.json("store", "ingest", part)["digest"]  # 10 of c's 16 MiB stay live
    local = os.path.join(store, "regions", "local")
    for d in (dead["digest"], d_c):
        os.unlink(os.path.join(local, "manifests", f"{d}.mf"))
    packs_before = set(os.listdir(os.path.join(local, "packs")))
    filler = fill_disk(small_fs)
    try:
        p = cli(store, "store", "gc")
        one_line_error(p, FULL, "no space left on device")
        after = set(os.listdir(os.path.join(local, "packs")))
        assert len(after) == len(packs_before) - 1 and after < packs_before  # dead one freed
        assert free_bytes(small_fs) >= 4 * MiB
        assert unpublished(local) == []
        cli(store, "store", "verify", check=True)
        out = str(tmp_path / "out.raw")
        cli(store, "store", "materialize", d_part, "--path", out, check=True)
        same(part, out)
    finally:
        os.unlink(filler)
    gc = json.loads(cli(store, "store", "gc", check=True).stdout)
    assert gc["rewrittenPacks"] == 1
    h = Home.open(store, create=False)
    h.close()


S2 = "22222222-2222-2222-2222-222222222222"
V2 = ["-g", "rg2", "-r", "g", "-i", "d"]


def test_a_new_tenants_first_capture_at_every_level_of_free_space(small_fs, tmp_path):
    """The first capture for a tenant other than the local one creates the store's dedup key
    (identity/dedup.key) and the tenant's dedup domain, then records its version: run out of
    space at each of these steps in turn (a disk filled to 0, 1, 2, ... KiB more each time,
    until the capture fits). Each failure is exit 10 in one line, publishes nothing (no key
    temp, no half key, no domain without its version, no pack), and the retry succeeds."""
    store = os.path.join(small_fs, "store")
    run = Cli(store)
    t2 = run.json("ad", "tenant", "create", "--display-name", "T2")["tenantId"]
    run.json("account", "create", "--tenant", t2, "--display-name", "dev", "--subscription-id", S2)
    run.json("group", "create", "-n", "rg2", "-l", "local", "--subscription", S2)
    run.json("sig", "create", "-g", "rg2", "-r", "g")
    run.json("sig", "image-definition", "create", *V2, "-p", "P", "-f", "O", "-s", "S",
             "--os-type", "Linux")
    src = make_random(str(tmp_path / "os.raw"), 1, seed=5)  # the source is not on small_fs
    local = os.path.join(store, "regions", "local")
    key = os.path.join(store, "identity", "dedup.key")
    db = os.path.join(store, "gallery.sqlite")
    failures: list[str] = []
    levels = [0, 1, 2, 3, 4, 6]
    while levels[-1] < 8192:
        levels.append(levels[-1] * 3 // 2)
    for leave_kib in levels:
        filler = fill_disk(small_fs, leave=leave_kib << 10)
        try:
            p = cli(store, "sig", "image-version", "create", *V2, "-e", "1.0.0",
                    "--os-vhd-uri", src)
        finally:
            os.unlink(filler)
        if p.returncode == 0:
            break
        failures.append(one_line_error(p, FULL, "no space left on device"))
        # nothing half made: the key is whole or absent, no temp beside it, no pack or
        # manifest, no version row; a domain row may stay only with a whole key (it is
        # reused: the same tenant's next capture is in the same domain)
        ident = os.path.join(store, "identity")
        names = os.listdir(ident) if os.path.isdir(ident) else []
        assert [n for n in names if n.startswith(".")] == [], names
        assert not os.path.exists(key) or os.path.getsize(key) == 32
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            made = con.execute("SELECT count(*) FROM dedup_domains").fetchone()[0]
        finally:
            con.close()
        assert made == 0 or os.path.getsize(key) == 32, made
        assert unpublished(local) == [], unpublished(local)
        assert os.listdir(os.path.join(local, "manifests")) == []
        one_line_error(cli(store, "sig", "image-version", "show", *V2, "-e", "1.0.0"), 4)
        assert json.loads(cli(store, "store", "verify", check=True).stdout)["clean"]
    else:
        pytest.fail("the capture never fitted")
    assert len(failures) >= 2, failures  # more than one step was run out of space
    assert os.path.getsize(key) == 32
    v = json.loads(cli(store, "sig", "image-version", "show", *V2, "-e", "1.0.0",
                       check=True).stdout)
    out = str(tmp_path / "out.raw")
    cli(store, "disk", "create", "-n", "d2", "-g", "rg2", "--gallery-image-reference", v["id"],
        "--path", out, check=True)
    same(src, out)
    assert json.loads(cli(store, "store", "verify", check=True).stdout)["clean"]


def test_a_pack_record_is_never_torn_by_a_full_disk(small_fs):
    """The kernel reports ENOSPC only for a write that wrote nothing; one the disk fills
    part-way through returns short. The pack writer finishes it or fails: it never counts a
    torn record as written (the index would point at data that is not there: found by the
    test above, a capture on ~470 KiB free then failed `store verify` with bad chunks)."""
    packs = os.path.join(small_fs, "packs")
    os.mkdir(packs)
    filler = fill_disk(small_fs, leave=100 << 10)
    try:
        w = PackWriter(packs)
        try:
            small = w.append(b"\x01" * 16, 4096, os.urandom(4096), 0)  # fits
            assert small == 0 and w.size == 32 + 4096
            with pytest.raises(IOFailure, match="no space left on device") as e:
                w.append(b"\x02" * 16, 256 << 10, os.urandom(256 << 10), 0)
            assert w.path in str(e.value)
            assert w.size == 32 + 4096  # the torn record is not counted
        finally:
            w.close()
    finally:
        os.unlink(filler)
