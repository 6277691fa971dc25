"""Snapshots (``imagestore snapshot …``, Microsoft.Compute/snapshots): a point-in-time copy of
a disk's bytes in the store, deduplicated; disks copied from snapshots and from other disks
(``disk create --source``); what deleting a source, a version or the snapshot itself does to
the data; refusals that change nothing.

Disk content is written by ``qemu-io`` into the disk file the way a VM would change it, and
checked with ``cmp`` / ``qemu-img compare``.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.helpers import fails, need, store_tree_snapshot

MiB = 1 << 20
SUB = "/subscriptions/00000000-0000-0000-0000-000000000000"
RG_PREFIX = f"{SUB}/resourceGroups/default/providers/Microsoft.Compute"


def qemu_io(path: str, cmd: str, fmt: str = "raw") -> None:
    subprocess.run([need("qemu-io"), "-f", fmt, "-c", cmd, path], check=True,
                   capture_output=True)


def same(a: str, b: str) -> bool:
    return subprocess.run([need("qemu-img"), "compare", a, b], capture_output=True).returncode == 0


@pytest.fixture
def disk(run, tmp_path):
    """A version with a 16 MiB OS disk of distinct data, and disk 'd1' created from it."""
    src = tmp_path / "os.raw"
    with open(src, "wb") as f:
        f.truncate(16 * MiB)
        for off in (0, 3 * MiB, 9 * MiB):
            f.seek(off)
            f.write(os.urandom(MiB))
    run.json("sig", "create", "-r", "g")
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "lin", "-p", "P", "-f", "O",
             "-s", "S", "--os-type", "Linux")
    run.json("sig", "image-version", "create", "-r", "g", "-i", "lin", "-e", "1.0.0",
             "--os-vhd-uri", str(src))
    d = run.json("disk", "create", "-n", "d1", "--gallery-image-reference", "g/lin/1.0.0")
    return str(src), d["properties"]["localStorage"]["path"]


def stats(run) -> dict:
    return run.json("store", "stats")


def test_snapshot_of_an_unchanged_disk_adds_no_chunks(run, disk):
    src, _path = disk
    before = stats(run)
    s = run.json("snapshot", "create", "-n", "s1", "--source", "d1")
    after = stats(run)
    assert (after["chunks"], after["packBytes"], after["storedBytes"]) == (
        before["chunks"], before["packBytes"], before["storedBytes"])
    assert after["manifests"] == before["manifests"]  # the version's manifest, shared
    p = s["properties"]
    assert p["localStorage"]["storedBytes"] == 0
    v = run.json("sig", "image-version", "show", "-r", "g", "-i", "lin", "-e", "1.0.0")
    assert p["localStorage"]["manifestDigest"] == \
        v["properties"]["localStorage"]["osDiskImage"]["manifestDigest"]
    disk_json = run.json("disk", "show", "-n", "d1")
    assert s["type"] == "Microsoft.Compute/snapshots"
    assert s["id"] == f"{RG_PREFIX}/snapshots/s1"
    assert p["creationData"] == {"createOption": "Copy",
                                 "sourceResourceId": f"{RG_PREFIX}/disks/d1",
                                 "sourceUniqueId": disk_json["properties"]["uniqueId"]}
    assert (p["diskSizeGB"], p["diskSizeBytes"]) == (1, 16 * MiB)
    assert (p["osType"], p["hyperVGeneration"]) == ("Linux", "V1")
    assert p["incremental"] is False and "incrementalSnapshotFamilyId" not in p
    assert p["provisioningState"] == "Succeeded"
    assert s["sku"] == {"name": "Standard_LRS", "tier": "Standard"}
    assert run.json("snapshot", "show", "-n", "s1") == s


def test_a_changed_disk_is_captured_as_it_is_now(run, disk, tmp_path):
    src, path = disk
    s1 = run.json("snapshot", "create", "-n", "s1", "--source", "d1")
    qemu_io(path, "write -P 0x5a 0 64k")  # what a VM running on the disk would do
    before = stats(run)
    s2 = run.json("snapshot", "create", "-n", "s2", "--source", "d1", "--incremental")
    after = stats(run)
    d1, d2 = (s["properties"]["localStorage"]["manifestDigest"] for s in (s1, s2))
    assert d1 != d2
    assert after["chunks"] == before["chunks"] + 1  # one 256 KiB chunk changed
    assert 0 < s2["properties"]["localStorage"]["storedBytes"] <= 256 * 1024 + 64
    assert s2["properties"]["incremental"] is True
    fam = s2["properties"]["incrementalSnapshotFamilyId"]
    s3 = run.json("snapshot", "create", "-n", "s3", "--source", "d1", "--incremental")
    assert s3["properties"]["incrementalSnapshotFamilyId"] == fam  # same disk, same family
    # each snapshot gives back its own moment
    a = run.json("disk", "create", "-n", "from-s1", "--source", "s1")
    b = run.json("disk", "create", "-n", "from-s2", "--source", s2["id"], "--format", "vhdx")
    assert subprocess.run(["cmp", src, a["properties"]["localStorage"]["path"]]).returncode == 0
    assert same(path, b["properties"]["localStorage"]["path"])
    assert not same(src, b["properties"]["localStorage"]["path"])
    cd = b["properties"]["creationData"]
    assert cd == {"createOption": "Copy", "sourceResourceId": s2["id"],
                  "sourceUniqueId": s2["properties"]["uniqueId"]}
    assert b["properties"]["osType"] == "Linux"


def test_disk_copied_from_a_disk(run, disk):
    _src, path = disk
    qemu_io(path, "write -P 0x11 5M 1M")
    before = stats(run)
    c = run.json("disk", "create", "-n", "copy", "--source", "d1", "--format", "vhdx")
    assert stats(run)["chunks"] == before["chunks"]  # a disk copy does not go through the store
    out = c["properties"]["localStorage"]["path"]
    assert same(path, out)
    assert c["properties"]["creationData"]["sourceResourceId"] == f"{RG_PREFIX}/disks/d1"
    subprocess.run([need("qemu-img"), "check", out], check=True, capture_output=True)


def test_the_snapshot_outlives_its_disk_and_the_version(run, disk):
    src, path = disk
    run.json("snapshot", "create", "-n", "s1", "--source", "d1")
    r = run("disk", "delete", "-n", "d1", "--delete-file")
    assert r.exit_code == 0 and not os.path.exists(path)
    r = run("sig", "image-version", "delete", "-r", "g", "-i", "lin", "-e", "1.0.0")
    assert r.exit_code == 0, r.stderr
    run.json("store", "gc")
    assert stats(run)["manifests"] == 1  # the snapshot keeps the shared manifest
    run.json("store", "verify")
    d = run.json("disk", "create", "-n", "back", "--source", "s1")
    assert subprocess.run(["cmp", src, d["properties"]["localStorage"]["path"]]).returncode == 0


def test_deleting_the_snapshot_frees_what_only_it_used(run, disk):
    _src, path = disk
    qemu_io(path, "write -P 0x77 12M 1M")  # 4 chunks nothing else has
    before = stats(run)
    run.json("snapshot", "create", "-n", "s1", "--source", "d1")
    mid = stats(run)
    assert (mid["chunks"], mid["manifests"]) == (before["chunks"] + 1, before["manifests"] + 1)
    r = run("snapshot", "delete", "--ids", f"{RG_PREFIX}/snapshots/s1")
    assert r.exit_code == 0, r.stderr
    assert run.json("snapshot", "list") == []
    gc = run.json("store", "gc")
    assert gc["removedChunks"] == 1
    after = stats(run)
    assert (after["chunks"], after["manifests"]) == (before["chunks"], before["manifests"])


def test_snapshot_of_a_snapshot_shares_its_bytes(run, disk):
    run.json("snapshot", "create", "-n", "s1", "--source", "d1")
    before = stats(run)
    s = run.json("snapshot", "create", "-n", "s1b", "--source", f"{RG_PREFIX}/snapshots/s1")
    assert stats(run) == before
    assert s["properties"]["creationData"]["sourceResourceId"] == f"{RG_PREFIX}/snapshots/s1"
    # the name resolves to a snapshot before a disk, as az does
    run.json("disk", "create", "-n", "s1", "--source", "d1")
    s2 = run.json("snapshot", "create", "-n", "s1c", "--source", "s1")
    assert s2["properties"]["creationData"]["sourceResourceId"].endswith("/snapshots/s1")
    shown = run.json("snapshot", "list", "--query", "[].name")
    assert shown == ["s1", "s1b", "s1c"]


def test_snapshot_in_another_region(run, disk, tmp_path):
    run.json("region", "create", "west", "--path", str(tmp_path / "west"))
    run.json("sig", "image-version", "update", "-r", "g", "-i", "lin", "-e", "1.0.0",
             "--target-regions", "local", "west")
    run.json("disk", "create", "-n", "dw", "--gallery-image-reference", "g/lin/1.0.0",
             "-l", "west")
    s = run.json("snapshot", "create", "-n", "sw", "--source", "dw")
    assert s["location"] == "west"
    fails(run("snapshot", "create", "-n", "sx", "--source", "dw", "-l", "local"), 3,
          "--location: a snapshot is kept in the region of its source")
    run.json("sig", "image-version", "update", "-r", "g", "-i", "lin", "-e", "1.0.0",
             "--target-regions", "local", "--allow-replicated-location-deletion")
    d = run.json("disk", "create", "-n", "dw2", "--source", "sw")  # west still has the data
    assert d["location"] == "west"
    assert same(d["properties"]["localStorage"]["path"], disk[0])


HOSTILE = [
    (["--source", "nosuch"], 4, "--source: snapshot or disk 'nosuch' not found"),
    (["--source", f"{RG_PREFIX}/disks/nosuch"], 4, "--source: disk 'nosuch' not found"),
    (["--source", f"{RG_PREFIX}/galleries/g/images/lin/versions/1.0.0"], 3,
     "is a Microsoft.Compute/galleries/images/versions id, not a snapshot or disk id"),
    (["--source", f"{RG_PREFIX}/images/x"], 3, "images id, not a snapshot or disk id"),
    (["--source", "/subscriptions/1/resourceGroups/default/providers/Microsoft.Compute/disks/d1"],
     4, "subscription '1' not found"),
    (["--source", "/subscriptions/x/disks"], 3, "is not a valid snapshot or disk id"),
    (["--source", "d1", "--sku", "Ultra"], 3, "--sku: "),
    (["--source", "d1", "--incremental", "maybe"], 3, "--incremental"),
    (["--source", "d1", "-l", "nowhere"], 4, "region 'nowhere' not found"),
]


def test_hostile_snapshot_requests_change_nothing(run, disk):
    before = store_tree_snapshot(run.store)
    for args, code, needle in HOSTILE:
        fails(run("snapshot", "create", "-n", "bad", *args), code, needle)
        assert store_tree_snapshot(run.store) == before, args


def test_refusals_about_names_and_files(run, disk):
    _src, path = disk
    run.json("snapshot", "create", "-n", "s1", "--source", "d1")
    before = store_tree_snapshot(run.store)
    fails(run("snapshot", "create", "-n", "s1", "--source", "d1"), 5,
          "snapshot 's1' already exists")
    fails(run("snapshot", "create", "-n", "-bad", "--source", "d1"), 3, "not a valid")
    fails(run("snapshot", "show", "-n", "nope"), 4, "snapshot 'nope' not found")
    fails(run("snapshot", "delete", "-n", "nope"), 4, "snapshot 'nope' not found")
    fails(run("disk", "create", "-n", "x", "--source", "nope"), 4,
          "--source: snapshot or disk 'nope' not found")
    fails(run("disk", "create", "-n", "d1", "--source", "s1"), 5, "disk 'd1' already exists")
    assert store_tree_snapshot(run.store) == before
    os.unlink(path)  # removed behind imagestore's back
    fails(run("snapshot", "create", "-n", "s2", "--source", "d1"), 4,
          f"--source: disk 'd1': its file {path} does not exist")
    fails(run("disk", "create", "-n", "x", "--source", "d1"), 4, "does not exist")
    r = run("disk", "create", "-n", "x")
    assert r.exit_code == 2 and "--gallery-image-reference or --source" in r.stderr


def test_store_verify_names_the_snapshot_a_damage_affects(run, disk):
    _src, path = disk
    qemu_io(path, "write -P 0x33 14M 256k")  # a chunk only the snapshot has
    s = run.json("snapshot", "create", "-n", "s1", "--source", "d1")
    digest = s["properties"]["localStorage"]["manifestDigest"]
    mf = os.path.join(run.store, "regions", "local", "manifests", f"{digest}.mf")
    data = bytearray(open(mf, "rb").read())
    data[-3] ^= 0xFF
    with open(mf, "wb") as f:
        f.write(data)
    r = run("store", "verify")
    fails(r, 7, "affected snapshots and images: snapshot default/s1 in local", digest)
    rep = json.loads(r.stdout)
    assert rep["affectedResources"] == [{
        "id": s["id"], "type": "Microsoft.Compute/snapshots", "resourceGroup": "default",
        "name": "s1", "manifest": digest, "region": "local", "copies": [0]}]
    assert rep["affectedVersions"] == []  # the version's own manifest is intact


def test_a_region_holding_a_snapshot_is_not_deleted(run, disk, tmp_path):
    run.json("region", "create", "west", "--path", str(tmp_path / "west"))
    run.json("sig", "image-version", "update", "-r", "g", "-i", "lin", "-e", "1.0.0",
             "--target-regions", "local", "west")
    run.json("disk", "create", "-n", "dw", "--gallery-image-reference", "g/lin/1.0.0",
             "-l", "west")
    s = run.json("snapshot", "create", "-n", "sw", "--source", "dw")
    run.json("sig", "image-version", "update", "-r", "g", "-i", "lin", "-e", "1.0.0",
             "--target-regions", "local", "--allow-replicated-location-deletion")
    fails(run("region", "delete", "west", "--delete-data"), 5,
          f"region 'west' holds the only completed copy of {s['id']}")
    assert run("snapshot", "delete", "-n", "sw").exit_code == 0
    assert run.json("region", "delete", "west")["deleted"] is True


@pytest.mark.parametrize("fmt", ["vhdx", "vhd-fixed"])
def test_snapshot_of_a_disk_in_another_format_is_the_same_content(run, disk, fmt):
    run.json("disk", "create", "-n", "dx", "--gallery-image-reference", "g/lin/1.0.0",
             "--format", fmt)
    before = stats(run)
    s = run.json("snapshot", "create", "-n", "sx", "--source", "dx")
    assert stats(run)["chunks"] == before["chunks"]
    v = run.json("sig", "image-version", "show", "-r", "g", "-i", "lin", "-e", "1.0.0")
    vd = v["properties"]["localStorage"]["osDiskImage"]
    local = s["properties"]["localStorage"]
    assert local["sourceFormat"].startswith("vhd")
    if fmt == "vhdx":  # same virtual size: the very same manifest
        assert local["manifestDigest"] == vd["manifestDigest"]
    back = run.json("disk", "create", "-n", "back", "--source", "sx")
    assert same(disk[0], back["properties"]["localStorage"]["path"])


def test_snapshot_of_a_linked_disk(run, disk):
    """A linked clone (an overlay over the store's shared parent) changed by its VM: the
    snapshot reads through the overlay into the parent and captures only the change. (qemu-io
    cannot write a differencing VHDX: that one is snapshotted unchanged.)"""
    d = run.json("disk", "create", "-n", "lk", "--gallery-image-reference", "g/lin/1.0.0",
                 "--format", "qcow2", "--linked")
    path = d["properties"]["localStorage"]["path"]
    qemu_io(path, "write -P 0x3c 2M 256k", fmt="qcow2")
    before = stats(run)
    s = run.json("snapshot", "create", "-n", "sl", "--source", "lk")
    assert stats(run)["chunks"] == before["chunks"] + 1
    back = run.json("disk", "create", "-n", "back", "--source", "sl")
    assert same(path, back["properties"]["localStorage"]["path"])
    copy = run.json("disk", "create", "-n", "copy", "--source", "lk", "--format", "vhdx")
    assert same(path, copy["properties"]["localStorage"]["path"])
    assert s["properties"]["creationData"]["sourceResourceId"].endswith("/disks/lk")
    run.json("disk", "create", "-n", "lkx", "--gallery-image-reference", "g/lin/1.0.0",
             "--format", "vhdx", "--linked")
    sx = run.json("snapshot", "create", "-n", "slx", "--source", "lkx")
    assert sx["properties"]["localStorage"]["storedBytes"] == 0
    assert same(disk[0], run.json("disk", "create", "-n", "backx", "--source", "slx")[
        "properties"]["localStorage"]["path"])


def test_import_a_disk_image_file_as_a_snapshot(run, disk, tmp_path):
    src, _path = disk
    vhdx = str(tmp_path / "img.vhdx")
    subprocess.run([need("qemu-img"), "convert", "-O", "vhdx", src, vhdx], check=True)
    before = stats(run)
    s = run.json("snapshot", "create", "-n", "imp", "--source", f"file://{vhdx}",
                 "--os-type", "windows", "--hyper-v-generation", "V2")
    assert stats(run)["chunks"] == before["chunks"]  # the version's bytes, deduplicated
    p = s["properties"]
    assert p["creationData"] == {"createOption": "Import", "sourceUri": f"file://{vhdx}"}
    assert (p["osType"], p["hyperVGeneration"]) == ("Windows", "V2")
    assert p["localStorage"]["sourceFormat"].startswith("vhdx")
    assert same(src, run.json("disk", "create", "-n", "imp-d", "--source", "imp")[
        "properties"]["localStorage"]["path"])
    # it feeds a V2 Windows definition
    run.json("sig", "image-definition", "create", "-r", "g", "-i", "w2", "-p", "P", "-f", "O",
             "-s", "W2", "--os-type", "Windows", "--hyper-v-generation", "V2")
    run.json("sig", "image-version", "create", "-r", "g", "-i", "w2", "-e", "1.0.0",
             "--os-snapshot", "imp")
    before = store_tree_snapshot(run.store)
    fails(run("snapshot", "create", "-n", "x", "--source", "https://acct.blob.core.windows.net/c/x.vhd"),
          3, "--source: 'https://acct.blob.core.windows.net/c/x.vhd': only file:// URIs")
    fails(run("snapshot", "create", "-n", "x", "--source", f"file://{tmp_path}/none.vhd"), 4,
          "no such file")
    fails(run("snapshot", "create", "-n", "x", "--source", "d1", "--os-type", "BeOS"), 3,
          "--os-type: 'BeOS'")
    text = tmp_path / "notes.txt"
    text.write_text("hello\nworld\n")
    fails(run("snapshot", "create", "-n", "x", "--source", f"file://{text}"), 6)
    assert store_tree_snapshot(run.store) == before
