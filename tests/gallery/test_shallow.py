"""Shallow replication: the version references its source file (ready at once, even for a
32 TiB sparse VHDX, the store does not grow); every use checks the source is unchanged; the
concurrent disk creations are limited and the error says why; replicationMode cannot change;
a shallow version stays in its source region."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import time

import pytest

from imagestore.gallery.shallow import slot_path
from tests.helpers import dir_bytes, fails, gallery_db, need

INVALID, NOT_FOUND, CONFLICT, INTEGRITY = 3, 4, 5, 7
MiB = 1 << 20


@pytest.fixture
def gal(run, tmp_path, monkeypatch):
    monkeypatch.setenv("IMAGESTORE_AUTOSTART_WORKER", "0")
    run.tmp = tmp_path
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "d", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    src = tmp_path / "src.raw"
    with open(src, "wb") as f:
        f.truncate(6 * MiB)
        f.seek(MiB + 3)
        f.write(os.urandom(300_000))
        f.seek(5 * MiB)
        f.write(b"\x5a" * 8192)
    run.src = str(src)
    return run


def shallow(run, v, src, *extra):
    return run("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", v,
               "--os-vhd-uri", src, "--replication-mode", "Shallow", *extra)


def disk(run, name, ref="g/d/1.0.0", fmt="raw"):
    out = str(run.tmp / f"{name}.{fmt}")
    return run("disk", "create", "-n", name, "--gallery-image-reference", ref, "--path", out,
               "--format", fmt), out


def version_pk(run, v="1.0.0") -> int:
    with gallery_db(run.store) as con:
        return con.execute("SELECT id FROM versions WHERE name = ?", (v,)).fetchone()[0]


def test_ready_at_once_without_copying_32tib(gal):
    run = gal
    qimg, qio = need("qemu-img"), need("qemu-io")
    big = str(run.tmp / "big.vhdx")
    subprocess.run([qimg, "create", "-q", "-f", "vhdx", big, "32T"], check=True)
    subprocess.run([qio, "-c", "write -P 0xab 0 1M", "-c", "write -P 0xcd 20T 2M", big],
                   check=True, capture_output=True)
    run.json("store", "stats")
    before = dir_bytes(os.path.join(run.store, "regions"))
    t0 = time.monotonic()
    r = shallow(run, "1.0.0", big)
    assert r.exit_code == 0, r.stderr
    # not a speed goal (benchmarks/): a guard that 32 TiB are not walked (hours if they were)
    assert time.monotonic() - t0 < 120
    v = json.loads(r.stdout)
    p = v["properties"]
    assert p["provisioningState"] == "Succeeded"
    assert p["publishingProfile"]["replicationMode"] == "Shallow"
    assert p["storageProfile"]["osDiskImage"]["sizeInGB"] == 32 * 1024
    local = p["localStorage"]["osDiskImage"]
    assert local["manifestDigest"] is None and local["storedBytes"] == 0
    assert local["shallowSource"]["path"] == os.path.realpath(big)
    assert set(local["shallowSource"]["fingerprint"]) == {
        "size", "mtimeNs", "inode", "device", "head", "tail"}
    st = run.json("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.0",
                  "--expand", "ReplicationStatus")["properties"]["replicationStatus"]
    assert st == {"aggregatedState": "Completed",
                  "summary": [{"region": "local", "state": "Completed", "progress": 100,
                               "details": ""}]}
    assert dir_bytes(os.path.join(run.store, "regions")) == before  # nothing copied
    assert os.listdir(os.path.join(run.store, "regions", "local", "manifests")) == []
    # a disk streamed from the source: only the allocated blocks are read and written
    r, out = disk(run, "bigdisk", "g/d", "vhdx")
    assert r.exit_code == 0, r.stderr
    d = json.loads(r.stdout)["properties"]
    assert d["diskSizeGB"] == 32 * 1024 and d["localStorage"]["writtenBytes"] == 3 * MiB
    assert time.monotonic() - t0 < 240
    subprocess.run([qimg, "check", "-q", "-f", "vhdx", out], check=True)
    q = subprocess.run([qio, "-r", "-f", "vhdx", "-c", "read -P 0xab 0 1M", "-c",
                        "read -P 0 1M 1M", "-c", "read -P 0xcd 20T 2M", out],
                       capture_output=True, text=True)
    assert q.returncode == 0 and "Pattern verification failed" not in q.stdout + q.stderr


def test_disk_bytes_and_changed_or_missing_source(gal):
    run = gal
    assert shallow(run, "1.0.0", run.src, "--no-wait").exit_code == 0  # instant either way
    assert run.json("sig", "image-version", "show", "-r", "g", "-i", "d", "-e", "1.0.0")[
        "properties"]["provisioningState"] == "Succeeded"
    r, out = disk(run, "a")
    assert r.exit_code == 0, r.stderr
    assert open(out, "rb").read() == open(run.src, "rb").read()
    # change a byte in the first MiB and put the modification time back: still detected
    st = os.stat(run.src)
    with open(run.src, "r+b") as f:
        f.seek(4096)
        f.write(b"\x01")
    os.utime(run.src, ns=(st.st_atime_ns, st.st_mtime_ns))
    r, out = disk(run, "b")
    fails(r, INTEGRITY, run.src, "shallow source of image version 'g/d/1.0.0' changed",
          "first MiB")
    assert not os.path.exists(out)
    # a plain rewrite changes mtime; a replaced file changes the inode
    with open(run.src, "r+b") as f:
        f.seek(4096)
        f.write(b"\x00")
    fails(disk(run, "c")[0], INTEGRITY, run.src, "modification time")
    os.rename(run.src, run.src + ".moved")
    fails(disk(run, "d")[0], NOT_FOUND, run.src, "is missing")
    assert [x["name"] for x in run.json("disk", "list")] == ["a"]


def test_concurrency_limit(gal, monkeypatch):
    run = gal
    assert shallow(run, "1.0.0", run.src).exit_code == 0
    path = slot_path(run.store, f"v{version_pk(run)}", 0)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another disk creation in progress
        r, out = disk(run, "busy")
        fails(r, CONFLICT, "image version 'g/d/1.0.0' uses shallow replication",
              "limit 1", "can't deploy many VMs at once")
        assert not os.path.exists(out)
        monkeypatch.setenv("IMAGESTORE_SHALLOW_MAX_DEPLOYS", "2")
        r, out = disk(run, "second")  # a second slot
        assert r.exit_code == 0, r.stderr
        monkeypatch.setenv("IMAGESTORE_SHALLOW_MAX_DEPLOYS", "0")
        fails(disk(run, "bad")[0], INVALID, "IMAGESTORE_SHALLOW_MAX_DEPLOYS")
        monkeypatch.delenv("IMAGESTORE_SHALLOW_MAX_DEPLOYS")
    finally:
        os.close(fd)
    r, out = disk(run, "free")  # the slot is free again
    assert r.exit_code == 0, r.stderr
    assert open(out, "rb").read() == open(run.src, "rb").read()


def test_mode_cannot_change_and_stays_in_source_region(gal):
    run = gal
    run.json("region", "create", "west", "--path", str(run.tmp / "w"))
    fails(shallow(run, "1.0.0", run.src, "--target-regions", "local", "west"), INVALID,
          "a Shallow version lives in its source region 'local' only", "west")
    assert shallow(run, "1.0.0", run.src).exit_code == 0
    upd = ["sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "1.0.0"]
    fails(run(*upd, "--set", "properties.publishingProfile.replicationMode=Full"), CONFLICT,
          "Changing property 'properties.publishingProfile.replicationMode' is not allowed")
    fails(run(*upd, "--target-regions", "local", "west"), INVALID, "Shallow", "west")
    u = run.json(*upd, "--exclude-from-latest", "true")  # other fields still change
    assert u["properties"]["publishingProfile"]["replicationMode"] == "Shallow"
    # a Full version is not turned Shallow either
    assert run("sig", "image-version", "create", "-r", "g", "-i", "d", "-e", "2.0.0",
               "--os-vhd-uri", run.src).exit_code == 0
    fails(run("sig", "image-version", "update", "-r", "g", "-i", "d", "-e", "2.0.0", "--set",
              "properties.publishingProfile.replicationMode=Shallow"), CONFLICT,
          "'properties.publishingProfile.replicationMode' is not allowed")
    run("sig", "image-version", "delete", "-r", "g", "-i", "d", "-e", "1.0.0")
    assert os.path.exists(run.src)  # deleting a shallow version never touches its source
