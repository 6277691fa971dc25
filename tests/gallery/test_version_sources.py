"""Image versions from snapshots (``--os-snapshot``, ``--data-snapshots`` at
``--data-snapshot-luns``) and from managed images (``--managed-image``), beside disk files:
the bytes that come back out, what the version records as its source, the rules Azure applies
(one OS source, Generalized only for a managed image, OS type and Hyper-V generation as the
definition's) with Azure's messages, and hostile requests that change nothing.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from imagestore.errors import Conflict, InvalidArgument
from imagestore.gallery import GalleryService
from imagestore.home import Home
from tests.helpers import fails, need, store_tree_snapshot

MiB = 1 << 20
RG = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/default/providers/Microsoft.Compute"
CREATE = ["sig", "image-version", "create", "-r", "g"]


def qemu_io(path: str, cmd: str) -> None:
    subprocess.run([need("qemu-io"), "-f", "raw", "-c", cmd, path], check=True,
                   capture_output=True)


def same(a: str, b: str) -> bool:
    return subprocess.run(["cmp", a, b], capture_output=True).returncode == 0


def _raw(path, size: int, offsets: tuple[int, ...]) -> str:
    with open(path, "wb") as f:
        f.truncate(size)
        for off in offsets:
            f.seek(off)
            f.write(os.urandom(MiB))
    return str(path)


def path_of(d: dict) -> str:
    return d["properties"]["localStorage"]["path"]


@pytest.fixture
def world(run, tmp_path):
    """Definitions lin (Generalized V1), spec (Specialized), v2 (V2), win (Windows); version
    lin/1.0.0 with an OS disk and a data disk at LUN 0; disks os1 and data1 made from it."""
    osf = _raw(tmp_path / "os.raw", 12 * MiB, (0, 5 * MiB))
    dataf = _raw(tmp_path / "data.raw", 6 * MiB, (MiB,))
    run.json("sig", "create", "-r", "g")
    for name, extra in [("lin", []), ("spec", ["--os-state", "Specialized"]),
                        ("v2", ["--hyper-v-generation", "V2"]), ("win", ["--os-type", "Windows"])]:
        os_type = [] if "--os-type" in extra else ["--os-type", "Linux"]
        run.json("sig", "image-definition", "create", "-r", "g", "-i", name, "-p", "P", "-f", "O",
                 "-s", name, *os_type, *extra)
    run.json(*CREATE, "-i", "lin", "-e", "1.0.0", "--os-vhd-uri", osf, "--data-vhds-uris", dataf)
    os1 = run.json("disk", "create", "-n", "os1", "--gallery-image-reference", "g/lin/1.0.0")
    data1 = run.json("disk", "create", "-n", "data1", "--gallery-image-reference", "g/lin/1.0.0",
                     "--gallery-image-reference-lun", "0")
    return {"os": osf, "data": dataf, "os1": path_of(os1), "data1": path_of(data1)}


def test_disk_snapshot_version_disk_gives_the_same_bytes(run, world):
    qemu_io(world["os1"], "write -P 0x5a 0 64k")  # the VM changed its disk
    s = run.json("snapshot", "create", "-n", "snap", "--source", "os1")
    chunks = run.json("store", "stats")["chunks"]
    v = run.json(*CREATE, "-i", "lin", "-e", "2.0.0", "--os-snapshot", "snap")
    assert run.json("store", "stats")["chunks"] == chunks  # nothing read, nothing written
    sp = v["properties"]["storageProfile"]
    assert sp["osDiskImage"]["source"] == {"id": s["id"]}
    assert "source" not in sp and "dataDiskImages" not in sp
    assert v["properties"]["provisioningState"] == "Succeeded"
    local = v["properties"]["localStorage"]["osDiskImage"]
    assert local["manifestDigest"] == s["properties"]["localStorage"]["manifestDigest"]
    assert local["storedBytes"] == 0
    d = run.json("disk", "create", "-n", "back", "--gallery-image-reference", "g/lin/2.0.0")
    assert same(world["os1"], path_of(d))
    assert not same(world["os"], path_of(d))
    vx = run.json("disk", "create", "-n", "backx", "--gallery-image-reference", "g/lin/2.0.0",
                  "--format", "vhdx")
    r = subprocess.run([need("qemu-img"), "compare", world["os1"], path_of(vx)],
                       capture_output=True)
    assert r.returncode == 0, r.stdout
    # the snapshot goes, the version keeps the bytes; the version goes, gc frees them
    assert run("snapshot", "delete", "-n", "snap").exit_code == 0
    run.json("store", "gc")
    d2 = run.json("disk", "create", "-n", "again", "--gallery-image-reference", "g/lin/2.0.0")
    assert same(world["os1"], path_of(d2))
    assert run("sig", "image-version", "delete", "-r", "g", "-i", "lin", "-e", "2.0.0").exit_code == 0
    assert run.json("store", "gc")["removedChunks"] == 1  # the chunk qemu-io changed
    run.json("store", "verify")


def test_data_snapshots_at_luns_beside_a_disk_file(run, world, tmp_path):
    a = run.json("snapshot", "create", "-n", "sa", "--source", "data1")
    qemu_io(world["data1"], "write -P 0x21 0 128k")
    b = run.json("snapshot", "create", "-n", "sb", "--source", f"{RG}/disks/data1")
    extra = _raw(tmp_path / "extra.raw", 2 * MiB, (0,))
    v = run.json(*CREATE, "-i", "lin", "-e", "3.0.0", "--os-vhd-uri", world["os"],
                 "--data-vhds-uris", extra, "--data-vhds-luns", "1",
                 "--data-snapshots", "sa", b["id"], "--data-snapshot-luns", "2", "5")
    data = v["properties"]["storageProfile"]["dataDiskImages"]
    assert [(x["lun"], x["source"]) for x in data] == [
        (1, {"uri": f"file://{extra}"}), (2, {"id": a["id"]}), (5, {"id": b["id"]})]
    for lun, want in ((1, extra), (2, world["data"]), (5, world["data1"])):
        d = run.json("disk", "create", "-n", f"l{lun}", "--gallery-image-reference",
                     "g/lin/3.0.0", "--gallery-image-reference-lun", str(lun))
        assert same(want, path_of(d)), lun
    assert same(world["os"], path_of(run.json(
        "disk", "create", "-n", "l-os", "--gallery-image-reference", "g/lin/3.0.0")))


def test_no_wait_captures_the_files_and_keeps_the_snapshots(run, world):
    run.json("snapshot", "create", "-n", "sa", "--source", "data1")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IMAGESTORE_AUTOSTART_WORKER", "0")
        r = run(*CREATE, "-i", "lin", "-e", "4.0.0", "--os-vhd-uri", world["os"],
                "--data-snapshots", "sa", "--data-snapshot-luns", "7", "--no-wait")
        assert r.exit_code == 0, r.stderr
        q = run.json("sig", "image-version", "show", "-r", "g", "-i", "lin", "-e", "4.0.0")
        sp = q["properties"]["storageProfile"]
        assert q["properties"]["provisioningState"] == "Creating"
        assert sp["osDiskImage"]["source"]["uri"].endswith("/os.raw")  # the request, echoed
        assert sp["dataDiskImages"][0]["source"]["id"].endswith("/snapshots/sa")
        assert run.json("worker", "--once")["ran"] == 1
    v = run.json("sig", "image-version", "show", "-r", "g", "-i", "lin", "-e", "4.0.0")
    assert v["properties"]["provisioningState"] == "Succeeded"
    assert "sizeInGB" in v["properties"]["storageProfile"]["osDiskImage"]
    for lun, want in ((None, world["os"]), (7, world["data"])):
        args = [] if lun is None else ["--gallery-image-reference-lun", str(lun)]
        d = run.json("disk", "create", "-n", f"n{lun}", "--gallery-image-reference",
                     "g/lin/4.0.0", *args)
        assert same(want, path_of(d))


def test_managed_image_into_a_generalized_definition(run, world):
    img = run.json("image", "create", "-n", "im", "--source", "os1", "--data-disk-sources",
                   "data1", "--os-type", "Linux")
    v = run.json(*CREATE, "-i", "lin", "-e", "5.0.0", "--managed-image", "im")
    sp = v["properties"]["storageProfile"]
    assert sp["source"] == {"id": img["id"]}
    assert "source" not in sp["osDiskImage"]
    assert [x["lun"] for x in sp["dataDiskImages"]] == [0]
    assert same(world["os"], path_of(run.json(
        "disk", "create", "-n", "m-os", "--gallery-image-reference", "g/lin/5.0.0")))
    assert same(world["data"], path_of(run.json(
        "disk", "create", "-n", "m-d", "--gallery-image-reference", "g/lin/5.0.0",
        "--gallery-image-reference-lun", "0")))
    # by full id too; the image may go, the version keeps its data
    run.json(*CREATE, "-i", "lin", "-e", "5.0.1", "--managed-image", img["id"])
    assert run("image", "delete", "-n", "im").exit_code == 0
    run.json("store", "gc")
    run.json("store", "verify")
    assert same(world["os"], path_of(run.json(
        "disk", "create", "-n", "m-os2", "--gallery-image-reference", "g/lin/5.0.1")))


def test_azure_refuses_what_does_not_fit_the_definition(run, world):
    img = run.json("image", "create", "-n", "im", "--source", "os1", "--os-type", "Linux")
    win = run.json("image", "create", "-n", "winimg", "--source", "os1", "--os-type", "Windows")
    snap = run.json("snapshot", "create", "-n", "s1", "--source", "os1")
    before = store_tree_snapshot(run.store)
    fails(run(*CREATE, "-i", "spec", "-e", "1.0.0", "--managed-image", "im"), 3,
          f"error: The resource with id '{img['id']}' has a different OS state "
          f"['Generalized'] than the parent gallery image OS state ['Specialized'].")
    fails(run(*CREATE, "-i", "v2", "-e", "1.0.0", "--managed-image", "im"), 5,
          f"error: The resource with id '{img['id']}' has a different Hypervisor generation "
          f"['V1'] than the parent gallery image Hypervisor generation ['V2'].")
    fails(run(*CREATE, "-i", "v2", "-e", "1.0.0", "--os-snapshot", "s1"), 5,
          f"The resource with id '{snap['id']}' has a different Hypervisor generation ['V1']")
    fails(run(*CREATE, "-i", "lin", "-e", "9.0.0", "--managed-image", "winimg"), 3,
          f"The resource with id '{win['id']}' has a different OS type ['Windows'] than the "
          f"parent gallery image OS type ['Linux'].")
    fails(run(*CREATE, "-i", "win", "-e", "1.0.0", "--os-snapshot", "s1"), 3,
          "different OS type ['Linux'] than the parent gallery image OS type ['Windows']")
    assert store_tree_snapshot(run.store) == before
    # a V2 image does go into the V2 definition; a snapshot into a Specialized one
    run.json("image", "create", "-n", "im2", "--source", "s1", "--os-type", "Linux",
             "--hyper-v-generation", "V2")
    run.json(*CREATE, "-i", "v2", "-e", "1.0.0", "--managed-image", "im2")
    run.json(*CREATE, "-i", "spec", "-e", "1.0.0", "--os-snapshot", "s1")


def test_the_library_errors_carry_azure_codes(run, world):
    run.json("image", "create", "-n", "im", "--source", "os1", "--os-type", "Linux")
    home = Home.open(run.store)
    svc = GalleryService(home)
    try:
        with pytest.raises(InvalidArgument) as e:
            svc.versions.create("default", "g", "spec", "1.0.0", managed_image="im")
        assert (e.value.code, e.value.target) == ("BadRequest", "properties.storageProfile.source.id")
        with pytest.raises(Conflict) as c:
            svc.versions.create("default", "g", "v2", "1.0.0", managed_image="im")
        assert c.value.code == "Conflict"
    finally:
        svc.close()
        home.close()


HOSTILE = [
    (["--os-snapshot", "nosuch"], 4, "--os-snapshot: snapshot 'nosuch' not found"),
    (["--os-snapshot", f"{RG}/snapshots/nosuch"], 4, "snapshot 'nosuch' not found"),
    (["--os-snapshot", f"{RG}/disks/os1"], 3,
     "--os-snapshot: '" + RG + "/disks/os1' is a Microsoft.Compute/disks id, not a snapshot id"),
    (["--managed-image", f"{RG}/snapshots/s1"], 3, "--managed-image: '"),
    (["--managed-image", "nosuch"], 4, "--managed-image: image 'nosuch' not found"),
    (["--managed-image", f"{RG}/galleries/g/images/lin"], 3,
     "is a Microsoft.Compute/galleries/images id, not an image id"),
    (["--os-snapshot", "s1", "--data-snapshots", "s1", "s1", "--data-snapshot-luns", "3", "3"],
     3, "LUN 3 is used twice"),
    (["--os-vhd-uri", "OS", "--data-vhds-uris", "DATA", "--data-snapshots", "s1"], 3,
     "LUN 0 is used twice"),
    (["--os-snapshot", "s1", "--data-snapshot-luns", "1"], 3,
     "--data-snapshot-luns: data disk snapshot LUNs given without data disk snapshots"),
    (["--os-snapshot", "s1", "--data-snapshots", "s1", "--data-snapshot-luns", "1", "2"], 3,
     "2 LUN(s) given for 1 data disk snapshot(s)"),
    (["--os-snapshot", "s1", "--data-snapshots", "s1", "--data-snapshot-luns", "99"], 3,
     "must be an integer from 0 to"),
    (["--os-snapshot", "s1", "--os-vhd-uri", "OS"], 3, "one OS disk source, not both"),
    (["--managed-image", "im", "--os-snapshot", "s1"], 3,
     "--managed-image: cannot be combined with disk sources"),
    (["--managed-image", "im", "--image-version", "g/lin/1.0.0"], 3,
     "not both source.id (a managed image) and source.id (an image version)"),
    (["--managed-image", "im", "--data-snapshots", "s1"], 3,
     "cannot be combined with disk sources"),
    (["--data-snapshots", "s1"], 3, "--os-vhd-uri: required"),
    (["--os-snapshot", "s1", "--replication-mode", "Shallow"], 3, "Shallow references disk files"),
    (["--os-snapshot", "sw", "-l", "local"], 3,
     "--os-snapshot: snapshot 'sw' is in region 'west'; the version's source region is 'local'"),
    (["--os-snapshot", "s1", "--data-snapshots", f"{RG}/images/im"], 3,
     "is a Microsoft.Compute/images id, not a snapshot id"),
]


def test_hostile_version_sources_change_nothing(run, world, tmp_path):
    run.json("region", "create", "west", "--path", str(tmp_path / "west"))
    run.json("sig", "image-version", "update", "-r", "g", "-i", "lin", "-e", "1.0.0",
             "--target-regions", "local", "west")
    run.json("disk", "create", "-n", "dw", "--gallery-image-reference", "g/lin/1.0.0",
             "-l", "west")
    run.json("snapshot", "create", "-n", "sw", "--source", "dw")
    run.json("snapshot", "create", "-n", "s1", "--source", "os1")
    run.json("image", "create", "-n", "im", "--source", "os1", "--os-type", "Linux")
    before = store_tree_snapshot(run.store)
    for args, code, needle in HOSTILE:
        args = [world["os"] if a == "OS" else world["data"] if a == "DATA" else a for a in args]
        fails(run(*CREATE, "-i", "lin", "-e", "7.0.0", *args), code, needle)
        assert store_tree_snapshot(run.store) == before, args
